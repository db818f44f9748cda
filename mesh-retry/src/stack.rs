//! A route's three layers as one: request timeout, retry, per-try timeout.

use std::sync::Arc;

use tower_layer::Layer;

use crate::{
    AttemptTimeout, AttemptTimeoutLayer, Budget, RequestTimeout, RequestTimeoutLayer, Retry,
    RetryLayer, RetryMetrics, RouteRetryPolicy,
};

/// The layers of one route in their order: [`RequestTimeoutLayer`], then
/// [`RetryLayer`], then [`AttemptTimeoutLayer`]. Built once per route per
/// configuration by [`RouteRetryPolicy::layer`].
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
    request: RequestTimeoutLayer,
    retry: RetryLayer,
    attempt: AttemptTimeoutLayer,
}

impl RouteRetryPolicy {
    /// The route's layers, retrying within `budget`, counting nothing.
    pub fn layer(&self, budget: Arc<Budget>) -> RouteStackLayer {
        RouteStackLayer {
            // The per-try timeout writes the deadline header for each
            // attempt, nearer and later than the request timeout could.
            request: RequestTimeoutLayer::new(self.timeouts).with_propagation(false),
            retry: RetryLayer::new(self.retry.clone(), budget),
            attempt: AttemptTimeoutLayer::new(self.timeouts),
        }
    }

    /// The route's layers, counting into `metrics` under `service` and the
    /// route's name.
    pub fn layer_with_metrics(
        &self,
        budget: Arc<Budget>,
        metrics: &RetryMetrics,
        service: &str,
    ) -> RouteStackLayer {
        let mut layer = self.layer(budget);
        layer.retry = layer.retry.with_metrics(metrics.route(service, &self.name));
        layer
    }
}

impl<S> Layer<S> for RouteStackLayer {
    type Service = RequestTimeout<Retry<AttemptTimeout<S>>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.request
            .layer(self.retry.layer(self.attempt.layer(inner)))
    }
}
