use tower_layer::Layer;

use super::ApplyFilters;

/// Wraps services in [`ApplyFilters`]. Put it inside an
/// [`AuthorizeLayer`](crate::AuthorizeLayer), which finds the filters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyFiltersLayer {
    _private: (),
}

impl ApplyFiltersLayer {
    /// The layer. It has nothing to configure: the filters come with each
    /// request.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for ApplyFiltersLayer {
    type Service = ApplyFilters<S>;

    fn layer(&self, inner: S) -> ApplyFilters<S> {
        ApplyFilters::new(inner)
    }
}
