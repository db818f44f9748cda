use std::sync::Arc;

use tower_layer::Layer;

use super::{Config, RouteStack};
use crate::{
    Budget, RetryMetrics, RetryPolicy, RouteRetryPolicy, Timeouts,
    metrics::RouteRetryMetrics,
    retry::{Metrics, Shared},
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
#[derive(Clone, Debug)]
pub struct RouteStackLayer {
    config: Arc<Config>,
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
        }
    }

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

impl<S> Layer<S> for RouteStackLayer {
    type Service = RouteStack<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RouteStack {
            inner,
            config: self.config.clone(),
        }
    }
}
