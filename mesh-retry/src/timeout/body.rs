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
use tokio::time::{Instant, Sleep, sleep_until};

use super::error::{Elapsed, Timeout};

pin_project_lite::pin_project! {
    /// A response body that ends when the request's deadline passes, or when
    /// the upstream sends nothing for the idle timeout.
    ///
    /// The response head has been sent by then, so the timeout cannot be a
    /// 504 any more. A gRPC response ends with trailers saying
    /// `grpc-status: 4` (`DEADLINE_EXCEEDED`) and `mesh-error`, which is how
    /// gRPC reports a deadline mid-stream; any other response ends with an
    /// [`Elapsed`] error, which the server turns into a reset stream or a
    /// closed connection, so the caller sees the body was cut short.
    ///
    /// The idle timeout counts the time spent waiting for the upstream's
    /// next frame, not the time the caller takes to read one. The deadline
    /// counts both: a body whose frames are always ready, read slowly,
    /// still ends at the deadline (only its last frame is let through
    /// late, since it ends the body anyway).
    ///
    /// A timer is made only when the body first has to wait for a frame,
    /// and then reused, so a body that is ready when read costs no timer.
    /// Its [`Default`] is an empty body, the body of the mesh's own 504.
    #[derive(Debug)]
    #[project = TimeoutBodyProj]
    pub struct TimeoutBody<B> {
        #[pin]
        inner: Option<B>,
        deadline: Option<Instant>,
        idle: Option<Duration>,
        // Armed while waiting for a frame: when it fires, and the timer.
        waiting_until: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
        grpc: bool,
    }
}

impl<B> Default for TimeoutBody<B> {
    fn default() -> Self {
        Self {
            inner: None,
            deadline: None,
            idle: None,
            waiting_until: None,
            timer: None,
            grpc: false,
        }
    }
}

impl<B> TimeoutBody<B> {
    /// Wraps `inner`. With neither a deadline nor an idle timeout it only
    /// forwards frames.
    pub(crate) fn new(
        inner: B,
        deadline: Option<Instant>,
        idle: Option<Duration>,
        grpc: bool,
    ) -> Self {
        Self {
            inner: Some(inner),
            deadline,
            idle,
            waiting_until: None,
            timer: None,
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
            *this.waiting_until = None;
            match &frame {
                None => this.inner.set(None),
                // A body whose frames are always ready (an upstream faster
                // than the caller reads) never waits, so no timer would
                // see its deadline pass: read the clock. Not for a frame
                // that ends the body, which the deadline would not cut
                // short (trailers, or data the body says is its last), so
                // a one-frame body reads no clock.
                Some(Ok(f))
                    if f.is_data()
                        && this.deadline.is_some_and(|deadline| {
                            !this
                                .inner
                                .as_ref()
                                .as_pin_ref()
                                .is_none_or(|b| b.is_end_stream())
                                && Instant::now() >= deadline
                        }) =>
                {
                    return expire(this, Timeout::Request);
                }
                Some(_) => {}
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.is_none() && this.idle.is_none() {
            return Poll::Pending;
        }
        // Arm the timer for this wait: the deadline, or the idle timeout
        // from now, whichever is first. An idle timeout too long for the
        // clock to reach (a configured `3000000000000000h`) never fires.
        let until = match *this.waiting_until {
            Some(until) => until,
            None => {
                let idle_until = this.idle.and_then(|idle| Instant::now().checked_add(idle));
                let until = match (*this.deadline, idle_until) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(at), None) | (None, Some(at)) => at,
                    (None, None) => return Poll::Pending,
                };
                *this.waiting_until = Some(until);
                match this.timer.as_mut() {
                    Some(timer) => timer.as_mut().reset(until),
                    None => *this.timer = Some(Box::pin(sleep_until(until))),
                }
                until
            }
        };
        let fired = this
            .timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        if !fired {
            return Poll::Pending;
        }
        let expired = if this.deadline.is_some_and(|d| d <= until) {
            Timeout::Request
        } else {
            Timeout::Idle
        };
        expire(this, expired)
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

/// Ends the body because `expired` passed: with `DEADLINE_EXCEEDED`
/// trailers on gRPC, an [`Elapsed`] error otherwise.
fn expire<B: Body>(
    mut this: TimeoutBodyProj<'_, B>,
    expired: Timeout,
) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
    tracing::debug!(timeout = ?expired, "response body timed out");
    this.inner.set(None);
    *this.timer = None;
    if *this.grpc {
        return Poll::Ready(Some(Ok(Frame::trailers(deadline_trailers()))));
    }
    Poll::Ready(Some(Err(Elapsed::new(expired).into())))
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
