//! Retrying failed HTTP requests, within a budget.
//!
//! [`Retry`] sends a request, and when the response is a failure its
//! [`RetryPolicy`] retries (a 5xx, a retryable gRPC code in the headers, a
//! gRPC call answered by a plain response whose code, as its gRPC client
//! reads it, is a retryable one, a connection error before any response, a
//! per-try timeout), sends it
//! again, after a backoff, with the same head and a replay of the same
//! body. It decides by the response head: a gRPC code that arrives in
//! trailers right after an ordinary head is retried only by a layer built
//! with [`RetryLayer::peek_grpc_trailers`], which reads the first frame of
//! such an answer first, as linkerd2-proxy does (see [`peek`] for why that
//! is a separate mode). A request is retried only if all of these hold:
//!
//! 1. its method is idempotent, or the route marks every request (or every
//!    gRPC call) retryable, or the failure proves that the upstream did not
//!    process the request (an HTTP/2 stream it refused, one a graceful
//!    `GOAWAY` left out, a request canceled before it was sent), which
//!    [`RetryPolicy::with_unprocessed`] retries whatever the method, by
//!    default;
//! 2. its body fits the replay buffer, known up front by its
//!    `content-length` (`body_too_large`) or found out while sending it
//!    (`committed`);
//! 3. it has attempts left ([`RetryPolicy::max_attempts`]);
//! 4. the upstream did not answer before the request body had been sent
//!    whole (`streaming_response`): it answered a request it had not read,
//!    so sending it again would not repeat the same exchange. A body that
//!    was whole in memory when the request came (see
//!    [`replay`](crate::replay)) counts as sent whole: every attempt has
//!    all of it, however early the answer. (An attempt that failed to
//!    connect, broke before any response, hit its per-try timeout, or got
//!    any other answer the mesh made itself, such as a 503
//!    for a request it had nowhere to send, is different: the next attempt
//!    replays what was sent and sends the rest, once the failed attempt's
//!    client has let go of the body. hyper lets go of it from the task
//!    that sends it, usually just after the failure: the retry waits for
//!    that, up to a second, and is given up as `body_in_use` after.);
//! 5. the request's [`Deadline`], if any, leaves more
//!    time than the backoff, and still leaves some when the backoff is
//!    over and the service is ready: no retry is sent past the deadline,
//!    nor, on a request that is not gRPC, with less than a millisecond
//!    left, which `mesh-deadline` (whole milliseconds) cannot say;
//! 6. the shared [`Budget`] has a retry to spare.
//!
//! When one of them does not hold, the caller gets the **last real
//! response** (or error), not a synthetic one, and [`RetryMetrics`] counts
//! why.
//!
//! The same response is what the caller gets when a retry decided on is
//! not sent because the inner service fails to get ready for it (a
//! balancer left with no endpoints, a client whose connection closed): the
//! service's error says nothing of this request, which was answered, and
//! a caller that reads the upstream's 503 learns more than from the mesh's
//! error. (linkerd2-proxy's retries return the response they hold when the
//! service is not ready at once, and count it as `overflow`; a readiness
//! error there reaches the caller.) A failed attempt that had no response
//! gives its own error, as when no retry was decided. The retry is not
//! counted as sent, and the budget gets it back; [`RetryMetrics`] counts
//! it under a reason of its own, `unavailable`, since the attempts, the
//! budget and the deadline all allowed it (see [`metrics`](crate::metrics)
//! for why that reason). To answer with it, the failed response is held,
//! unread, through the backoff, as linkerd2-proxy holds it, but only when
//! its body has ended or is known to be at most 64 KiB: an unread body
//! keeps its HTTP/2 stream's share of the connection's flow-control
//! window, and a few large ones held through a backoff would stall the
//! other responses on that connection. A larger failure, or one of
//! unknown length, is dropped when the retry is decided, which resets its
//! stream; if the retry is then refused, the caller gets the service's
//! error (or, past the deadline, the mesh's 504), as it would with no
//! response held.
//!
//! One answer is the layer's own. A request whose deadline has passed
//! when it arrives (its [`Deadline`] extension, or else
//! the `mesh-deadline: 0` or `grpc-timeout: 0n` its caller sent) is
//! answered at once with the mesh's 504 (gRPC `DEADLINE_EXCEEDED`), with
//! `mesh-error: request timed out`, as the timeout layers and
//! [`RouteStack`](crate::RouteStack) answer it: its caller has given up,
//! so it is not sent, not retried, deposits nothing into the budget and
//! counts in no retry metric. This holds whatever the method, so that a
//! `RetryLayer` stacked on its own sends no work upstream that nobody
//! waits for. (A policy that never retries, [`RetryPolicy::never`], makes
//! the layer a pass-through that reads nothing of the request, deadline
//! included, so that it costs nothing: a timeout layer answers for the
//! deadline then.) Beyond that, the retry layer answers for no
//! deadline: a [`RequestTimeout`](crate::RequestTimeout) outside it
//! answers 504 when the deadline passes while an attempt or a backoff is
//! under way; the retry layer itself only sends no retry past the
//! deadline. (A timer fires on a whole millisecond, so a backoff may end
//! just after a deadline it was decided to fit in; the retry it was
//! waiting for is then given up, and counted, like one the deadline
//! refused at once.)
//!
//! Every original request deposits into the budget, whether or not it is
//! ever retried, as in Finagle. A retry is withdrawn when it is decided,
//! before its backoff; if it is then not sent after all (the deadline
//! passed before it could be, its head could not be rebuilt, the service
//! failed to get ready, or the caller dropped the response future while
//! it waited), the withdrawal is [refunded](crate::Budget::refund), and it
//! is not counted as a retry sent. A deadline that passed is counted as
//! `deadline_exceeded`, also when a request timeout outside answered and
//! dropped the retry that waited, or the failure that waited for its
//! attempt's client to let go of the body (nothing was withdrawn for that
//! one yet); a caller that went away before its deadline is counted
//! nowhere, as it got no response to explain.
//!
//! Each retried attempt carries a `mesh-retry-attempt` header with the
//! attempt's number, counting the first attempt as 1 (so the first retry
//! says `2`), like Envoy's `x-envoy-attempt-count`. The first attempt is
//! sent with the caller's headers as they are (here and in
//! [`RouteStack`](crate::RouteStack)), so a `mesh-retry-attempt` the
//! caller wrote (an earlier hop's retry, say) reaches the upstream
//! unchanged, and a retry replaces it; see [`MESH_RETRY_ATTEMPT`] for why.
//! A retry of a request that carries a deadline header (`mesh-deadline`,
//! or `grpc-timeout` on gRPC) tells the upstream the time left when the
//! retry is sent, not what was left for the first attempt.
//!
//! The inner service receives requests whose body is a
//! [`ReplayBody`] of the original, and errors are
//! [`BoxError`]s, since retry decisions read the error's source chain. Its
//! response body must have a [`Default`], the empty body the layer answers
//! an expired request with (mesh-core's `Proxied` and `BoxBody` have one),
//! as the timeout layers require. hyper's `Incoming`, the body mesh-core's
//! `Client` answers with, has none: put
//! `map_response(|res: Response<Incoming>| res.map(Proxied::from))`
//! between the client and the layer.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderName, Request, Response};
use http_body::Body;
use mesh_core::{BoxError, error::is_grpc};
use tokio::time::Instant;
use tower_service::Service;

