//! The request timeout: one deadline over every attempt.
//!
//! [`RequestTimeout`] sets the request's [`Deadline`]: the nearest of its
//! configured timeout, the deadline the caller sent (`grpc-timeout` on a
//! gRPC request, `mesh-deadline` on another) and a [`Deadline`] extension
//! already on the request. It
//! inserts the deadline as a request extension for the layers inside, and
//! writes the time remaining into the outgoing deadline header.
//!
//! If the response head has not arrived by the deadline, the inner call is
//! dropped (cancelling any attempt and backoff in progress) and the caller
//! gets the mesh's 504, or a trailers-only gRPC response with
//! `grpc-status: 4`. A request whose deadline has already passed when it
//! arrives (`mesh-deadline: 0`, `grpc-timeout: 0n`) gets that answer at
//! once, and is not sent: gRPC's timeout must be positive, and an upstream
//! that ignores the header would do the work for a caller that has gone. After the head, the response body is held to the same
//! deadline, and to the idle timeout, by [`TimeoutBody`].

use std::{
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::TimeoutBody;
use crate::deadline::{self, Deadline};

pub mod future;
mod layer;

pub use self::layer::RequestTimeoutLayer;

/// Holds each request to a deadline. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct RequestTimeout<S> {
    inner: S,
    timeout: Option<Duration>,
    idle: Option<Duration>,
    propagate: bool,
}

impl<S> RequestTimeout<S> {
    /// Holds requests to `timeout` (none: only to the caller's deadline),
    /// and response bodies to the idle timeout `idle`. A zero is no
    /// timeout, as `None` is (see [`Timeouts`](crate::Timeouts)).
    pub fn new(inner: S, timeout: Option<Duration>, idle: Option<Duration>) -> Self {
        Self {
            inner,
            timeout: super::enabled(timeout),
            idle: super::enabled(idle),
            propagate: true,
        }
    }

    /// Whether to write the time remaining into the outgoing deadline
    /// header. Default `true`. Turn it off when an
    /// [`AttemptTimeout`](crate::AttemptTimeout) inside writes it for each
    /// attempt anyway.
    #[must_use]
    pub fn with_propagation(mut self, propagate: bool) -> Self {
        self.propagate = propagate;
        self
    }
}

impl<S, B, RB> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<TimeoutBody<RB>>;
    type Error = S::Error;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let (grpc, sent) = deadline::kind_and_sent(req.headers());
        let mut nearest = req.extensions().get::<Deadline>().map(|d| d.instant());
        if self.timeout.is_some() || sent.is_some() || nearest.is_some() {
            let now = Instant::now();
            // A timeout too long for the clock to reach is no deadline.
            for at in [self.timeout, sent]
                .into_iter()
                .flatten()
                .filter_map(|timeout| now.checked_add(timeout))
            {
                nearest = Some(nearest.map_or(at, |n| n.min(at)));
            }
            if let Some(at) = nearest {
                // Passed already: the caller has given up, so the request
                // is answered now and never sent.
                if at <= now {
                    tracing::debug!("request deadline passed before it was sent");
                    return future::ResponseFuture::new(None, None, None, grpc);
                }
                req.extensions_mut().insert(Deadline::at(at));
                if self.propagate {
                    let remaining = at.saturating_duration_since(now);
                    deadline::propagate(req.headers_mut(), remaining, grpc);
                }
            }
        }
        future::ResponseFuture::new(Some(self.inner.call(req)), nearest, self.idle, grpc)
    }
}
