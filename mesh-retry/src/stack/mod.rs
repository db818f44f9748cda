//! A route's request timeout, retries and per-try timeout, as one service.
//!
//! # Why one service
//!
//! Every request a route carries pays for its timeouts and its retry
//! layer, though almost none is ever retried. Stacked as three layers
//! ([`RequestTimeout`](crate::RequestTimeout), [`Retry`](crate::Retry),
//! [`AttemptTimeout`](crate::AttemptTimeout)), each finds out on its own
//! what the others already know: each reads the clock, the deadline goes
//! from one to the next as a request extension (three allocations on a
//! request that had none), each looks up `content-type` to tell gRPC, and
//! the request and three nested futures are moved through three calls.
//! [`RouteStack`] does the same work once: one clock reading serves the
//! deadline, the per-try timeout and the budget deposit; the deadline is
//! passed to each attempt by value; gRPC is detected once; and the response
//! future is one state machine with one timer, made only if the response
//! has to be waited for.
//!
//! # What it does
//!
//! Exactly what the three layers do in that order, with the per-try
//! timeout writing the deadline header
//! ([`RouteRetryPolicy::layer`](crate::RouteRetryPolicy::layer) stacked
//! them so):
//!
//! - the request's deadline is the nearest of the route's `request`
//!   timeout, the deadline the caller sent (`grpc-timeout` on a gRPC
//!   request, `mesh-deadline` on another) and a [`Deadline`] extension
//!   already on the request;
//! - each attempt sends the nearer of its per-try timeout and what is left
//!   of the deadline in the deadline header;
//! - an attempt that passes its per-try timeout gets the mesh's 504 (gRPC
//!   `DEADLINE_EXCEEDED`), which is retried like any other failure; see
//!   [`retry`](crate::retry) for what is retried, and when not;
//! - when the deadline passes before a response head, the caller gets the
//!   mesh's 504 (gRPC `DEADLINE_EXCEEDED`); after the head, the response
//!   body is held to the deadline and to the `idle` timeout by
//!   [`TimeoutBody`];
//! - a request whose deadline has passed when it arrives (`mesh-deadline:
//!   0`, `grpc-timeout: 0n`), or when a retry is about to start, gets
//!   that answer at once, and no attempt is sent; so does a retry of a
//!   request that is not gRPC with less than a millisecond left, which
//!   `mesh-deadline` (whole milliseconds) cannot say. Such
//!   a retry, decided and not sent, is counted as `deadline_exceeded` and
//!   given back to the budget, as one the caller drops while it waits is
//!   (see [`retry`](crate::retry)).
//! - a retry that the inner service fails to get ready for (its
//!   `poll_ready` fails: a balancer left with no endpoints, a client whose
//!   connection closed) is not sent: the caller gets the response the
//!   retry was to replace, body unread, as from the retry layer, and the
//!   retry is given back to the budget and counted as `not_retryable`,
//!   reason `unavailable` (see [`metrics`](crate::metrics)). As there, a
//!   response is held for this only when its body has ended or is known
//!   to be at most 64 KiB (a larger one would keep its HTTP/2 stream's
//!   flow-control window through the backoff); any other is dropped when
//!   the retry is decided, and the caller then gets the service's error.
//!
//! One difference: the deadline is not added to the request as a
//! [`Deadline`] extension, since nothing inside needs it; the upstream
//! learns it from the header.
//!
//! The three layers stay, for stacks that need something between them;
//! composed by hand they cost about 1,600 instructions more per request
//! than this service (`benches/README.md`, section `## retry`), most of
//! it the [`Deadline`] extension's three allocations, the nested futures'
//! moves and the two extra clock readings.
//!
//! # A gRPC status in trailers right after the head
//!
//! By default the stack decides by the response head, as the retry layer
//! does. A gRPC server may also fail a call with an ordinary head and, at
//! once, trailers carrying the status, which linkerd2-proxy retries by
//! reading the answer's first frame. A stack built with
//! [`RouteStackLayer::peek_grpc_trailers`] does the same (see
//! [`retry::peek`](crate::retry::peek) for which answers are read): the
//! wait for that frame is part of the attempt, bounded by its per-try
//! timeout and by the deadline, after which the answer goes on unread. It
//! is a mode of its own, [`RouteStack<S, PeekTrailers>`](RouteStack),
//! because the frame read has to reach the caller first, so its response
//! body is a [`TimeoutBody`] of a [`PeekBody`]; the default stack's types,
//! code and cost per request are left as they were.
//!
//! The inner service's response body must have a [`Default`], for the
//! stack's own answer to an expired request, as the
//! [retry layer's](crate::retry) must: over mesh-core's `Client`, whose
//! body is hyper's `Incoming`, map its responses with `Proxied::from`
//! first.
//!
//! ```
//! use std::{convert::Infallible, sync::Arc, time::Duration};
//!
//! use mesh_core::body::{BoxBody, Proxied, empty, full};
//! use mesh_retry::{Budget, RetryPolicy, RouteStackLayer, Timeouts, replay::ReplayBody};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let upstream = service_fn(|req: http::Request<ReplayBody<BoxBody>>| async move {
//!     // The attempt's 2 s are nearer than the request's 10 s.
//!     assert_eq!(req.headers()["mesh-deadline"], "2000");
//!     Ok::<_, Infallible>(http::Response::new(Proxied::from(full("hello"))))
//! });
//! let timeouts = Timeouts {
//!     request: Some(Duration::from_secs(10)),
//!     per_try: Some(Duration::from_secs(2)),
//!     ..Timeouts::default()
//! };
//! let budget = Arc::new(Budget::default()); // share it across routes
//! let route = ServiceBuilder::new()
//!     .layer(RouteStackLayer::new(RetryPolicy::default(), timeouts, budget))
//!     .service(upstream);
//! let res = route.oneshot(http::Request::new(empty())).await?;
//! assert_eq!(res.status(), 200);
//! # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! # })?;
//! # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::{
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use http_body::Body;
use mesh_core::BoxError;
use tokio::time::Instant;
use tower_service::Service;

