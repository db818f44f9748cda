//! The body of a forwarded response, and what the balancer waits for
//! from it: the first frame, for the latency sample, and the end, for
//! failure accrual's verdict.
//!
//! # Why
//!
//! Linkerd's balancer samples a request's latency, and stops counting it
//! in flight, at its response's first body frame, or its end when none
//! comes (linkerd2-proxy `hyper-balance`, `PendingUntilFirstData`): a
//! server that sends its head at once and its data a second later is a
//! second slow, and a balancer that stopped at the head would send it
//! more. And Linkerd classifies a response for failure accrual when its
//! stream ends (`linkerd/http/classify/src/channel.rs`), so a good head
//! whose body then breaks (the upstream reset the stream, or closed the
//! connection short of its length) is a failure, and a gRPC server that
//! fails a call after its headers (`200`, a message, then `UNAVAILABLE`
//! in trailers) fails too. Judged at their heads, an endpoint that broke
//! every body, or failed every call that way, would never be taken out.
//!
//! # How
//!
//! A response sent to an endpoint the balancer chose, or counted by
//! failure accrual, carries its [`Pending`] here; any other passes
//! through with a branch per frame. Its first frame (data, trailers, an
//! error or the end) takes the sample and ends the request's load; so
//! does the body dropped before one. A failure at the head (a `5xx`, a
//! gRPC server error in the head) was counted there and is final.
//! Otherwise how the body ends decides:
//!
//! - its end, or the moment it says it has ended (a caller's server that
//!   knows the length, HTTP/1 with a content-length, stops there and
//!   drops the body without polling for an end that has come): a success,
//!   but for a gRPC answer whose status comes in trailers, judged by
//!   their `grpc-status` as mesh-core's classifier reads it
//!   (`UNAVAILABLE`, `INTERNAL` and the other server errors fail;
//!   `NOT_FOUND` and the caller's other mistakes do not, as a 4xx does
//!   not). Such a stream that ends without trailers, or without a status
//!   in them, fails, as every gRPC client reads it;
//! - an error: the endpoint's failure (it reset the stream, or the
//!   connection broke), unless this side reset it for the caller;
//! - the body dropped before its end by a layer above that cut it for a
//!   timeout (the route's idle timeout or request deadline), which says
//!   so through the request's [`TimedOut`](super::TimedOut): the
//!   endpoint's failure, as Linkerd counts a stream its endpoint stack
//!   times out. An endpoint that stalls every stream is taken out;
//! - the body dropped before its end otherwise: the caller went away. A
//!   response is what its head said, as Linkerd classifies a body dropped
//!   early by its head; a gRPC answer whose status was still to come
//!   counts nothing, and a probe lets the next request probe.
//!
//! The state rides in the body, not boxed beside it, so a response costs
//! no allocation more for it.

use std::{
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll, ready},
};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::{
    super::balance::{Pending, Verdict},
    cut::Since,
    failure,
};
use crate::classify::Classify;

pin_project_lite::pin_project! {
    /// The body of a [`Forward`](super::Forward)'s response: the
    /// upstream's, frame for frame. The balancer takes its latency sample
    /// at the first frame and failure accrual judges it at its end: see
    /// the [module docs](self).
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // `None` when there is nothing to count: one endpoint, no failure
        // accrual, or an answer given here.
        track: Option<Track>,
    }
}

/// What the head said of a response the body still has to settle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A failure, counted at the head: the body changes nothing.
    Counted,
    /// A success, unless the body fails.
    Success,
    /// A gRPC answer whose status comes in trailers.
    Trailers,
}

/// Where a tracked response is.
#[derive(Debug)]
enum Stage {
    /// No frame yet: the request counts as in flight, and its sample
    /// waits.
    Sent(Pending),
    /// Past its first frame: failure accrual's verdict waits for the end.
    Streaming(Verdict),
    /// Nothing left to count.
    Done,
}

/// A response's request, until its body has settled what it owes the
/// balancer.
#[derive(Debug)]
struct Track {
    stage: Stage,
    outcome: Outcome,
    /// Whether the body has said it has ended (`is_end_stream`), with no
    /// frame left to poll: dropped so, it ended. Set through `&self`,
    /// hence atomic; only this body's owner touches it.
    ended: AtomicBool,
    /// Set by a layer above that cuts the body for a timeout, if the
    /// request carried one.
    timeout: Option<Since>,
}

