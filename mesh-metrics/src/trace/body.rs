//! The response body of a traced request, which ends its span.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use mesh_core::error::BoxError;
use pin_project_lite::pin_project;

use super::open::Open;

pin_project! {
    /// A response body that reports its request's span when the stream
    /// ends: at the trailers (where gRPC's status is), at the last frame
    /// (an error, `reset`, if short of its declared length), or at an
    /// error. Dropped before its end (but for a body that sent
    /// the whole of its known length, which a server drops unread), the
    /// caller abandoned it, and the span is reported with `error.type`
    /// `cancel`.
    ///
    /// The body of an untraced request, or of a response that had ended
    /// with its head, passes frames on and does nothing else.
    ///
    /// Its error type is [`BoxError`], so that a stream error is named
    /// by its kind before it is passed on.
    #[derive(Debug)]
    pub struct TraceBody<B> {
        #[pin]
        inner: B,
        // Boxed where it was made, in `call`: an untraced body stays the
        // size of the body it wraps plus a pointer.
        open: Option<Box<Open>>,
    }

    impl<B> PinnedDrop for TraceBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(open) = this.project().open.take() {
                if open.sent_its_length() {
                    // The server stopped at the declared length.
                    open.end();
                } else {
                    open.cancel("the caller went away before the response body ended");
                }
            }
        }
    }
}

impl<B> TraceBody<B> {
    pub(super) fn new(inner: B, open: Option<Box<Open>>) -> Self {
        Self { inner, open }
    }
}

/// An empty body that reports nothing, for layers outside the trace that
/// answer without calling it.
impl<B: Default> Default for TraceBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B> Body for TraceBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if this.open.is_none() {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(open)) = (frame.data_ref(), this.open.as_mut()) {
                    open.on_data(data.remaining() as u64);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(mut open) = this.open.take() {
                        open.on_trailers(trailers);
                        open.end();
                    }
                } else if this.inner.is_end_stream()
                    && let Some(open) = this.open.take()
                {
                    // A server need not poll a body that says it has
                    // ended: its last frame is its end.
                    open.end();
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => {
                let error = error.into();
                if let Some(open) = this.open.take() {
                    open.fail(&*error);
                }
                Some(Err(error))
            }
            None => {
                if let Some(open) = this.open.take() {
                    open.end();
                }
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
