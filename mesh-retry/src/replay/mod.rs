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

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use mesh_core::BoxError;

mod attempt;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use self::state::Replayable;
use self::state::{Reader, Shared, State};

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
    shared: Option<Arc<Shared<B>>>,
}

impl<B: Body> ReplayBody<B> {
    /// Wraps the original body of a request for its first attempt, recording
    /// up to `max_bytes` for later ones.
    ///
    /// # Errors
    ///
    /// Hands `body` back when its size hint says it is longer than
    /// `max_bytes`: it cannot be replayed, so it is not recorded at all.
    pub fn try_new(body: B, max_bytes: usize) -> Result<(Self, Replay<B>), B> {
        let size_hint = body.size_hint();
        if size_hint.lower() > max_bytes as u64 {
            return Err(body);
        }
        if body.is_end_stream() {
            let empty = Self { kind: Kind::Empty };
            return Ok((empty, Replay { shared: None }));
        }
        let shared = Arc::new(Shared::new(max_bytes, size_hint));
        let first = Self {
            kind: Kind::Attempt(Attempt {
                shared: shared.clone(),
                phase: Phase::Reading {
                    reader: Reader::new(body),
                    replay_left: 0,
                },
            }),
        };
        Ok((
            first,
            Replay {
                shared: Some(shared),
            },
        ))
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
        match &self.shared {
            None => ReplayBody { kind: Kind::Empty },
            Some(shared) => ReplayBody {
                kind: Kind::Attempt(Attempt {
                    shared: shared.clone(),
                    phase: Phase::Idle,
                }),
            },
        }
    }

    /// Ready once no attempt holds the original body (see
    /// [`Replayable::InUse`]); until then, the task of `cx` is woken when
    /// the attempt that holds it lets it go.
    pub(crate) fn poll_released(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared
            .as_ref()
            .map_or(Poll::Ready(()), |shared| shared.poll_released(cx))
    }

    /// Whether another attempt can be made with this body now.
    pub(crate) fn replayable(&self) -> Replayable {
        self.shared
            .as_ref()
            .map_or(Replayable::Complete, |shared| shared.replayable())
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
            Kind::Attempt(attempt) => attempt.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough(body) => body.is_end_stream(),
            Kind::Empty => true,
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
                    with_replayed(reader.body.size_hint(), reader.recorded as u64)
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
        f.debug_struct("Replay")
            .field("empty", &self.shared.is_none())
            .finish()
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
