//! Request, response and latency metrics for HTTP, with Linkerd's names.
//!
//! Operators already chart Linkerd's `request_total`, `response_total` and
//! `response_latency_ms`, and `linkerd viz stat` computes success rate, RPS
//! and latency percentiles from them. [`MetricsLayer`] records the same
//! families, with Linkerd's labels where the mesh knows their values (see
//! the [crate docs](crate)), so those dashboards and queries read them.
//!
//! # What is counted, and when
//!
//! - `request_total` when the request reaches the layer.
//! - `response_latency_ms` at the response's first byte, as Linkerd
//!   measures it: from the request to the first data frame of the body,
//!   or to its end when none came first (the trailers, an error, the head
//!   of a response HTTP gives no body, a body dropped unread), in
//!   Linkerd's millisecond buckets
//!   ([`LATENCY_BUCKETS_MS`](crate::LATENCY_BUCKETS_MS)). Not at the
//!   head: a server that sends its head at once and its body later is as
//!   slow as its body.
//! - `response_total` when the response stream **ends**: the last data
//!   frame, the trailers, or an error. A response that HTTP says has no
//!   body (to `HEAD`, a 2xx to `CONNECT`, a 1xx, 204 or 304) ends with its
//!   head, and one whose body sent all of its `content-length` ends there
//!   too: servers drop such bodies unread, and that is no cancellation.
//!   One whose stream ends short of its `content-length` is a failure
//!   (`error="reset"`), whatever its status: its client reads an
//!   incomplete message.
//!   Its `classification` comes from
//!   mesh-core's [`Classify`](mesh_core::classify::Classify), the same
//!   rules retries use (the request's route's own, when its
//!   [`RouteId`](mesh_core::route::RouteId) carries them, as a
//!   ServiceProfile route's `responseClasses` do), including a gRPC status
//!   sent in the trailers; a
//!   gRPC call (a `POST` with a gRPC `content-type`) answered by a response
//!   that is not gRPC is classified as its gRPC client reads it, so an HTML
//!   `200` from a misrouted upstream is a failure. Its
//!   `status_code` is the HTTP status and `grpc_status` the gRPC status when
//!   there is one. Its `error` label says why, when the mesh answered
//!   itself (`denied`, `no_route`, `timeout`, ... from the response's
//!   [`ProxyErrorKind`](mesh_core::ProxyErrorKind)), when the request or
//!   body failed (`timeout`, `connect`, `reset`, `other`), or when the caller
//!   went away before the end (`cancel`): a dropped response future or body
//!   is counted, not lost.
//!
//! # Cost
//!
//! The labels of a request are read from its extensions as borrowed strings.
//! Each service keeps the targets it has seen with the values they came
//! from, and finds a request's target again by comparing addresses; the
//! rest are looked up in a lock-free cache of resolved handles shared by
//! the layer. Nothing is allocated per request once a target has been seen.
//! The first request of a new target creates its series under a lock.
//!
//! ```
//! use mesh_metrics::{HttpMetrics, MetricsLayer};
//! use prometheus_client::registry::Registry;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mesh_core::BoxError> {
//! let mut registry = Registry::default();
//! let metrics = HttpMetrics::register(&mut registry);
//! let svc = ServiceBuilder::new()
//!     .layer(MetricsLayer::inbound(&metrics))
//!     .service(service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//! let res = svc.oneshot(http::Request::new(String::new())).await?;
//! drop(res); // an empty body ends with its head
//!
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry)?;
//! assert!(text.contains(r#"response_total{direction="inbound",status_code="200",classification="success"} 1"#));
//! # Ok(()) }
//! ```

mod body;
mod error;
pub mod future;
mod layer;
mod memo;
mod metrics;
mod recorder;
mod target;

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Method, Request, Response};
use mesh_core::error::is_grpc;
use tokio::time::Instant;
use tower_service::Service;

pub use self::{body::ResponseBody, error::AsDynError, layer::MetricsLayer, metrics::HttpMetrics};
use self::{
    memo::Targets,
    recorder::{BodyRule, Started},
};

/// The service [`MetricsLayer`] makes. See the [module docs](self).
///
/// It fails as the service it wraps fails, with the same error
/// ([`AsDynError`] reads it for the metrics), so a service that cannot
/// fail, such as the one axum's `Router::layer` wraps, still cannot.
#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
    targets: Arc<Targets>,
}

impl<S> Metrics<S> {
    fn new(inner: S, targets: Arc<Targets>) -> Self {
        Self { inner, targets }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Metrics<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: AsDynError,
    ResB: http_body::Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let target = self.targets.find(&req);
        target.requests.inc();
        // gRPC calls are `POST`s: other requests skip the header lookup.
        let grpc_call = req.method() == Method::POST && is_grpc(req.headers());
        let recorder = Started::new(
            target,
            Instant::now(),
            BodyRule::of(req.method()),
            grpc_call,
        );
        future::ResponseFuture::new(self.inner.call(req), recorder)
    }
}
