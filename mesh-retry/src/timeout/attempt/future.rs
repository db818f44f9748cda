//! The response future of [`AttemptTimeout`](super::AttemptTimeout).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use mesh_core::ProxyErrorKind;
use tokio::time::Sleep;

pin_project_lite::pin_project! {
    /// The attempt's response, or the mesh's 504 when the per-try timeout
    /// passes first.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        grpc: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, sleep: Option<Sleep>, grpc: bool) -> Self {
        Self { inner, sleep, grpc }
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
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        if this
            .sleep
            .as_pin_mut()
            .is_some_and(|s| s.poll(cx).is_ready())
        {
            tracing::debug!("attempt timed out before its response");
            return Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(*this.grpc)));
        }
        Poll::Pending
    }
}