use self::attempts::Attempts;
use crate::{
    Budget, Deadline, deadline,
    metrics::{NotRetryable, RetryMetrics, RouteRetryMetrics},
    replay::ReplayBody,
};

pub(crate) mod attempts;
mod backoff;
pub mod future;
mod head;
mod layer;
pub mod peek;
mod policy;
#[cfg(test)]
mod tests;

pub use self::{
    backoff::{Backoff, InvalidBackoff},
    layer::RetryLayer,
    peek::{HeadOnly, PeekBody, PeekTrailers},
    policy::RetryPolicy,
};

/// The header that numbers retried attempts: `2` on the first retry.
///
/// Written on retries only. On the first attempt, a value the caller sent
/// is passed through unchanged rather than removed or set to `1`: the
/// header only informs the upstream (nothing in the mesh reads it to
/// decide anything), so a stale or forged value misleads no decision, and
/// looking for it would cost every request a header lookup on its
/// fastest path. A retry always overwrites it with its own number.
pub const MESH_RETRY_ATTEMPT: HeaderName = HeaderName::from_static("mesh-retry-attempt");

/// Retries failed requests within a budget. See the [module docs](self).
#[derive(Debug)]
pub struct Retry<S, P = HeadOnly> {
    inner: S,
    shared: Arc<Shared>,
    mode: P,
}

