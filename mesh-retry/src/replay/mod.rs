//! Request bodies that can be sent again.
//!
//! A retry has to send the request body a second time, but a proxy streams
//! bodies: by the time a response says "retry", the body has left. So the
//! first attempt records the chunks it sends, up to a cap, and each later
//! attempt replays the recording, then reads on from the original body
//! where the last attempt stopped.
//!
//! The rules, which Linkerd's proxy follows too:
//!
//! - A body whose size hint (its `content-length`) is already over the cap
//!   is not recorded at all: [`ReplayBody::try_new`] hands it back, and the
//!   request is sent once.
//! - A body that outgrows the cap while it streams is **committed**: the
//!   recording is freed, the attempt that is sending it goes on undisturbed,
//!   and no further attempt can be made.
//! - A body is recorded only while another attempt can still be made: once
//!   the [`Replay`] handle is dropped (the retry has handed its answer on,
//!   as a client-streaming gRPC call's may be while the call still sends),
//!   the attempt reading the body frees what it recorded at its next chunk
//!   and passes the rest on unrecorded, rather than holding up to the cap
//!   for the life of the stream.
//! - Trailers are recorded and replayed with the data. A replay that ends
//!   with trailers gives no exact size: hyper sends a body of exact size
//!   with a `content-length`, and HTTP/1.1 carries trailers only in a
//!   chunked body.
//! - Every attempt sends every byte exactly once, in order: chunks are
//!   recorded as they are read from the original body, once, and an attempt
//!   replays exactly the chunks recorded before it started. (Linkerd once
//!   sent the first chunk twice on a retry, linkerd2 #15649; the tests here
//!   check every attempt byte for byte.)
//! - A body is whole once the original says it has ended
//!   (`is_end_stream`), even if its end was never read as a frame: an
//!   HTTP/2 caller may send its end on its own, after the last data, and a
//!   client that finds the body ended sends the end with the last chunk
//!   (or with the head) and polls no more. The request went out whole, so
//!   an answer to it can be retried.
//! - An attempt that ends before its body did (the connection failed, or
//!   the response came first) leaves the unread rest to the next attempt.
//!   While an attempt is still sending the body, no other attempt can start:
//!   the retry layer reads that as "the response started before the request
//!   body finished" and does not retry.
//!
//! Chunks are kept as [`Bytes`], so recording a chunk that already is
//! `Bytes` (hyper's are) copies nothing.
//!
//! What the body holds when the request comes is read at once, without
//! waiting ([`ReplayBody::try_new`] polls it with a waker that does
//! nothing; the attempt that reads on registers its own). A body that is
//! then whole, one chunk and its end, needs no recording: every attempt
//! sends that chunk again, with no shared state, lock or allocation. An
//! in-process client's `Full` body is such a body, and so is a small
//! HTTP/2 request whose data came with its head; against recording it as
//! it streams, that saves about 380 instructions a request (callgrind,
//! `benches/README.md`). Any other first frame is recorded as the first
//! attempt would have recorded it, and that attempt sends it first; a
//! first chunk already over the cap is held unrecorded until an attempt
//! sends it, which commits the body (an attempt that ends before it does
//! leaves it to the next).
//!
//! Two things follow. A body whole at the start has finished, so an
//! answer that comes before its attempt sent it can be retried: the rule
//! above guards bodies still arriving. And reading at the start tells
//! hyper's HTTP/1 server the body is wanted, so a client that sent
//! `Expect: 100-continue` with a body of at most the cap hears
//! `100 Continue` when the request reaches this layer, before an upstream
//! is chosen, as Envoy answers it by default; a longer body's
//! `content-length` keeps it from being read here.

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker, ready},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use mesh_core::BoxError;

mod attempt;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use self::state::Replayable;
use self::state::{Reader, Recording, Shared, State};

/// The default cap on the bytes recorded for replay: 64 KiB, as in Linkerd.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// The body of one attempt of a request. See the [module docs](self).
///
/// The first attempt's body comes from [`ReplayBody::try_new`]; later ones
/// from [`Replay::next_attempt`]. An attempt must not be polled before the
/// previous attempt's body has ended or been dropped; if it is, it fails
/// with [`ReplayUnavailable`] rather than reorder bytes.
pub struct ReplayBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    /// A body sent once, with nothing recorded.
    Passthrough(B),
    /// A body known to be empty: every attempt is empty.
    Empty,
    /// A body that was whole when the request came, in one chunk: the
    /// chunk until it is sent.
    Whole(Option<Bytes>),
    /// A body whose first read failed, before anything was recorded: the
    /// error until it is passed on. No attempt can follow.
    Failed(Option<BoxError>),
    Attempt(Attempt<B>),
}

struct Attempt<B> {
    shared: Arc<Shared<B>>,
    phase: Phase<B>,
}

