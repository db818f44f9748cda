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
//! [`Deadline`] (or, on a request no request timeout has seen, of the
//! deadline the caller sent in that header). So the upstream learns how
//! long this attempt will be waited for, already reduced by the time
//! earlier attempts and backoff took. An attempt whose deadline has
//! already passed is not sent: the layer answers it as timed out.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response};
use mesh_core::error::is_grpc;
use tokio::time::Instant;
use tower_service::Service;

use crate::deadline::{self, Deadline, GRPC_TIMEOUT, MESH_DEADLINE};

pub mod future;
mod layer;

pub use self::layer::AttemptTimeoutLayer;

/// Holds each attempt to the per-try timeout. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AttemptTimeout<S> {
    inner: S,
    per_try: Option<PerTry>,
}

/// The per-try timeout, and the deadline headers that carry it, written
/// once: most attempts have less to fear from the request's deadline than
/// from their own timeout, and send these as they are.
#[derive(Clone, Debug)]
pub(crate) struct PerTry {
    timeout: Duration,
    headers: Arc<(HeaderValue, HeaderValue)>,
}

impl PerTry {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            headers: Arc::new((
                deadline::mesh_deadline_value(timeout),
                deadline::encode_grpc_timeout(timeout),
            )),
        }
    }
}

impl<S> AttemptTimeout<S> {
    /// Holds each call to `per_try` (none: only propagates the deadline).
    /// A zero is no timeout, as `None` is (see [`Timeouts`](crate::Timeouts)).
    pub fn new(inner: S, per_try: Option<Duration>) -> Self {
        Self {
            inner,
            per_try: super::enabled(per_try).map(PerTry::new),
        }
    }
}

/// Writes the time an attempt starting `now` has into its deadline header:
/// the nearer of `per_try` and what remains until `deadline`. Returns when
/// the per-try timeout expires.
pub(crate) fn start_attempt(
    headers: &mut HeaderMap,
    now: Instant,
    deadline: Option<Instant>,
    per_try: Option<&PerTry>,
    grpc: bool,
) -> Option<Instant> {
    let per_try = per_try.and_then(|p| Some((now.checked_add(p.timeout)?, p)));
    match (deadline, per_try) {
        // The attempt's own timeout is the nearer: its header is ready.
        (Some(d), Some((until, p))) if until <= d => set_per_try(headers, p, grpc),
        (None, Some((_, p))) => set_per_try(headers, p, grpc),
        (Some(d), _) => deadline::propagate(headers, d.saturating_duration_since(now), grpc),
        (None, None) => {}
    }
    per_try.map(|(until, _)| until)
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
            // Nothing to hold the attempt to: the caller's header goes on
            // as it came, with the time it says is left (none spent here),
            // and no clock is read. But a caller that says none is left has
            // given up, as every layer here reads it.
            if deadline::incoming(req.headers(), grpc).is_some_and(|sent| sent.is_zero()) {
                tracing::debug!("request deadline passed before the attempt");
                return future::ResponseFuture::new(None, None, grpc);
            }
            return future::ResponseFuture::new(Some(self.inner.call(req)), None, grpc);
        }
        let now = Instant::now();
        // With no request deadline (no request timeout outside), the
        // deadline the caller sent is the request's: the per-try timeout
        // must not tell the upstream it has longer.
        let deadline = deadline.or_else(|| deadline::sent(req.headers(), grpc, now));
        // No attempt starts with no time left: it is answered as timed out.
        if deadline.is_some_and(|deadline| deadline <= now) {
            tracing::debug!("request deadline passed before the attempt");
            return future::ResponseFuture::new(None, None, grpc);
        }
        let until = start_attempt(
            req.headers_mut(),
            now,
            deadline,
            self.per_try.as_ref(),
            grpc,
        );
        future::ResponseFuture::new(Some(self.inner.call(req)), until, grpc)
    }
}

fn set_per_try(headers: &mut HeaderMap, per_try: &PerTry, grpc: bool) {
    let (mesh, grpc_timeout) = &*per_try.headers;
    if grpc {
        headers.insert(GRPC_TIMEOUT, grpc_timeout.clone());
    } else {
        headers.insert(MESH_DEADLINE, mesh.clone());
    }
}
