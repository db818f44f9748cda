//! A response body with a deadline and an idle timeout.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use mesh_core::{
    BoxError, ProxyErrorKind,
    error::{GRPC_MESSAGE, GRPC_STATUS, MESH_ERROR},
};
use tokio::time::{Instant, Sleep, sleep, sleep_until};

use super::error::{Elapsed, Timeout};

pin_project_lite::pin_project! {
    /// A response body that ends when the request's deadline passes, or when
    /// no frame arrives for the idle timeout.
    ///
    /// The response head has been sent by then, so the timeout cannot be a
    /// 504 any more. A gRPC response ends with trailers saying
    /// `grpc-status: 4` (`DEADLINE_EXCEEDED`) and `mesh-error`, which is how
    /// gRPC reports a deadline mid-stream; any other response ends with an
    /// [`Elapsed`] error, which the server turns into a reset stream or a
    /// closed connection, so the caller sees the body was cut short.
    ///
    /// Its [`Default`] is an empty body, the body of the mesh's own 504.
    ///
    /// It holds its timers inline, so it allocates nothing and is not
    /// `Unpin`: pin it (`std::pin::pin!`, `Box::pin`) to read it by hand.
    #[derive(Debug)]
    pub struct TimeoutBody<B> {
        #[pin]
        inner: Option<B>,
        #[pin]
        deadline: Option<Sleep>,
        #[pin]
        idle_sleep: Option<Sleep>,
        idle: Option<Duration>,
        grpc: bool,
    }
}

impl<B> Default for TimeoutBody<B> {
    fn default() -> Self {
        Self {
            inner: None,
            deadline: None,
            idle_sleep: None,
            idle: None,
            grpc: false,
        }
    }
}

impl<B> TimeoutBody<B> {
    /// Wraps `inner`. With neither a deadline nor an idle timeout it only
    /// forwards frames, and holds no timer.
    pub(crate) fn new(
        inner: B,
        deadline: Option<Instant>,
        idle: Option<Duration>,
        grpc: bool,
    ) -> Self {
        Self {
            inner: Some(inner),
            deadline: deadline.map(sleep_until),
            idle_sleep: idle.map(sleep),
            idle,
            grpc,
        }
    }
}

impl<B> Body for TimeoutBody<B>
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
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = inner.poll_frame(cx) {
            if let (Some(idle), Some(sleep)) = (this.idle, this.idle_sleep.as_pin_mut()) {
                sleep.reset(Instant::now() + *idle);
            }
            if frame.is_none() {
                this.inner.set(None);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let expired = if this
            .deadline
            .as_pin_mut()
            .is_some_and(|s| s.poll(cx).is_ready())
        {
            Timeout::Request
        } else if this
            .idle_sleep
            .as_pin_mut()
            .is_some_and(|s| s.poll(cx).is_ready())
        {
            Timeout::Idle
        } else {
            return Poll::Pending;
        };
        tracing::debug!(timeout = ?expired, "response body timed out");
        this.inner.set(None);
        if *this.grpc {
            return Poll::Ready(Some(Ok(Frame::trailers(deadline_trailers()))));
        }
        Poll::Ready(Some(Err(Elapsed::new(expired).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// The trailers that end a gRPC stream whose deadline passed.
fn deadline_trailers() -> HeaderMap {
    let kind = ProxyErrorKind::Timeout;
    let mut trailers = HeaderMap::with_capacity(3);
    trailers.insert(GRPC_STATUS, HeaderValue::from(kind.grpc_code()));
    trailers.insert(GRPC_MESSAGE, HeaderValue::from_static(kind.reason()));
    trailers.insert(MESH_ERROR, HeaderValue::from_static(kind.reason()));
    trailers
}