/// What every request of a [`Retry`] shares: built once per configuration.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) policy: RetryPolicy,
    pub(crate) budget: Arc<Budget>,
    pub(crate) metrics: Metrics,
}

/// Where the retry counters come from.
#[derive(Clone, Debug)]
pub(crate) enum Metrics {
    None,
    /// Resolved once, for a route named in configuration.
    Route(RouteRetryMetrics),
    /// Resolved, when something is counted, from the request's
    /// [`DstService`](mesh_core::labels::DstService) and
    /// [`RouteId`](mesh_core::route::RouteId) extensions.
    FromRequest(RetryMetrics),
}

impl<S: Clone, P: Clone> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            mode: self.mode.clone(),
        }
    }
}

impl<S, B, RB> Service<Request<B>> for Retry<S, HeadOnly>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    RB: Body + Default,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = future::ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Inlined into the caller (tower's `Oneshot`, a client's dispatch):
    // called on its own, it returns its response future, a couple of
    // hundred bytes, by copy, which measured 300 instructions a request.
    #[inline(always)]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The service that was polled ready answers the first attempt; only
        // a request that may be retried keeps a clone for its retries.
        let inner = &mut self.inner;
        let shared = &self.shared;
        let policy = &shared.policy;
        // A policy that never retries reads nothing of the request, not
        // even its deadline: the layer is then a pass-through, and a
        // timeout layer answers for the deadline.
        if !policy.retries() {
            return future::ResponseFuture::once(inner.call(req.map(ReplayBody::passthrough)));
        }
        let (parts, body) = req.into_parts();
        // The request's deadline: a request timeout's extension, or else
        // the one its caller sent (one header lookup after `content-type`),
        // counted from the clock reading that serves the budget.
        let now = Instant::now();
        let grpc = is_grpc(&parts.headers);
        let extension = parts.extensions.get::<Deadline>().copied();
        let deadline = extension.or_else(|| {
            deadline::incoming(&parts.headers, grpc)
                .and_then(|sent| now.checked_add(sent))
                .map(Deadline::at)
        });
        // A deadline already passed: the caller has given up. It is
        // answered now and never sent, as the timeout layers and the route
        // stack answer it, and deposits nothing: no request went out.
        if deadline.is_some_and(|deadline| deadline.instant() <= now) {
            tracing::debug!("request deadline passed before it was sent");
            return future::ResponseFuture::expired(grpc);
        }
        shared.budget.deposit_at(now);

        let labels = attempts::labels(&shared.metrics, &parts.extensions);
        // A method that is not retried is still retried after a failure
        // the upstream did not process, if the policy says so: it keeps
        // its head and a replay of its body as any other.
        let unprocessed_only = !policy.allows(&parts.method, || grpc);
        if unprocessed_only && !policy.unprocessed() {
            let req = Request::from_parts(parts, ReplayBody::passthrough(body));
            let fut = inner.call(req);
            return future::ResponseFuture::unretryable(
                fut,
                shared.clone(),
                NotRetryable::NonIdempotent,
                false,
                grpc,
                labels,
            );
        }
        match ReplayBody::try_new(body, policy.max_replay_bytes()) {
            Err(body) => {
                let req = Request::from_parts(parts, ReplayBody::passthrough(body));
                let fut = inner.call(req);
                future::ResponseFuture::unretryable(
                    fut,
                    shared.clone(),
                    NotRetryable::BodyTooLarge,
                    unprocessed_only,
                    grpc,
                    labels,
                )
            }
            Ok((body, replay)) => {
                let head = attempts::Head::clone_from(&parts, deadline, extension.is_some());
                let fut = inner.call(Request::from_parts(parts, body));
                let retries = inner.clone();
                future::ResponseFuture::retryable(
                    fut,
                    retries,
                    shared.clone(),
                    head,
                    replay,
                    unprocessed_only,
                    grpc,
                    labels,
                )
            }
        }
    }
}

