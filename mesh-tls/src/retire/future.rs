//! The future of [`Retire`](super::Retire).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::Response;
use hyper_util::client::legacy::connect::CaptureConnection;
use pin_project_lite::pin_project;

use crate::connect::ServerTls;

pin_project! {
    /// The response future of [`Retire`](super::Retire).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        capture: Option<CaptureConnection>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, capture: Option<CaptureConnection>) -> Self {
        Self { inner, capture }
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        if let (Ok(res), Some(capture)) = (&res, this.capture.take())
            && let Some(conn) = res
                .extensions()
                .get::<ServerTls>()
                .and_then(ServerTls::state)
        {
            conn.claim(capture);
        }
        Poll::Ready(res)
    }
}
