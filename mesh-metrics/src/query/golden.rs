//! The figures every view shows for a selection of traffic.

use std::time::Duration;

use serde::Serialize;

use super::Totals;

/// Success rate, requests per second and latency percentiles of one
/// selection of traffic (a workload, a route, an edge) over one window.
///
/// These are the figures `linkerd viz stat` leads with, and every view
/// here shows them: the `stat` row of a workload, the `routes` row of a
/// route, and the dashboard's edge between a caller and a service. They
/// are computed once, here, from the selection's [`Totals`], so the views
/// cannot drift apart in how they count. Each row embeds them with
/// `#[serde(flatten)]`: in JSON they are plain fields of the row, under the
/// names below, where a script expects them.
///
/// In JSON every figure is always there, as a number or `null`; `null` is a
/// figure that cannot be computed, which a table shows as `-`: `success`
/// and the latencies of a selection without responses, and any figure,
/// `rps` included, of counts that sum past the range of `f64` (a scraped
/// server can serve 1e308), and `rps` of responses over a window of zero.
/// A figure is never NaN or infinite, nor a
/// string. A `stat` row with no replica scraped has every figure `null`:
/// nothing was measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Golden {
    /// Successful responses over all responses, as callers saw them: a
    /// request retried into a success counts once, as a success. `None`
    /// without traffic.
    pub success: Option<f64>,
    /// Responses per second over the window; +Inf, `null` in JSON, when the
    /// responses sum past the range of `f64` or were counted over a window
    /// of zero, and in a `stat` row none of whose replicas answered.
    #[serde(serialize_with = "number_or_null")]
    pub rps: f64,
    /// Median latency to the first response byte, in milliseconds,
    /// interpolated within its histogram bucket as Prometheus'
    /// `histogram_quantile` does. `None` without traffic.
    pub latency_ms_p50: Option<f64>,
    /// 95th percentile latency to the first response byte, in milliseconds.
    pub latency_ms_p95: Option<f64>,
    /// 99th percentile latency to the first response byte, in milliseconds.
    pub latency_ms_p99: Option<f64>,
    /// Latency histogram series of the selection left out for naming more
    /// bounds than a histogram has ([`Delta::between`](super::Delta::between)):
    /// the latencies are those of the other series, and the success rate
    /// and RPS still count every response. In JSON only when above zero; a
    /// table marks the latencies with `*` and says why under it.
    #[serde(skip_serializing_if = "is_zero")]
    pub latency_series_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Golden {
    /// The figures of `totals`, counted over `window`.
    pub fn new(totals: &Totals, window: Duration) -> Self {
        Self {
            success: totals.success_rate(),
            rps: totals.rps(window),
            latency_ms_p50: totals.latency_ms(0.5),
            latency_ms_p95: totals.latency_ms(0.95),
            latency_ms_p99: totals.latency_ms(0.99),
            latency_series_dropped: totals.latency_series_dropped,
        }
    }
}

/// Writes a finite `v` as a number, and NaN or an infinity, which JSON has
/// no number for, as `null`, whatever the encoder would make of them.
pub(crate) fn number_or_null<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Delta, Scrape};

    #[test]
    fn figures_come_from_the_totals_over_the_window() {
        let after = Scrape::parse(
            "response_total{classification=\"success\"} 30\n\
             response_total{classification=\"failure\"} 10\n\
             response_latency_ms_bucket{le=\"10.0\"} 20\n\
             response_latency_ms_bucket{le=\"100.0\"} 40\n\
             response_latency_ms_bucket{le=\"+Inf\"} 40\n",
        )
        .unwrap();
        let window = Duration::from_secs(4);
        let delta = Delta::between(&Scrape::default(), &after, window);
        let mut totals = Totals::default();
        delta.accumulate(&mut totals, |_| true);
        let g = Golden::new(&totals, window);
        assert_eq!(g.success, Some(0.75));
        assert_eq!(g.rps, 10.0);
        // p50: rank 20 of 40 fills le=10 exactly. p95: rank 38 is the 18th
        // of le=100's 20, so 10 + 90 × 18/20; p99 likewise, 10 + 90 × 19.6/20.
        assert_eq!(g.latency_ms_p50, Some(10.0));
        assert!((g.latency_ms_p95.unwrap() - 91.0).abs() < 1e-9);
        assert!((g.latency_ms_p99.unwrap() - 98.2).abs() < 1e-9);
    }

    #[test]
    fn no_traffic_has_no_rates_and_no_latency() {
        assert_eq!(
            Golden::new(&Totals::default(), Duration::from_secs(10)),
            Golden::default()
        );
    }
}
