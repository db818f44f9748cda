use std::sync::Arc;

use tower_layer::Layer;

use super::{HeadOnly, Metrics, Retry, RetryPolicy, Shared};
use crate::{Budget, RetryMetrics, metrics::RouteRetryMetrics};

/// Applies [`Retry`] with a policy and a budget, which may be shared with
/// other layers.
///
/// ```
/// use std::sync::Arc;
/// use mesh_retry::{Budget, RetryLayer, RetryMetrics, RetryPolicy};
///
/// let mut registry = prometheus_client::registry::Registry::default();
/// let metrics = RetryMetrics::register(&mut registry);
/// let budget = Arc::new(Budget::default());
/// let layer = RetryLayer::new(RetryPolicy::default(), budget)
///     .with_metrics(metrics.route("emoji", "get-emoji"));
/// # drop(layer);
/// ```
#[derive(Clone, Debug)]
pub struct RetryLayer<P = HeadOnly> {
    pub(super) shared: Arc<Shared>,
    /// Whether a gRPC answer's first frame is read before deciding: see
    /// [`peek_grpc_trailers`](Self::peek_grpc_trailers).
    pub(super) mode: P,
}

impl RetryLayer {
    /// Retries under `policy`, within `budget`, counting nothing.
    pub fn new(policy: RetryPolicy, budget: Arc<Budget>) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                budget,
                metrics: Metrics::None,
            }),
            mode: HeadOnly,
        }
    }
}

impl<P> RetryLayer<P> {
    /// Counts into one route's metrics, and reports the budget's balance
    /// under the route's service.
    #[must_use]
    pub fn with_metrics(self, metrics: RouteRetryMetrics) -> Self {
        metrics.observe_budget(&self.shared.budget);
        self.with(Metrics::Route(metrics))
    }

    /// Counts into `metrics`, labelled with each request's
    /// [`DstService`](mesh_core::labels::DstService) and
    /// [`RouteId`](mesh_core::route::RouteId) extensions. Use it when one
    /// layer serves several routes; the counters are then looked up when
    /// something is counted, which a retry-free request never does. The
    /// budget's balance is reported only if
    /// [`RetryMetrics::observe_budget`] is called.
    #[must_use]
    pub fn with_request_metrics(self, metrics: RetryMetrics) -> Self {
        self.with(Metrics::FromRequest(metrics))
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    /// The budget.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.shared.budget
    }

    fn with(self, metrics: Metrics) -> Self {
        let Shared { policy, budget, .. } = Arc::unwrap_or_clone(self.shared);
        Self {
            shared: Arc::new(Shared {
                policy,
                budget,
                metrics,
            }),
            mode: self.mode,
        }
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            shared: self.shared.clone(),
            mode: self.mode.clone(),
        }
    }
}
