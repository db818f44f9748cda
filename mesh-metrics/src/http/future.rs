//! The response future of [`Metrics`](super::Metrics).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::{body::ResponseBody, error::AsDynError, recorder::Started};

pin_project! {
    /// Waits for the inner service's response, records its head, and hands
    /// the recording on to the [`ResponseBody`]. Dropped before the response
    /// arrives, it counts the request as cancelled.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recorder: Started,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, recorder: Started) -> Self {
        Self { inner, recorder }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: AsDynError,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(match result {
            Ok(res) => {
                // Nobody will poll an empty body: the exchange is over.
                let recorder = this.recorder.on_response(&res, res.body().is_end_stream());
                Ok(res.map(|body| ResponseBody::new(body, recorder)))
            }
            Err(error) => {
                this.recorder.on_error(error.as_dyn_error());
                Err(error)
            }
        })
    }
}
