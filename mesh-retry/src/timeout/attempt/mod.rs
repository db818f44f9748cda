//! The per-try timeout: how long one attempt may take to respond.
//!
//! [`AttemptTimeout`] sits inside the retry layer, once per attempt. If the
//! response head has not arrived within the per-try timeout, the attempt is
//! dropped and the layer answers with the mesh's 504 (or gRPC
//! `DEADLINE_EXCEEDED`), marked with the
//! [`ProxyErrorKind::Timeout`](mesh_core::ProxyErrorKind::Timeout) extension;
//! the retry layer reads that mark as a per-try timeout and retries. When no
//! retry is left, that 504 is what the caller gets.
//!
//! The timeout covers the response head only: once the body streams, the
//! attempt can no longer be retried, and the request deadline and idle
//! timeout of [`RequestTimeout`](crate::RequestTimeout) take over.
//!
//! Before each attempt, the layer writes the time the attempt has into the
//! deadline header (`grpc-timeout` or `mesh-deadline`): the nearer of the
//! per-try timeout and what remains of the request's
//! [`Deadline`](crate::Deadline). So the upstream learns how long this
//! attempt will be waited for, already reduced by the time earlier attempts
//! and backoff took.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use mesh_core::error::is_grpc;
use tokio::time::Instant;
use tower_service::Service;

use crate::deadline::{self, Deadline};

pub mod future;
mod layer;

pub use self::layer::AttemptTimeoutLayer;

/// Holds each attempt to the per-try timeout. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AttemptTimeout<S> {
    inner: S,
    per_try: Option<Duration>,
}

impl<S> AttemptTimeout<S> {
    /// Holds each call to `per_try` (none: only propagates the deadline).
    pub fn new(inner: S, per_try: Option<Duration>) -> Self {
        Self { inner, per_try }
    }
}

impl<S, B, RB> Service<Request<B>> for AttemptTimeout<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let grpc = is_grpc(req.headers());
        let deadline = req.extensions().get::<Deadline>().map(|d| d.instant());
        if deadline.is_none() && self.per_try.is_none() {
            return future::ResponseFuture::new(self.inner.call(req), None, grpc);
        }
        let now = Instant::now();
        let per_try = self.per_try.map(|t| now + t);
        let until = match (deadline, per_try) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(now),
        };
        deadline::propagate(
            req.headers_mut(),
            until.saturating_duration_since(now),
            grpc,
        );
        future::ResponseFuture::new(self.inner.call(req), per_try, grpc)
    }
}