/// Sends the first attempt of `req` through `inner`, and makes the future
/// `F` that answers it: what [`Retry::call`] does, for a mode other than
/// [`HeadOnly`], whose call is kept apart so that its code, measured on
/// every request, stays as it was.
#[inline(always)]
fn start<S, B, F>(inner: &mut S, shared: &Arc<Shared>, req: Request<B>) -> F
where
    S: Service<Request<ReplayBody<B>>> + Clone,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    F: future::Start<S, B>,
{
    // The service that was polled ready answers the first attempt; only
    // a request that may be retried keeps a clone for its retries.
    let policy = &shared.policy;
    // A policy that never retries reads nothing of the request, not
    // even its deadline: the layer is then a pass-through, and a
    // timeout layer answers for the deadline.
    if !policy.retries() {
        return F::once(inner.call(req.map(ReplayBody::passthrough)));
    }
    let (parts, body) = req.into_parts();
    // The request's deadline: a request timeout's extension, or else
    // the one its caller sent (one header lookup after `content-type`),
    // counted from the clock reading that serves the budget.
    let now = Instant::now();
    let grpc = is_grpc(&parts.headers);
    let extension = parts.extensions.get::<Deadline>().copied();
    let deadline = extension.or_else(|| {
        deadline::incoming(&parts.headers, grpc)
            .and_then(|sent| now.checked_add(sent))
            .map(Deadline::at)
    });
    // A deadline already passed: the caller has given up. It is
    // answered now and never sent, as the timeout layers and the route
    // stack answer it, and deposits nothing: no request went out.
    if deadline.is_some_and(|deadline| deadline.instant() <= now) {
        tracing::debug!("request deadline passed before it was sent");
        return F::expired(grpc);
    }
    shared.budget.deposit_at(now);

    let labels = attempts::labels(&shared.metrics, &parts.extensions);
    // A method that is not retried is still retried after a failure
    // the upstream did not process, if the policy says so: it keeps
    // its head and a replay of its body as any other.
    let unprocessed_only = !policy.allows(&parts.method, || grpc);
    if unprocessed_only && !policy.unprocessed() {
        let req = Request::from_parts(parts, ReplayBody::passthrough(body));
        let fut = inner.call(req);
        let retry = Attempts::unretryable(
            shared.clone(),
            NotRetryable::NonIdempotent,
            false,
            grpc,
            labels,
        );
        return F::attempts(fut, retry, now);
    }
    match ReplayBody::try_new(body, policy.max_replay_bytes()) {
        Err(body) => {
            let req = Request::from_parts(parts, ReplayBody::passthrough(body));
            let fut = inner.call(req);
            let retry = Attempts::unretryable(
                shared.clone(),
                NotRetryable::BodyTooLarge,
                unprocessed_only,
                grpc,
                labels,
            );
            F::attempts(fut, retry, now)
        }
        Ok((body, replay)) => {
            let head = attempts::Head::clone_from(&parts, deadline, extension.is_some());
            let fut = inner.call(Request::from_parts(parts, body));
            let retries = inner.clone();
            let retry = Attempts::retryable(
                shared.clone(),
                retries,
                head,
                replay,
                unprocessed_only,
                grpc,
                labels,
            );
            F::attempts(fut, retry, now)
        }
    }
}
