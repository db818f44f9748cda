use std::{marker::PhantomData, sync::Arc};

use tower_layer::Layer;

use super::{Config, RouteStack};
use crate::{
    Budget, RetryMetrics, RetryPolicy, RouteRetryPolicy, Timeouts,
    metrics::RouteRetryMetrics,
    retry::{HeadOnly, Metrics, PeekTrailers, Shared},
    timeout::{attempt::PerTry, enabled},
};

/// Applies [`RouteStack`]: a route's request timeout, retries within a
/// budget, and per-try timeout, in one service. Built once per route per
/// configuration, usually by [`RouteRetryPolicy::layer`].
///
/// ```
/// use std::sync::Arc;
/// use mesh_retry::{Budget, config};
///
/// let yaml = r#"
/// apiVersion: gateway.networking.k8s.io/v1
/// kind: HTTPRoute
/// metadata: { name: books, namespace: shop }
/// spec:
///   parentRefs: [{ group: core, kind: Service, name: books }]
///   rules:
///     - matches: [{ path: { value: /books } }]
///       timeouts: { request: 10s, backendRequest: 2s }
///       retry: { attempts: 2, codes: [502, 503] }
/// "#;
/// let loaded = config::load("routes.yaml", yaml)?;
/// let service = loaded.service("books", Some("shop")).unwrap();
/// let budget = Arc::new(Budget::new(service.budget));
/// let route = &service.routes[0];
/// let layer = route.layer(budget);
/// # drop(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `P` is the mode of the stacks it makes: [`HeadOnly`] unless built with
/// [`peek_grpc_trailers`](Self::peek_grpc_trailers).
#[derive(Debug)]
pub struct RouteStackLayer<P = HeadOnly> {
    config: Arc<Config>,
    mode: PhantomData<fn() -> P>,
}

impl<P> Clone for RouteStackLayer<P> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}

impl RouteStackLayer {
    /// Retries under `policy`, within `budget`, with `timeouts` (`request`
    /// and `idle` over the whole request, `per_try` over each attempt),
    /// counting nothing. A zero timeout is no timeout, as `None` is (see
    /// [`Timeouts`]).
    pub fn new(policy: RetryPolicy, timeouts: Timeouts, budget: Arc<Budget>) -> Self {
        Self {
            config: Arc::new(Config {
                retry: Shared {
                    policy,
                    budget,
                    metrics: Metrics::None,
                },
                // A zero is no timeout, here rather than per request.
                request: enabled(timeouts.request),
                idle: enabled(timeouts.idle),
                per_try: enabled(timeouts.per_try).map(PerTry::new),
            }),
            mode: PhantomData,
        }
    }

    /// Also retries a gRPC call whose answer carries a retried code in
    /// trailers that come right after an ordinary head, reading the first
    /// frame of such an answer before deciding on it, as linkerd2-proxy
    /// does and as [`RetryLayer::peek_grpc_trailers`](crate::RetryLayer::peek_grpc_trailers)
    /// does (see [`retry::peek`](crate::retry::peek) for which answers are
    /// read, and how). The wait for that frame ends with the attempt's
    /// per-try timeout, counted from the attempt's start as for the head,
    /// or with the request's deadline: the answer then goes on unread.
    ///
    /// The response body becomes a [`TimeoutBody`](crate::timeout::TimeoutBody)
    /// of a [`PeekBody`](crate::retry::PeekBody) of the upstream's. The
    /// default stack is left as it was: a plain request through this one
    /// pays one test of whether the call is gRPC before its head goes on.
    #[must_use]
    pub fn peek_grpc_trailers(self) -> RouteStackLayer<PeekTrailers> {
        RouteStackLayer {
            config: self.config,
            mode: PhantomData,
        }
    }
}

impl<P> RouteStackLayer<P> {
    /// Counts into one route's metrics, and reports the budget's balance
    /// under the route's service.
    #[must_use]
    pub fn with_metrics(self, metrics: RouteRetryMetrics) -> Self {
        metrics.observe_budget(&self.config.retry.budget);
        self.with(Metrics::Route(metrics))
    }

    /// Counts into `metrics`, labelled with each request's
    /// [`DstService`](mesh_core::labels::DstService) and
    /// [`RouteId`](mesh_core::route::RouteId) extensions, as
    /// [`RetryLayer::with_request_metrics`](crate::RetryLayer::with_request_metrics)
    /// does.
    #[must_use]
    pub fn with_request_metrics(self, metrics: RetryMetrics) -> Self {
        self.with(Metrics::FromRequest(metrics))
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.config.retry.policy
    }

    /// The budget.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.config.retry.budget
    }

    fn with(self, metrics: Metrics) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        config.retry.metrics = metrics;
        Self {
            config: Arc::new(config),
            mode: PhantomData,
        }
    }
}

impl RouteRetryPolicy {
    /// The route's stack, retrying within `budget`, counting nothing.
    pub fn layer(&self, budget: Arc<Budget>) -> RouteStackLayer {
        RouteStackLayer::new(self.retry.clone(), self.timeouts, budget)
    }

    /// The route's stack, counting into `metrics` under `service` and the
    /// route's name.
    pub fn layer_with_metrics(
        &self,
        budget: Arc<Budget>,
        metrics: &RetryMetrics,
        service: &str,
    ) -> RouteStackLayer {
        self.layer(budget)
            .with_metrics(metrics.route(service, &self.name))
    }
}

impl<S, P> Layer<S> for RouteStackLayer<P> {
    type Service = RouteStack<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RouteStack {
            inner,
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}
