//! The response future of [`RequestTimeout`](super::RequestTimeout).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::Response;
use mesh_core::ProxyErrorKind;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::timeout::TimeoutBody;

pin_project_lite::pin_project! {
    /// The response, or the mesh's 504 when the deadline passes first.
    ///
    /// The timer is made the first time the response is not ready, so a
    /// response that is ready at once costs none.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the deadline had passed before the request was sent.
        #[pin]
        inner: Option<F>,
        deadline: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
        idle: Option<Duration>,
        grpc: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(
        inner: Option<F>,
        deadline: Option<Instant>,
        idle: Option<Duration>,
        grpc: bool,
    ) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
            idle,
            grpc,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TimeoutBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(*this.grpc)));
        };
        if let Poll::Ready(result) = inner.poll(cx) {
            let (deadline, idle, grpc) = (*this.deadline, *this.idle, *this.grpc);
            return Poll::Ready(
                result.map(|res| res.map(|body| TimeoutBody::new(body, deadline, idle, grpc))),
            );
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            tracing::debug!("request deadline passed before the response");
            return Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(*this.grpc)));
        }
        Poll::Pending
    }
}
