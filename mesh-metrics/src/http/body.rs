//! The response body of [`Metrics`](super::Metrics).

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use mesh_core::error::BoxError;
use pin_project_lite::pin_project;

use super::recorder::Streaming;

pin_project! {
    /// A response body that counts its response when the stream ends: at
    /// the trailers, at the last frame, or at an error. Dropped before its
    /// end, it counts the response as cancelled (`error="cancel"`).
    ///
    /// Its error type is [`BoxError`], so that stream errors can be
    /// classified by their kind before they are passed on.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Streaming>,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, recorder: Option<Streaming>) -> Self {
        Self { inner, recorder }
    }
}

/// An empty body that records nothing: what a layer outside this one
/// answers with when it never calls it (an authorization layer's 403, for
/// one), so that such layers can sit outside the metrics.
impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let Some(recorder) = this.recorder.as_mut() else {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        };
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    recorder.on_data(data.remaining() as u64);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    recorder.on_end(Some(trailers));
                    *this.recorder = None;
                } else if this.inner.is_end_stream() {
                    recorder.on_end(None);
                    *this.recorder = None;
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => {
                let error = error.into();
                recorder.on_error(&*error);
                *this.recorder = None;
                Some(Err(error))
            }
            None => {
                recorder.on_end(None);
                *this.recorder = None;
                None
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
