use tower_layer::Layer;

use super::AttemptTimeout;
use crate::timeout::Timeouts;

/// Applies [`AttemptTimeout`]: the `per_try` timeout of a [`Timeouts`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AttemptTimeoutLayer {
    timeouts: Timeouts,
}

impl AttemptTimeoutLayer {
    /// A layer with `timeouts.per_try`; the request and idle timeouts belong
    /// to [`RequestTimeoutLayer`](crate::RequestTimeoutLayer).
    pub fn new(timeouts: Timeouts) -> Self {
        Self { timeouts }
    }
}

impl<S> Layer<S> for AttemptTimeoutLayer {
    type Service = AttemptTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptTimeout::new(inner, self.timeouts.per_try)
    }
}
