//! The `response_latency_ms` histogram: Linkerd's buckets, lock-free.
//!
//! prometheus-client's `Histogram` takes a lock on every observation. This
//! one is a fixed array of atomic counters: observing is a binary search over
//! 25 bounds and two relaxed atomic adds. The sum is kept in whole
//! microseconds, as an integer, so it needs no compare-and-swap loop and
//! is exact to the microsecond; it is written in milliseconds. Microseconds
//! rather than nanoseconds, because a `u64` of nanoseconds holds only 584
//! years of latency: a series of 1,000 requests a second that take a
//! second each would reach that in 213 days, and the sum would wrap to a
//! small number (a reset, to Prometheus). In microseconds it holds 584,000
//! years.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric},
};

/// The upper bounds of `response_latency_ms`, in milliseconds: the buckets
/// of Linkerd's proxy, so dashboards built on them keep working.
///
/// They are written as prometheus-client writes a bound, `le="1.0"`, where
/// Linkerd's proxy writes `le="1"`: one bound to `histogram_quantile`, and
/// to Prometheus 3, which normalizes `le` as it ingests it, but a query of
/// Prometheus 2 that selects one bucket (`le="100"`) must name it as
/// written. A latency is bucketed as measured: 1.5 ms is under `le="2.0"`,
/// where Linkerd's proxy, which truncates to whole milliseconds first,
/// counts it under `le="1"`.
pub const LATENCY_BUCKETS_MS: [u64; 25] = [
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1_000, 2_000, 3_000, 4_000, 5_000,
    10_000, 20_000, 30_000, 40_000, 50_000,
];

const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// [`LATENCY_BUCKETS_MS`] in nanoseconds, computed once at compile time
/// rather than multiplied on every observation.
const BOUNDS_NANOS: [u64; BUCKETS - 1] = {
    let mut nanos = [0; BUCKETS - 1];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = LATENCY_BUCKETS_MS[i] * 1_000_000;
        i += 1;
    }
    nanos
};

/// A latency histogram with [`LATENCY_BUCKETS_MS`]. Cloning shares it.
#[derive(Clone, Default)]
pub(crate) struct LatencyHistogram(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Observations per bucket, not cumulative; the last is `+Inf`.
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Records one latency.
    pub(crate) fn observe(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        // The first bucket whose bound is at least the latency; `le` is
        // inclusive.
        let i = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        if let Some(c) = self.0.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.0
            .sum_micros
            .fetch_add(nanos / 1_000, Ordering::Relaxed);
    }

    /// The number of observations.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram").finish_non_exhaustive()
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let mut buckets = [(0.0, 0); BUCKETS];
        let mut count = 0;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n = self
                .0
                .counts
                .get(i)
                .map_or(0, |c| c.load(Ordering::Relaxed));
            count += n;
            // prometheus-client writes `le="+Inf"` for `f64::MAX`.
            let bound = LATENCY_BUCKETS_MS.get(i).map_or(f64::MAX, |&ms| ms as f64);
            *slot = (bound, n);
        }
        let sum_ms = self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e3;
        encoder.encode_histogram::<NoLabelSet>(sum_ms, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_sum_is_in_milliseconds() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_millis(1)); // le=1
        h.observe(Duration::from_micros(1_001)); // le=2
        h.observe(Duration::from_millis(7)); // le=10
        h.observe(Duration::from_secs(60)); // +Inf
        let mut registry = Registry::default();
        registry.register("lat_ms", "Latency", h.clone());
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("lat_ms_sum 60009.001\n"), "{text}");
        assert!(text.contains("lat_ms_count 4\n"));
        assert!(text.contains("lat_ms_bucket{le=\"1.0\"} 1\n"));
        assert!(text.contains("lat_ms_bucket{le=\"2.0\"} 2\n"));
        assert!(text.contains("lat_ms_bucket{le=\"5.0\"} 2\n"));
        assert!(text.contains("lat_ms_bucket{le=\"10.0\"} 3\n"));
        assert!(text.contains("lat_ms_bucket{le=\"50000.0\"} 3\n"));
        assert!(text.contains("lat_ms_bucket{le=\"+Inf\"} 4\n"));
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn the_sum_holds_centuries_of_latency() {
        // 2^64 nanoseconds are 584 years of latency: one series of 1,000
        // requests a second that take a second each sums that in 213 days.
        let h = LatencyHistogram::default();
        for _ in 0..20 {
            h.observe(Duration::from_secs(1_000_000_000));
        }
        let mut registry = Registry::default();
        registry.register("lat_ms", "Latency", h.clone());
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("lat_ms_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sum, 2e13, "{text}");
    }
}
