//! A response body that fails when its stream goes quiet.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http_body::{Body, Frame, SizeHint};

use super::{Clock, StreamIdleTimeout};
use crate::error::BoxError;

pin_project_lite::pin_project! {
    /// A response body as the server sends it: the service's, with its
    /// stream's clock when timed, or the empty body of the server's own
    /// `408`.
    #[project = IdleBodyProj]
    pub(in crate::serve) enum IdleBody<B> {
        Inner {
            #[pin]
            body: B,
            clock: Option<Clock>,
        },
        Empty,
    }
}

impl<B> IdleBody<B> {
    pub(in crate::serve) fn new(body: B, clock: Option<Clock>) -> Self {
        Self::Inner { body, clock }
    }
}

// Written out: a derive would ask `B: Default`, which no body needs here.
#[allow(clippy::derivable_impls)]
impl<B> Default for IdleBody<B> {
    fn default() -> Self {
        Self::Empty
    }
}

impl<B> Body for IdleBody<B>
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
        let (body, clock) = match self.project() {
            IdleBodyProj::Inner { body, clock } => (body, clock),
            IdleBodyProj::Empty => return Poll::Ready(None),
        };
        let Some(timed) = clock else {
            return body.poll_frame(cx).map_err(Into::into);
        };
        match body.poll_frame(cx) {
            Poll::Ready(Some(frame)) => {
                timed.touch();
                Poll::Ready(Some(frame.map_err(Into::into)))
            }
            Poll::Ready(None) => {
                *clock = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if timed.poll_idle(cx).is_pending() {
                    return Poll::Pending;
                }
                tracing::debug!("stream idle in its response body; resetting it");
                *clock = None;
                Poll::Ready(Some(Err(StreamIdleTimeout.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body, .. } => body.is_end_stream(),
            Self::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner { body, .. } => body.size_hint(),
            Self::Empty => SizeHint::with_exact(0),
        }
    }
}