enum Phase<B> {
    /// Not polled yet: the state is taken on the first poll.
    Idle,
    /// Replaying a body that was recorded whole, from frame `next` of the
    /// recording. The recording is read where it is, in the shared state,
    /// which never changes once it is complete: this body, moved with its
    /// request, stays small, and a retry copies no chunks.
    Replaying {
        next: usize,
    },
    /// Holding the original body: replaying the last `replay_left` of its
    /// recorded chunks, then reading on. (No chunk is recorded while some
    /// are left to replay, so they are the last ones.)
    Reading {
        reader: Reader<B>,
        replay_left: usize,
    },
    Done,
}

/// The handle a retry keeps to make further attempts of a request.
pub struct Replay<B> {
    source: Source<B>,
}

/// Where a [`Replay`]'s attempts take their body from.
enum Source<B> {
    /// Nowhere: the body was empty.
    Empty,
    /// The one chunk the body was when the request came: each attempt
    /// sends it again, at the price of a reference count.
    Whole(Bytes),
    /// The state the attempts share: the recording, and the original body
    /// between attempts.
    Shared(Arc<Shared<B>>),
}

impl<B: Body> ReplayBody<B> {
    /// Wraps the original body of a request for its first attempt, recording
    /// up to `max_bytes` for later ones. What the body holds already is
    /// taken now, without waiting: a body that is then whole is sent again
    /// by each attempt as it is, and recorded no further.
    ///
    /// # Errors
    ///
    /// Hands `body` back when its size hint says it is longer than
    /// `max_bytes`: it cannot be replayed, so it is not recorded at all.
    pub fn try_new(mut body: B, max_bytes: usize) -> Result<(Self, Replay<B>), B>
    where
        B: Unpin,
        B::Error: Into<BoxError>,
    {
        let size_hint = body.size_hint();
        if size_hint.lower() > max_bytes as u64 {
            return Err(body);
        }
        if body.is_end_stream() {
            return Ok(Self::empty());
        }
        // What the body already holds, read without waiting (see the
        // module docs): whole, it needs no shared state.
        let first = match Pin::new(&mut body).poll_frame(&mut Context::from_waker(Waker::noop())) {
            Poll::Pending => None,
            Poll::Ready(None) => return Ok(Self::empty()),
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    let chunk = data.copy_to_bytes(data.remaining());
                    if body.is_end_stream() && chunk.len() <= max_bytes {
                        return Ok(Self::whole(chunk));
                    }
                    Some(Ok(Frame::data(chunk)))
                }
                Err(frame) => Some(Ok(frame.map_data(|mut d| d.copy_to_bytes(d.remaining())))),
            },
            Poll::Ready(Some(Err(error))) => Some(Err(error.into())),
        };
        let shared = Arc::new(Shared::new(max_bytes, size_hint));
        let kind = match first {
            None => Kind::Attempt(Attempt {
                shared: shared.clone(),
                phase: Phase::Reading {
                    reader: Reader::new(body),
                    replay_left: 0,
                },
            }),
            Some(first) => Self::first_frame(&shared, body, first),
        };
        Ok((
            Self { kind },
            Replay {
                source: Source::Shared(shared),
            },
        ))
    }

    /// The first attempt of a body that gave `first` before it was sent,
    /// with `body` the rest: the frame is recorded as the attempt would
    /// have recorded it, and handed on first.
    #[cold]
    fn first_frame(
        shared: &Arc<Shared<B>>,
        body: B,
        first: Result<Frame<Bytes>, BoxError>,
    ) -> Kind<B> {
        let mut reader = Reader::new(body);
        let phase = match first.map(Frame::into_data) {
            Ok(Ok(chunk)) => {
                if !reader.record(&chunk, shared.max_bytes) {
                    // Over the cap already: held, not recorded, until an
                    // attempt sends it, which commits the body. An attempt
                    // that ends before it does leaves it to the next.
                    reader.chunks = state::Chunks::One(chunk);
                }
                Phase::Reading {
                    reader,
                    replay_left: 1,
                }
            }
            // Trailers, and nothing before them: the whole body.
            Ok(Err(frame)) => {
                shared.set(State::Complete(Recording {
                    chunks: state::Chunks::default(),
                    trailers: frame.into_trailers().ok(),
                    len: 0,
                }));
                Phase::Replaying { next: 0 }
            }
            // The body failed before anything was sent: the attempt
            // passes the error on, and none can follow.
            Err(error) => {
                shared.set(State::Committed);
                return Kind::Failed(Some(error));
            }
        };
        Kind::Attempt(Attempt {
            shared: shared.clone(),
            phase,
        })
    }
}

impl<B> ReplayBody<B> {
    /// An empty body, and its replay.
    fn empty() -> (Self, Replay<B>) {
        let body = Self { kind: Kind::Empty };
        (
            body,
            Replay {
                source: Source::Empty,
            },
        )
    }

    /// A body of one chunk that is all here, and its replay.
    fn whole(chunk: Bytes) -> (Self, Replay<B>) {
        if chunk.is_empty() {
            return Self::empty();
        }
        let body = Self {
            kind: Kind::Whole(Some(chunk.clone())),
        };
        (
            body,
            Replay {
                source: Source::Whole(chunk),
            },
        )
    }
}

