//! A response future that answers `408` when its stream goes quiet
//! before the response head.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderValue, Response, StatusCode, header};

use super::{Clock, body::IdleBody};
use crate::error::{GRPC_MESSAGE, MESH_ERROR, ProxyErrorKind};

/// The `mesh-error` of a stream ended for being idle.
pub(in crate::serve) const STREAM_IDLE_TIMEOUT: &str = "stream idle timeout";

/// How the client of a timed stream is answered: its protocol.
#[derive(Clone, Copy, Debug)]
pub(in crate::serve) struct Answer {
    /// A gRPC request, answered trailers-only.
    pub(in crate::serve) grpc: bool,
    /// An HTTP/1 request, whose connection is closed after the answer.
    pub(in crate::serve) http1: bool,
    /// A request that asks for an upgrade: a `101` ends the stream, and
    /// the tunnel that follows is not timed.
    pub(in crate::serve) upgrade: bool,
}

pin_project_lite::pin_project! {
    /// The service's response future, and the stream's clock when the
    /// stream is timed.
    pub(in crate::serve) struct IdleFuture<F> {
        #[pin]
        inner: F,
        clock: Option<(Clock, Answer)>,
    }
}

impl<F> IdleFuture<F> {
    pub(in crate::serve) fn new(inner: F, clock: Option<(Clock, Answer)>) -> Self {
        Self { inner, clock }
    }
}

impl<F, B, E> Future for IdleFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<IdleBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let clock = this.clock.take();
            return Poll::Ready(result.map(|res| {
                let upgraded = res.status() == StatusCode::SWITCHING_PROTOCOLS;
                let clock = clock.and_then(|(mut clock, answer)| {
                    // The head is activity.
                    clock.touch();
                    (!(answer.upgrade && upgraded)).then_some(clock)
                });
                res.map(|body| IdleBody::new(body, clock))
            }));
        }
        let Some((clock, answer)) = this.clock else {
            return Poll::Pending;
        };
        if clock.poll_idle(cx).is_pending() {
            return Poll::Pending;
        }
        tracing::debug!("stream idle before its response head; answering 408");
        let answer = *answer;
        *this.clock = None;
        Poll::Ready(Ok(timed_out(answer)))
    }
}

/// The answer to a stream that went quiet before its response head.
fn timed_out<B>(answer: Answer) -> Response<IdleBody<B>> {
    let mut res = ProxyErrorKind::Timeout.response_for::<IdleBody<B>>(answer.grpc);
    let reason = HeaderValue::from_static(STREAM_IDLE_TIMEOUT);
    if answer.grpc {
        res.headers_mut().insert(GRPC_MESSAGE, reason.clone());
    } else {
        *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    }
    res.headers_mut().insert(MESH_ERROR, reason);
    if answer.http1 {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
