use tower_layer::Layer;

use super::RequestTimeout;
use crate::timeout::Timeouts;

/// Applies [`RequestTimeout`]: the `request` and `idle` timeouts of a
/// [`Timeouts`].
#[derive(Clone, Copy, Debug)]
pub struct RequestTimeoutLayer {
    timeouts: Timeouts,
    propagate: bool,
}

impl RequestTimeoutLayer {
    /// A layer with `timeouts.request` and `timeouts.idle`; the per-try
    /// timeout belongs to [`AttemptTimeoutLayer`](crate::AttemptTimeoutLayer).
    pub fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            propagate: true,
        }
    }

    /// Whether to write the time remaining into the outgoing deadline
    /// header; see [`RequestTimeout::with_propagation`]. Default `true`.
    #[must_use]
    pub fn with_propagation(mut self, propagate: bool) -> Self {
        self.propagate = propagate;
        self
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout::new(inner, self.timeouts.request, self.timeouts.idle)
            .with_propagation(self.propagate)
    }
}
