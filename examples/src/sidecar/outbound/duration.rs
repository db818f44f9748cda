//! The duration histograms of Linkerd's outbound route families, with its
//! buckets, in seconds, and of its ServiceProfile route latency
//! (`route_response_latency_ms`), in milliseconds.
//!
//! prometheus-client's `Histogram` takes a lock on every observation; a
//! request observes two of these (its route's and its backend's), so they
//! are fixed arrays of atomic counters instead, as mesh-metrics'
//! `response_latency_ms` is: an observation is a search over a few bounds
//! and two relaxed atomic adds. The sum is kept in whole microseconds, so
//! that it needs no compare-and-swap loop and does not wrap in any
//! lifetime of a series.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use mesh_metrics::LATENCY_BUCKETS_MS;
use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric, family::MetricConstructor},
};

/// Upper bounds, in the unit the histogram is written in and in
/// nanoseconds, and the microseconds in that unit (for the sum).
#[derive(Debug)]
pub(crate) struct Buckets {
    bounds: &'static [f64],
    nanos: &'static [u64],
    micros_per_unit: f64,
}

/// `outbound_*_route_request_duration_seconds`: per logical request, over
/// the retries. Linkerd keeps these coarse, as each route has one series
/// (`RouteMetrics::REQUEST_BUCKETS` in linkerd2-proxy's
/// `linkerd/app/outbound/src/http/logical/policy/route/metrics.rs`).
pub(crate) static REQUEST_BUCKETS: Buckets = Buckets {
    bounds: &[0.05, 0.5, 1.0, 10.0],
    nanos: &[50_000_000, 500_000_000, 1_000_000_000, 10_000_000_000],
    micros_per_unit: 1e6,
};

/// `outbound_*_route_backend_response_duration_seconds`: per attempt.
/// Finer at the low end, where a backend's latency is read
/// (`RouteMetrics::RESPONSE_BUCKETS`, in the same file).
pub(crate) static RESPONSE_BUCKETS: Buckets = Buckets {
    bounds: &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0],
    nanos: &[
        25_000_000,
        50_000_000,
        100_000_000,
        250_000_000,
        500_000_000,
        1_000_000_000,
        10_000_000_000,
    ],
    micros_per_unit: 1e6,
};

/// `route_response_latency_ms`, of ServiceProfile routes: Linkerd's
/// latency buckets, in milliseconds, as mesh-metrics'
/// `response_latency_ms` has them ([`LATENCY_BUCKETS_MS`]).
pub(crate) static LATENCY_MS_BUCKETS: Buckets = Buckets {
    bounds: &{
        let mut ms = [0.0; LATENCY_BUCKETS_MS.len()];
        let mut i = 0;
        while i < ms.len() {
            ms[i] = LATENCY_BUCKETS_MS[i] as f64;
            i += 1;
        }
        ms
    },
    nanos: &{
        let mut nanos = [0; LATENCY_BUCKETS_MS.len()];
        let mut i = 0;
        while i < nanos.len() {
            nanos[i] = LATENCY_BUCKETS_MS[i] * 1_000_000;
            i += 1;
        }
        nanos
    },
    micros_per_unit: 1e3,
};

/// A histogram of durations over one set of [`Buckets`]. Cloning shares
/// it.
#[derive(Clone)]
pub(crate) struct DurationHistogram(Arc<Inner>);

struct Inner {
    buckets: &'static Buckets,
    /// Observations per bucket, not cumulative; the last is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl DurationHistogram {
    fn new(buckets: &'static Buckets) -> Self {
        Self(Arc::new(Inner {
            buckets,
            counts: (0..=buckets.nanos.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_micros: AtomicU64::new(0),
        }))
    }

    /// Records one duration.
    pub(crate) fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        // `le` is inclusive: the first bucket whose bound is at least it.
        let i = self.0.buckets.nanos.partition_point(|&bound| bound < nanos);
        if let Some(count) = self.0.counts.get(i) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.0
            .sum_micros
            .fetch_add(nanos / 1_000, Ordering::Relaxed);
    }
}

impl fmt::Debug for DurationHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurationHistogram")
            .field("buckets", &self.0.buckets.bounds)
            .finish_non_exhaustive()
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let mut count = 0;
        let buckets: Vec<(f64, u64)> = self
            .0
            .counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let n = n.load(Ordering::Relaxed);
                count += n;
                // prometheus-client writes `le="+Inf"` for `f64::MAX`.
                let bound = self.0.buckets.bounds.get(i).copied().unwrap_or(f64::MAX);
                (bound, n)
            })
            .collect();
        let sum = self.0.sum_micros.load(Ordering::Relaxed) as f64 / self.0.buckets.micros_per_unit;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Makes the histograms of a family, over one set of [`Buckets`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct WithBuckets(pub(crate) &'static Buckets);

impl MetricConstructor<DurationHistogram> for WithBuckets {
    fn new_metric(&self) -> DurationHistogram {
        DurationHistogram::new(self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_sum_is_in_seconds() {
        let h = DurationHistogram::new(&REQUEST_BUCKETS);
        h.observe(Duration::from_millis(50)); // le=0.05
        h.observe(Duration::from_millis(51)); // le=0.5
        h.observe(Duration::from_secs(1)); // le=1
        h.observe(Duration::from_secs(60)); // +Inf
        let mut registry = Registry::default();
        registry.register_with_unit(
            "d",
            "Durations",
            prometheus_client::registry::Unit::Seconds,
            h.clone(),
        );
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "d_seconds_sum 61.101\n",
            "d_seconds_count 4\n",
            "d_seconds_bucket{le=\"0.05\"} 1\n",
            "d_seconds_bucket{le=\"0.5\"} 2\n",
            "d_seconds_bucket{le=\"1.0\"} 3\n",
            "d_seconds_bucket{le=\"10.0\"} 3\n",
            "d_seconds_bucket{le=\"+Inf\"} 4\n",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        assert_eq!(RESPONSE_BUCKETS.bounds.len(), RESPONSE_BUCKETS.nanos.len());
        for (s, n) in RESPONSE_BUCKETS
            .bounds
            .iter()
            .chain(REQUEST_BUCKETS.bounds)
            .zip(RESPONSE_BUCKETS.nanos.iter().chain(REQUEST_BUCKETS.nanos))
        {
            assert_eq!((s * 1e9).round() as u64, *n);
        }
    }
}
