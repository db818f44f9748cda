//! The response future of [`AttemptTimeout`](super::AttemptTimeout).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use mesh_core::ProxyErrorKind;
use tokio::time::{Instant, Sleep, sleep_until};

pin_project_lite::pin_project! {
    /// The attempt's response, or the mesh's 504 when the per-try timeout
    /// passes first.
    ///
    /// The timer is made the first time the response is not ready, so a
    /// response that is ready at once costs none.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the request's deadline had passed before the attempt.
        #[pin]
        inner: Option<F>,
        until: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
        grpc: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: Option<F>, until: Option<Instant>, grpc: bool) -> Self {
        Self {
            inner,
            until,
            timer: None,
            grpc,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(*this.grpc)));
        };
        if let Poll::Ready(result) = inner.poll(cx) {
            return Poll::Ready(result);
        }
        let Some(until) = *this.until else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(until)));
        if timer.as_mut().poll(cx).is_ready() {
            tracing::debug!("attempt timed out before its response");
            return Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(*this.grpc)));
        }
        Poll::Pending
    }
}