impl Track {
    /// The body's first frame, its end, or its drop, whichever comes
    /// first: the sample, and the end of the request's load.
    fn first_frame(&mut self) {
        if !matches!(self.stage, Stage::Sent(_)) {
            return;
        }
        if let Stage::Sent(pending) = std::mem::replace(&mut self.stage, Stage::Done) {
            if self.outcome == Outcome::Counted {
                // Dropped, it takes its sample and ends its load.
                drop(pending);
            } else if let Some(verdict) = pending.first_frame() {
                self.stage = Stage::Streaming(verdict);
            }
        }
    }

    /// Takes the sample at the first `frame`, and counts the verdict if
    /// `frame` ends the body.
    fn on_frame<D, E: 'static>(&mut self, frame: &Option<Result<Frame<D>, E>>) {
        self.first_frame();
        if !matches!(self.stage, Stage::Streaming(_)) {
            return;
        }
        let success = match frame {
            Some(Ok(frame)) => match frame.trailers_ref() {
                Some(trailers) => self.ended_with(Some(trailers)),
                None => return,
            },
            None => self.ended_with(None),
            Some(Err(error)) => {
                if failure::is_callers_body(error) {
                    // Dropped as for a caller that went away.
                    self.stage = Stage::Done;
                    return;
                }
                false
            }
        };
        self.record(success);
    }

    /// Whether a body that ended with `trailers` (`None`: without any)
    /// succeeded.
    fn ended_with(&self, trailers: Option<&HeaderMap>) -> bool {
        match self.outcome {
            Outcome::Trailers => succeeded(trailers),
            Outcome::Success | Outcome::Counted => true,
        }
    }

    /// Counts the verdict, if one waits.
    fn record(&mut self, success: bool) {
        if let Stage::Streaming(verdict) = std::mem::replace(&mut self.stage, Stage::Done) {
            verdict.record(success);
        }
    }
}

impl Drop for Track {
    /// A body that said it had ended and is dropped unpolled ended. One a
    /// timeout above cut failed. Any other was given up on by its caller:
    /// it is what its head said, and a gRPC answer whose status was still
    /// to come counts nothing.
    fn drop(&mut self) {
        self.first_frame();
        if !matches!(self.stage, Stage::Streaming(_)) {
            return;
        }
        if self.ended.load(Ordering::Relaxed) {
            let success = self.ended_with(None);
            self.record(success);
        } else if self.timeout.as_ref().is_some_and(Since::expired) {
            self.record(false);
        } else if self.outcome == Outcome::Success {
            self.record(true);
        }
    }
}

impl<B> ResponseBody<B> {
    /// `inner`, with the request `pending` and what its head said
    /// (`outcome`) settled by its frames, if there is one; `timeout`, if
    /// any, says whether a layer above cut it short.
    pub(super) fn new(
        inner: B,
        pending: Option<(Pending, Outcome)>,
        timeout: Option<Since>,
    ) -> Self {
        let track = pending.map(|(pending, outcome)| Track {
            stage: Stage::Sent(pending),
            outcome,
            ended: AtomicBool::new(false),
            timeout: timeout.filter(|_| outcome != Outcome::Counted),
        });
        Self { inner, track }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: 'static,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(track) = this.track {
            track.on_frame(&frame);
        }
        Poll::Ready(frame)
    }

    /// The inner body's. Once it says it has ended, the response has
    /// ended (no trailers can come), counted as the body is polled to its
    /// end or dropped.
    fn is_end_stream(&self) -> bool {
        let ended = self.inner.is_end_stream();
        if ended && let Some(track) = &self.track {
            track.ended.store(true, Ordering::Relaxed);
        }
        ended
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a gRPC call that ended with `trailers` (`None`: without any)
/// succeeded, as mesh-core's classifier reads its status.
fn succeeded(trailers: Option<&HeaderMap>) -> bool {
    !Classify::default().classify_trailers(trailers).is_failure()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_response_carries_for_the_balancer_fits_in_nine_words() {
        // Inline, not boxed: no allocation per response, but every
        // response moves these bytes with its body (72 on 64-bit
        // targets: the request's place in the load and its sample, then
        // the verdict, what the head said, and the timeout's handle).
        let added =
            size_of::<ResponseBody<hyper::body::Incoming>>() - size_of::<hyper::body::Incoming>();
        assert!(added <= 9 * size_of::<usize>(), "{added} bytes");
    }
}
