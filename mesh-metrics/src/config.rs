//! Settings shared by every metrics group.

use std::num::NonZeroUsize;

/// How a metrics group bounds its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    series_limit: NonZeroUsize,
}

/// 10,000 series per family.
const DEFAULT_SERIES_LIMIT: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

impl Default for MetricsConfig {
    /// A limit of 10,000 series per family.
    fn default() -> Self {
        Self {
            series_limit: DEFAULT_SERIES_LIMIT,
        }
    }
}

impl MetricsConfig {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how many series each family may hold before new label sets fold
    /// into its `overflow="true"` series (a few per family: one per
    /// direction, `tls` status, TLS from a peer without a certificate apart
    /// from mutual TLS, and for responses, classification). Default is
    /// 10,000.
    #[must_use]
    pub fn with_series_limit(mut self, limit: NonZeroUsize) -> Self {
        self.series_limit = limit;
        self
    }

    /// How many series each family may hold.
    pub fn series_limit(&self) -> NonZeroUsize {
        self.series_limit
    }
}
