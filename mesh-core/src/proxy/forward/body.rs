//! The body of a forwarded response, and the failure-accrual verdict that
//! waits on its end.
//!
//! A gRPC server that fails a call after its headers (a message sent,
//! then `UNAVAILABLE`) answers `200` and sends the status last, in
//! trailers. Judged at its head, such a response is a success, and an
//! endpoint failing every call that way would never be taken out. So a
//! gRPC response whose head carries no `grpc-status` keeps its verdict
//! here until its body ends, as Linkerd counts gRPC failures from
//! trailers. Every other response is judged at its head, and passes
//! through with a branch per frame: it carries no verdict and is not
//! boxed, so the response is no larger than the body and a tag.
//!
//! How the body ends decides:
//!
//! - trailers: their `grpc-status`, as mesh-core's classifier reads it
//!   (`UNAVAILABLE`, `INTERNAL` and the other server errors fail;
//!   `NOT_FOUND` and the caller's other mistakes do not, as a 4xx does
//!   not); trailers without one fail;
//! - no trailers: a failure, as every gRPC client reads a stream that
//!   ends without its status. The body's end is its last frame, or the
//!   moment it says it has ended: a caller's server that knows the
//!   length (HTTP/1 with a content-length, or `0` for a stream that
//!   ended at its head) stops there and drops the body without polling
//!   for an end that has come;
//! - an error: the endpoint's failure (it reset the stream, or the
//!   connection broke), unless this side reset it for the caller;
//! - the body dropped before its end by a layer above that cut it for a
//!   timeout (the route's idle timeout or request deadline), which says
//!   so through the request's [`TimedOut`](super::TimedOut): the
//!   endpoint's failure, as Linkerd counts a stream its endpoint stack
//!   times out. An endpoint that stalls every stream is taken out;
//! - the body dropped before its end otherwise: the caller went away, and
//!   nothing is counted. A probe lets the next request probe.

use std::{
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll, ready},
};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::{super::balance::Verdict, cut::Since, failure};
use crate::classify::Classify;

pin_project_lite::pin_project! {
    /// The body of a [`Forward`](super::Forward)'s response: the
    /// upstream's, frame for frame. For a gRPC answer whose status comes
    /// in trailers, failure accrual counts it when it ends: see the
    /// [module docs](self).
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    /// What a body carries: a plain one, only itself; a judged one, its
    /// verdict, boxed with the body so that plain ones, nearly all of
    /// them, stay the size of their body (and a tag, where the body has
    /// no spare bits for one).
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Plain {
            #[pin]
            inner: B,
        },
        Judged {
            judged: Pin<Box<Judged<B>>>,
        },
    }
}

pin_project_lite::pin_project! {
    /// A body and the verdict waiting on its end.
    #[project = Projection]
    #[derive(Debug)]
    struct Judged<B> {
        #[pin]
        inner: B,
        waiting: Waiting,
    }
}

/// The verdict of a judged body, until its end.
#[derive(Debug)]
struct Waiting {
    /// `Some` until the body's end is judged, or it is given up on.
    verdict: Option<Verdict>,
    /// Whether the body has said it has ended (`is_end_stream`), with no
    /// frame left to poll: dropped so, it ended without trailers. Set
    /// through `&self`, hence atomic; only this body's owner touches it.
    ended: AtomicBool,
    /// Set by a layer above that cuts the body for a timeout, if the
    /// request carried one.
    timeout: Option<Since>,
}

impl Drop for Waiting {
    /// A body that said it had ended and is dropped unpolled ended
    /// without trailers: a failure. So did one a timeout above cut. Any
    /// other is given up on, and the verdict's own drop counts nothing.
    fn drop(&mut self) {
        let Some(verdict) = self.verdict.take() else {
            return;
        };
        if self.ended.load(Ordering::Relaxed) {
            verdict.record(succeeded(None));
        } else if self.timeout.as_ref().is_some_and(Since::expired) {
            verdict.record(false);
        }
    }
}

impl<B> ResponseBody<B> {
    /// `inner`, with its outcome judged at its end by `verdict`, if any;
    /// `timeout`, if any, says whether a layer above cut it short.
    pub(super) fn new(inner: B, verdict: Option<Verdict>, timeout: Option<Since>) -> Self {
        let kind = match verdict {
            None => Kind::Plain { inner },
            verdict => Kind::Judged {
                judged: Box::pin(Judged {
                    inner,
                    waiting: Waiting {
                        verdict,
                        ended: AtomicBool::new(false),
                        timeout,
                    },
                }),
            },
        };
        Self { kind }
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
        match self.project().kind.project() {
            KindProj::Plain { inner } => inner.poll_frame(cx),
            KindProj::Judged { judged } => {
                let Projection { inner, waiting } = judged.as_mut().project();
                let frame = ready!(inner.poll_frame(cx));
                if waiting.verdict.is_some() {
                    judge(&mut waiting.verdict, &frame);
                }
                Poll::Ready(frame)
            }
        }
    }

    /// The inner body's. Once it says it has ended, with a verdict still
    /// waiting, the verdict is a failure (no trailers can come), counted
    /// as the body is polled to its end or dropped.
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Plain { inner } => inner.is_end_stream(),
            Kind::Judged { judged } => {
                let ended = judged.inner.is_end_stream();
                if ended {
                    judged.waiting.ended.store(true, Ordering::Relaxed);
                }
                ended
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Plain { inner } => inner.size_hint(),
            Kind::Judged { judged } => judged.inner.size_hint(),
        }
    }
}

/// Counts `verdict` if `frame` ends the body.
fn judge<D, E: 'static>(verdict: &mut Option<Verdict>, frame: &Option<Result<Frame<D>, E>>) {
    let success = match frame {
        Some(Ok(frame)) => match frame.trailers_ref() {
            Some(trailers) => succeeded(Some(trailers)),
            None => return,
        },
        None => succeeded(None),
        Some(Err(error)) => {
            if failure::is_callers_body(error) {
                // Dropped as for a caller that went away.
                verdict.take();
                return;
            }
            false
        }
    };
    if let Some(verdict) = verdict.take() {
        verdict.record(success);
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
    fn a_body_that_carries_no_verdict_is_no_larger_than_the_body() {
        // `Incoming` has spare bits for the tag: every plain response
        // moves as many bytes as it did before it was wrapped.
        assert_eq!(
            size_of::<ResponseBody<hyper::body::Incoming>>(),
            size_of::<hyper::body::Incoming>()
        );
    }
}