impl<B> ReplayBody<B> {
    /// Wraps a body that is sent once and never replayed.
    pub fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Passthrough(body),
        }
    }
}

impl<B> Replay<B> {
    /// The body of the next attempt. It replays what earlier attempts read,
    /// then reads on.
    pub fn next_attempt(&self) -> ReplayBody<B> {
        let kind = match &self.source {
            Source::Empty => Kind::Empty,
            Source::Whole(chunk) => Kind::Whole(Some(chunk.clone())),
            Source::Shared(shared) => Kind::Attempt(Attempt {
                shared: shared.clone(),
                phase: Phase::Idle,
            }),
        };
        ReplayBody { kind }
    }

    /// Ready once no attempt holds the original body (see
    /// [`Replayable::InUse`]); until then, the task of `cx` is woken when
    /// the attempt that holds it lets it go.
    pub(crate) fn poll_released(&self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.source {
            Source::Empty | Source::Whole(_) => Poll::Ready(()),
            Source::Shared(shared) => shared.poll_released(cx),
        }
    }

    /// Whether another attempt can be made with this body now.
    pub(crate) fn replayable(&self) -> Replayable {
        match &self.source {
            Source::Empty | Source::Whole(_) => Replayable::Complete,
            Source::Shared(shared) => shared.replayable(),
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Passthrough(body) => {
                let frame = ready!(Pin::new(body).poll_frame(cx));
                Poll::Ready(frame.map(|f| {
                    f.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                        .map_err(Into::into)
                }))
            }
            Kind::Empty => Poll::Ready(None),
            Kind::Whole(chunk) => Poll::Ready(chunk.take().map(|c| Ok(Frame::data(c)))),
            Kind::Failed(error) => Poll::Ready(error.take().map(Err)),
            Kind::Attempt(attempt) => attempt.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough(body) => body.is_end_stream(),
            Kind::Empty => true,
            Kind::Whole(chunk) => chunk.is_none(),
            Kind::Failed(error) => error.is_none(),
            Kind::Attempt(attempt) => match &attempt.phase {
                Phase::Idle => false,
                Phase::Replaying { next } => match &attempt.shared.lock().state {
                    State::Complete(recording) => *next >= recording.frames(),
                    State::Reading | State::Parked(_) | State::Committed => true,
                },
                Phase::Reading {
                    reader,
                    replay_left,
                } => *replay_left == 0 && reader.body.is_end_stream(),
                Phase::Done => true,
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough(body) => body.size_hint(),
            Kind::Whole(chunk) => {
                SizeHint::with_exact(chunk.as_ref().map_or(0, |c| c.len() as u64))
            }
            Kind::Failed(_) => SizeHint::new(),
            Kind::Empty
            | Kind::Attempt(Attempt {
                phase: Phase::Done, ..
            }) => SizeHint::with_exact(0),
            Kind::Attempt(Attempt {
                shared,
                phase: Phase::Idle,
            }) => match &shared.lock().state {
                State::Complete(recording) => recording.size_hint_from(0),
                State::Parked(reader) => {
                    with_replayed(reader.body.size_hint(), reader.chunks.bytes_from(0))
                }
                State::Reading | State::Committed => shared.size_hint,
            },
            Kind::Attempt(Attempt {
                shared,
                phase: Phase::Replaying { next },
            }) => match &shared.lock().state {
                State::Complete(recording) => recording.size_hint_from(*next),
                State::Reading | State::Parked(_) | State::Committed => SizeHint::with_exact(0),
            },
            Kind::Attempt(Attempt {
                phase:
                    Phase::Reading {
                        reader,
                        replay_left,
                    },
                ..
            }) => {
                let replayed = reader
                    .chunks
                    .bytes_from(reader.chunks.len().saturating_sub(*replay_left));
                with_replayed(reader.body.size_hint(), replayed)
            }
        }
    }
}

/// The size hint of the original body's unread rest, plus `replayed` bytes
/// that come first.
fn with_replayed(rest: SizeHint, replayed: u64) -> SizeHint {
    let mut hint = SizeHint::new();
    hint.set_lower(rest.lower().saturating_add(replayed));
    if let Some(upper) = rest.upper() {
        hint.set_upper(upper.saturating_add(replayed));
    }
    hint
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Passthrough(_) => "passthrough",
            Kind::Empty => "empty",
            Kind::Whole(_) => "whole",
            Kind::Failed(_) => "failed",
            Kind::Attempt(Attempt { phase, .. }) => match phase {
                Phase::Idle => "idle",
                Phase::Replaying { .. } => "replaying",
                Phase::Reading { .. } => "reading",
                Phase::Done => "done",
            },
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

impl<B> fmt::Debug for Replay<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Empty => "empty",
            Source::Whole(_) => "whole",
            Source::Shared(_) => "shared",
        };
        f.debug_struct("Replay").field("source", &source).finish()
    }
}

/// An attempt's body was polled while the body could not be replayed: an
/// earlier attempt still held it, or it had been committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayUnavailable;

impl fmt::Display for ReplayUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body cannot be replayed")
    }
}

impl std::error::Error for ReplayUnavailable {}
