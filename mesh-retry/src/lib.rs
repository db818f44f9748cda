//! Retries bounded by a budget, bounded request-body replay, timeouts and
//! deadlines, as tower layers for HTTP clients and proxies.
//!
//! # Why
//!
//! Retries hide transient failures: a connection reset, a pod that was
//! shutting down, an upstream that answered 503 for a moment. But a fixed
//! "retry three times" multiplies the load by up to four on an upstream
//! that is already failing, and by four again at every layer of the call
//! graph that retries: a retry storm, which turns a brief outage into a
//! long one. This crate retries the way Finagle and Linkerd do, so that
//! retries stay cheap when failures are rare and bounded when they are not:
//!
//! - a [`Budget`] caps retries at a share of the traffic (20 % by default,
//!   plus a small reserve), shared across routes and services;
//! - a [`RetryPolicy`] says which failures are retried (5xx, gRPC codes,
//!   connection errors, per-try timeouts), how many attempts a request may
//!   make, and which methods are safe to repeat; a gRPC status that comes
//!   in trailers right after an ordinary head is read, and retried, by a
//!   [`RetryLayer`] or a [`RouteStackLayer`] built with
//!   `peek_grpc_trailers` ([`RetryLayer::peek_grpc_trailers`],
//!   [`RouteStackLayer::peek_grpc_trailers`]), as in Linkerd;
//! - request bodies are [replayed](replay) from a bounded buffer, never
//!   duplicated or dropped;
//! - [timeouts](timeout) answer with the mesh's 504 (or gRPC
//!   `DEADLINE_EXCEEDED`), and [deadlines](deadline) travel to the next hop.
//!
//! # What a budget saves
//!
//! The upstream's load per request, when it fails a share of attempts, for
//! 1,000 requests that arrive together. The fixed policy retries three times
//! with nothing to stop it; the default policy makes at most three attempts
//! within the [default budget](BudgetConfig::default). The table is computed
//! by `tests/storm.rs`, which fails if it changes:
//!
//! | upstream failure rate | fixed 3 retries, no budget | 3 attempts within the default budget |
//! |---|---|---|
//! | 0 % | 1.00× | 1.00× |
//! | 10 % | 1.12× | 1.12× |
//! | 50 % | 1.91× | 1.30× |
//! | 100 % | 4.00× | 1.30× |
//!
//! While failures are rare the budget changes nothing. During an outage it
//! holds the load at 1.2 × the requests plus the reserve (here 1,300
//! attempts, against 4,000 for the fixed policy).
//!
//! # The stack
//!
//! The layers go in this order, outermost first, so that the request
//! timeout covers every attempt and the backoff between them, and each
//! attempt has its own timeout that the retry layer can retry:
//!
//! ```text
//! RequestTimeoutLayer ─ RetryLayer ─ AttemptTimeoutLayer ─ client or connector
//! ```
//!
//! A route that needs nothing between them uses [`RouteStackLayer`]
//! instead, which does the work of all three in one [`RouteStack`]
//! service at a fraction of the cost per request (see [`stack`]), and is
//! what [`RouteRetryPolicy::layer`] builds. The layers are composed by
//! hand here (besides this crate, the example uses
//! `cargo add --git https://github.com/mesh-rs/mesh mesh-core`,
//! `cargo add tower http` and
//! `cargo add tokio --features full`):
//!
//! ```
//! use std::{convert::Infallible, sync::Arc, time::Duration};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use mesh_core::body::{BoxBody, Proxied, empty, full};
//! use mesh_retry::{
//!     AttemptTimeoutLayer, Budget, RequestTimeoutLayer, RetryLayer, RetryMetrics, RetryPolicy,
//!     Timeouts, replay::ReplayBody,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! // An upstream that fails its first two calls with 503.
//! let calls = Arc::new(AtomicUsize::new(0));
//! let upstream = service_fn(move |_req: http::Request<ReplayBody<BoxBody>>| {
//!     let n = calls.fetch_add(1, Ordering::Relaxed);
//!     async move {
//!         let mut res = http::Response::new(Proxied::from(full("hello")));
//!         if n < 2 {
//!             *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
//!         }
//!         Ok::<_, Infallible>(res)
//!     }
//! });
//!
//! let mut registry = mesh_retry::prometheus_client::registry::Registry::default();
//! let metrics = RetryMetrics::register(&mut registry);
//! let budget = Arc::new(Budget::default()); // share it across services
//! let timeouts = Timeouts {
//!     request: Some(Duration::from_secs(10)),
//!     per_try: Some(Duration::from_secs(2)),
//!     ..Timeouts::default()
//! };
//! let client = ServiceBuilder::new()
//!     .layer(RequestTimeoutLayer::new(timeouts))
//!     .layer(RetryLayer::new(RetryPolicy::default(), budget)
//!         .with_metrics(metrics.route("hello", "default")))
//!     .layer(AttemptTimeoutLayer::new(timeouts))
//!     .service(upstream);
//!
//! let res = client.oneshot(http::Request::new(empty())).await?;
//! assert_eq!(res.status(), 200); // the third attempt succeeded
//! # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! # })?;
//! # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! ```
//!
//! # Configuration
//!
//! Every layer is built from typed values: [`RetryPolicy`], [`Timeouts`],
//! [`BudgetConfig`]. The [`config`] module reads them from the resources
//! users already write: a Gateway API `HTTPRoute` rule's `timeouts` and
//! `retry` (GEP-1742, GEP-1731), Linkerd's `retry.linkerd.io/*` and
//! `timeout.linkerd.io/*` annotations (on routes attached to a Service or
//! to a Linkerd `EgressNetwork`; it also reads the `TLSRoute`s and
//! `TCPRoute`s attached to either, and says which one takes a connection,
//! by port and SNI), and a Linkerd `ServiceProfile`'s
//! `retryBudget`, `routes[].isRetryable`, `routes[].timeout` and
//! `responseClasses`, and its `dstOverrides` (the weighted split of the
//! whole service, for the sidecar's planner to apply).

pub mod budget;
pub mod config;
pub mod deadline;
pub mod metrics;
pub mod replay;
pub mod retry;
pub mod stack;
pub mod timeout;

pub use self::{
    budget::{Budget, BudgetConfig, Withdrawal},
    config::{RouteRetryPolicy, ServiceRetryPolicy},
    deadline::Deadline,
    metrics::{RetryMetrics, RouteRetryMetrics},
    retry::{Backoff, Retry, RetryLayer, RetryPolicy},
    stack::{RouteStack, RouteStackLayer},
    timeout::{AttemptTimeout, AttemptTimeoutLayer, RequestTimeout, RequestTimeoutLayer, Timeouts},
};

/// The prometheus-client this crate registers its metrics into, so that
/// a caller names the same `Registry` without a version of its own.
pub use prometheus_client;

/// The README's examples, compiled as doctests so that they keep up with the
/// crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