use crate::{
    Deadline, deadline,
    metrics::NotRetryable,
    replay::ReplayBody,
    retry::{
        HeadOnly, PeekBody, PeekTrailers, Shared,
        attempts::{self, Attempts, Head},
    },
    timeout::{
        TimeoutBody,
        attempt::{PerTry, start_attempt},
    },
};

pub mod future;
mod layer;
pub mod peek;
#[cfg(test)]
mod tests;

pub use self::layer::RouteStackLayer;

/// A route's request timeout, retries and per-try timeout in one service.
/// See the [module docs](self).
///
/// `P` says whether a gRPC answer's first frame is read before deciding
/// on it: [`HeadOnly`] by default, [`PeekTrailers`] for a stack built with
/// [`RouteStackLayer::peek_grpc_trailers`].
#[derive(Debug)]
pub struct RouteStack<S, P = HeadOnly> {
    inner: S,
    config: Arc<Config>,
    mode: PhantomData<fn() -> P>,
}

/// What every request of a [`RouteStack`] shares: built once per
/// configuration.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    retry: Shared,
    request: Option<Duration>,
    idle: Option<Duration>,
    per_try: Option<PerTry>,
}

impl AsRef<Shared> for Config {
    fn as_ref(&self) -> &Shared {
        &self.retry
    }
}

impl<S: Clone, P> Clone for RouteStack<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}

