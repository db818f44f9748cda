//! How one attempt's body reads: replaying what was recorded, then the
//! original body, recording as it goes.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use mesh_core::BoxError;

use super::{
    Attempt, Phase, ReplayUnavailable,
    state::{Chunks, State},
};

impl<B> Attempt<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    pub(super) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match &mut self.phase {
                Phase::Idle => self.acquire()?,
                Phase::Replaying { next } => {
                    let frame = match &self.shared.lock().state {
                        State::Complete(recording) => recording.frame(*next),
                        // A whole recording is never taken back.
                        State::Reading | State::Parked(_) | State::Committed => None,
                    };
                    let Some(frame) = frame else {
                        self.phase = Phase::Done;
                        continue;
                    };
                    *next += 1;
                    return Poll::Ready(Some(Ok(frame)));
                }
                Phase::Reading {
                    reader,
                    replay_left,
                } => {
                    if *replay_left > 0 {
                        let i = reader.chunks.len().saturating_sub(*replay_left);
                        *replay_left -= 1;
                        let Some(chunk) = reader.chunks.get(i).cloned() else {
                            continue;
                        };
                        if !reader.recording {
                            // The chunk taken at the start, over the cap
                            // (`ReplayBody::try_new`): sent now, it commits
                            // the body, and is held no longer.
                            reader.chunks = Chunks::default();
                            self.shared.set(State::Committed);
                        }
                        // The original body's end may have come while it was
                        // parked, with no frame to read it by: a client that
                        // sees it ended after this chunk polls no more.
                        if *replay_left == 0 && reader.body.is_end_stream() {
                            self.finish(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    return self.poll_original(cx);
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }

    /// Takes the shared state for this attempt: a whole recording to replay,
    /// or the parked original body to replay and read on.
    fn acquire(&mut self) -> Result<(), BoxError> {
        let mut slot = self.shared.lock();
        match std::mem::replace(&mut slot.state, State::Reading) {
            State::Complete(recording) => {
                self.phase = Phase::Replaying { next: 0 };
                slot.state = State::Complete(recording);
                Ok(())
            }
            State::Parked(reader) => {
                self.phase = Phase::Reading {
                    replay_left: reader.chunks.len(),
                    reader,
                };
                Ok(())
            }
            other => {
                slot.state = other;
                self.phase = Phase::Done;
                Err(ReplayUnavailable.into())
            }
        }
    }

    /// Reads the next frame of the original body, recording it.
    fn poll_original(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Phase::Reading { reader, .. } = &mut self.phase else {
            return Poll::Ready(None);
        };
        let frame = match ready!(Pin::new(&mut reader.body).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                // What was sent cannot be sent again without the rest.
                self.shared.set(State::Committed);
                self.phase = Phase::Done;
                return Poll::Ready(Some(Err(error.into())));
            }
            None => {
                self.finish(None);
                return Poll::Ready(None);
            }
        };
        let frame = match frame.into_data() {
            Ok(mut data) => {
                let chunk = data.copy_to_bytes(data.remaining());
                let was_recording = reader.recording;
                // No `Replay` left means no further attempt: the retry
                // handed its answer on while the body still streams (a
                // client-streaming gRPC call, say). The rest is passed on,
                // not kept, and what was kept is freed, rather than held
                // for the life of the stream. (Only this attempt can
                // clone the state then, so the count cannot grow again.)
                if reader.recording && Arc::strong_count(&self.shared) == 1 {
                    reader.stop();
                } else if !reader.record(&chunk, self.shared.max_bytes) && was_recording {
                    tracing::debug!(
                        max_bytes = self.shared.max_bytes,
                        "request body outgrew the replay buffer; no more attempts"
                    );
                    self.shared.set(State::Committed);
                }
                if reader.body.is_end_stream() {
                    self.finish(None);
                }
                Frame::data(chunk)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => {
                    self.finish(Some(trailers.clone()));
                    Frame::trailers(trailers)
                }
                // http-body has no other kind of frame today; pass on any.
                Err(frame) => frame.map_data(|mut d| d.copy_to_bytes(d.remaining())),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    /// The original body ended: publish the recording, if there is one.
    fn finish(&mut self, trailers: Option<http::HeaderMap>) {
        if let Phase::Reading { reader, .. } = &mut self.phase
            && reader.recording
        {
            self.shared.set(State::Complete(reader.finish(trailers)));
        }
        self.phase = Phase::Done;
    }
}

impl<B> Drop for Attempt<B> {
    fn drop(&mut self) {
        // An attempt that ends before the original body did leaves the rest
        // to the next attempt, unless the body is committed. A body that
        // says it has ended with nothing left to replay was sent whole,
        // though its end was never read as a frame: a client asks
        // `is_end_stream` before polling, and polls no more once it is
        // true (hyper sends such a body's end with its last chunk, or with
        // the head when there is none).
        if let Phase::Reading {
            mut reader,
            replay_left,
        } = std::mem::replace(&mut self.phase, Phase::Done)
            && (reader.recording || replay_left > 0)
        {
            // Not recording, with a chunk left to replay: the chunk taken
            // at the start, over the cap, which no attempt has sent yet.
            // Parked with it, the next attempt sends it, and commits the
            // body then.
            let state = if reader.recording && replay_left == 0 && (self.shared.ended)(&reader.body)
            {
                State::Complete(reader.finish(None))
            } else {
                State::Parked(reader)
            };
            self.shared.set(state);
        }
    }
}
