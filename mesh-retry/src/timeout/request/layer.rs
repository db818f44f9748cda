use tower_layer::Layer;

use super::RequestTimeout;
use crate::timeout::Timeouts;

/// Applies [`RequestTimeout`]: the `request` and `idle` timeouts of a
/// [`Timeouts`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestTimeoutLayer {
    timeouts: Timeouts,
}

impl RequestTimeoutLayer {
    /// A layer with `timeouts.request` and `timeouts.idle`; the per-try
    /// timeout belongs to [`AttemptTimeoutLayer`](crate::AttemptTimeoutLayer).
    pub fn new(timeouts: Timeouts) -> Self {
        Self { timeouts }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout::new(inner, self.timeouts.request, self.timeouts.idle)
    }
}