/// The call of either mode, up to the head-only future: sends the first
/// attempt of `$req` through `$inner` (the service polled ready), and
/// makes the future that answers it, with the stack's `$config`.
///
/// A macro, expanded into each call, rather than a function: moved into a
/// function, even one always inlined, the head-only call changed how the
/// bench binary was split into codegen units, and every request through it
/// (the bare service's too) cost 48 instructions more.
macro_rules! call {
    ($inner:ident, $config:ident, $req:ident) => {{
        // The service that was polled ready answers the first attempt. Only
        // a request that may be retried keeps a clone for its retries (which
        // polls it ready before each): a clone can cost several reference
        // counts (a pooled client's), and most requests are never retried.
        let policy = &$config.retry.policy;
        let (mut parts, body) = $req.into_parts();

        let (grpc, sent) = deadline::kind_and_sent(&parts.headers);
        let extension = parts.extensions.get::<Deadline>().map(|d| d.instant());
        let retries = policy.retries();
        // One clock reading, if anything needs one.
        let now = (retries
            || sent.is_some()
            || extension.is_some()
            || $config.request.is_some()
            || $config.per_try.is_some())
        .then(Instant::now);
        let deadline = now.and_then(|now| {
            [$config.request, sent]
                .into_iter()
                .flatten()
                .filter_map(|timeout| now.checked_add(timeout))
                .chain(extension)
                .min()
        });
        // A deadline already passed: the caller has given up, and an
        // upstream told it has no time left may not read that at all. It
        // is answered now and never sent.
        if now
            .zip(deadline)
            .is_some_and(|(now, deadline)| deadline <= now)
        {
            return future::ResponseFuture::expired(grpc);
        }
        let per_try = $config.per_try.as_ref();
        let start = |parts: &mut http::request::Parts| {
            now.and_then(|now| start_attempt(&mut parts.headers, now, deadline, per_try, grpc))
        };
        let future = |fut, until, retry| {
            future::ResponseFuture::new(fut, deadline, until, $config.idle, grpc, retry)
        };

        if !retries {
            let until = start(&mut parts);
            let fut = $inner.call(Request::from_parts(parts, ReplayBody::passthrough(body)));
            return future(fut, until, None);
        }
        if let Some(now) = now {
            $config.retry.budget.deposit_at(now);
        }
        let labels = attempts::labels(&$config.retry.metrics, &parts.extensions);
        let not_retryable = |reason, unprocessed_only| {
            Attempts::unretryable(
                $config.clone(),
                reason,
                unprocessed_only,
                grpc,
                labels.clone(),
            )
        };
        // A method that is not retried is still retried after a failure
        // the upstream did not process, if the policy says so: it keeps
        // its head and a replay of its body as any other.
        let unprocessed_only = !policy.allows(&parts.method, || grpc);
        if unprocessed_only && !policy.unprocessed() {
            let retry = not_retryable(NotRetryable::NonIdempotent, false);
            let until = start(&mut parts);
            let fut = $inner.call(Request::from_parts(parts, ReplayBody::passthrough(body)));
            return future(fut, until, Some(retry));
        }
        match ReplayBody::try_new(body, policy.max_replay_bytes()) {
            Err(body) => {
                let retry = not_retryable(NotRetryable::BodyTooLarge, unprocessed_only);
                let until = start(&mut parts);
                let fut = $inner.call(Request::from_parts(parts, ReplayBody::passthrough(body)));
                future(fut, until, Some(retry))
            }
            Ok((body, replay)) => {
                // The head is copied before the attempt's deadline header is
                // written: each attempt writes its own.
                let head = Head::with_deadline(&parts, deadline);
                let until = start(&mut parts);
                let fut = $inner.call(Request::from_parts(parts, body));
                let retries = $inner.clone();
                let retry = Attempts::retryable(
                    $config.clone(),
                    retries,
                    head,
                    replay,
                    unprocessed_only,
                    grpc,
                    labels,
                );
                future(fut, until, Some(retry))
            }
        }
    }};
}

impl<S, B, RB> Service<Request<B>> for RouteStack<S, HeadOnly>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    RB: Body + Default,
{
    type Response = Response<TimeoutBody<RB>>;
    type Error = BoxError;
    type Future = future::ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Inline, so that a copy is made in whichever of the caller's codegen
    // units calls it (tower's `Oneshot`, in the bench), to be inlined
    // there: which unit a generic function lands in moves with changes to
    // code nowhere near it, and once the response future's retry states
    // held the failed response, this call was no longer inlined and the
    // future was copied out of it, some 70 instructions more per request.
    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = &mut self.inner;
        let config = &self.config;
        call!(inner, config, req)
    }
}

impl<S, B, RB> Service<Request<B>> for RouteStack<S, PeekTrailers>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    RB: Body + Default + Unpin,
{
    type Response = Response<TimeoutBody<PeekBody<RB>>>;
    type Error = BoxError;
    type Future = peek::ResponseFuture<S, B, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        peek::ResponseFuture::new(head_only(&mut self.inner, &self.config, req))
    }
}

/// The head-only future of a request, for the peeking call to go on from.
fn head_only<S, B>(
    inner: &mut S,
    config: &Arc<Config>,
    req: Request<B>,
) -> future::ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>> + Clone,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    call!(inner, config, req)
}
