//! Quantiles from histogram buckets, as Prometheus' `histogram_quantile`
//! computes them.
//!
//! `linkerd viz stat` gets its latency percentiles from Prometheus'
//! `histogram_quantile` over `response_latency_ms_bucket`, so ours must give
//! the same numbers from the same buckets. The rules (Prometheus'
//! `promql/quantile.go`): sort the buckets by bound; the last must be `+Inf`;
//! merge equal bounds; take counts within float noise of the one before
//! (a relative difference under 1e-12) as equal to it, and force the counts
//! to be non-decreasing; find the first bucket whose cumulative count
//! reaches `q × total`; interpolate linearly inside it, with 0 as the lower
//! bound of the lowest bucket. A rank that falls in the `+Inf` bucket
//! returns the highest finite bound.

/// The `q` quantile (0 to 1) of cumulative `buckets` given as
/// `(upper bound, count at or under it)`, in any order; a bucket whose
/// bound is NaN is left out. `None` where Prometheus gives NaN: no
/// observations, fewer than two buckets, no `+Inf` bucket, or `q` NaN. `q` below 0 gives `-Inf` and above 1 `+Inf`, as
/// there.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    // A bound of NaN bounds nothing, and would sort after `+Inf`: left
    // out, it cannot make the highest bound other than `+Inf`.
    let mut sorted: Vec<(f64, f64)> = buckets
        .iter()
        .copied()
        .filter(|(bound, _)| !bound.is_nan())
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    if sorted
        .last()
        .is_none_or(|(bound, _)| *bound != f64::INFINITY)
    {
        return None;
    }
    // Merge buckets with the same bound, then make the counts monotonic.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(sorted.len());
    for (bound, count) in sorted {
        match merged.last_mut() {
            Some(last) if last.0 == bound => last.1 += count,
            _ => merged.push((bound, count)),
        }
    }
    // As Prometheus' `ensureMonotonicAndIgnoreSmallDeltas`: a count within
    // float noise of the last one kept, in either direction, or below it,
    // is taken as that one.
    if let Some(&(_, first)) = merged.first() {
        let mut prev = first;
        for bucket in merged.iter_mut().skip(1) {
            if bucket.1 != prev && (almost_equal(prev, bucket.1) || bucket.1 < prev) {
                bucket.1 = prev;
            } else {
                prev = bucket.1;
            }
        }
    }
    let n = merged.len();
    if n < 2 {
        return None;
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return None;
    }
    let mut rank = q * observations;
    // The first bucket, among all but `+Inf`, that reaches the rank.
    let b = merged[..n - 1].partition_point(|&(_, count)| count < rank);
    if b == n - 1 {
        return Some(merged[n - 2].0);
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return Some(merged[0].0);
    }
    let end = merged[b].0;
    let mut count = merged[b].1;
    let mut start = 0.0;
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    // The 0 quantile of a lowest bucket that holds nothing is 0 over 0,
    // NaN in Prometheus too: `None`, as documented, not `Some(NaN)`.
    Some(start + (end - start) * (rank / count)).filter(|v| !v.is_nan())
}

/// Prometheus' `smallDeltaTolerance`: counts closer than this, relative to
/// their sum, differ by float noise only.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Whether `a` and `b` are equal but for float noise, as Prometheus'
/// `almost.Equal` with [`SMALL_DELTA_TOLERANCE`].
fn almost_equal(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < SMALL_DELTA_TOLERANCE * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < SMALL_DELTA_TOLERANCE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 observations in Linkerd's lowest buckets (cumulative counts):
    /// le=1: 10, le=2: 30, le=3: 60, le=4: 80, le=5: 90, le=10: 95,
    /// le=20: 99, le=+Inf: 100.
    const KNOWN: [(f64, f64); 8] = [
        (1.0, 10.0),
        (2.0, 30.0),
        (3.0, 60.0),
        (4.0, 80.0),
        (5.0, 90.0),
        (10.0, 95.0),
        (20.0, 99.0),
        (f64::INFINITY, 100.0),
    ];

    fn q(q: f64) -> f64 {
        histogram_quantile(q, &KNOWN).unwrap()
    }

    #[test]
    fn quantiles_match_prometheus_interpolation() {
        // p50: rank 50 falls in le=3 (30 < 50 <= 60): 2 + (3-2) × (50-30)/(60-30)
        //      = 2 + 20/30 = 2.6667.
        assert!((q(0.5) - (2.0 + 20.0 / 30.0)).abs() < 1e-12);
        // p95: rank 95 reaches le=10 exactly (90 < 95 <= 95): 5 + 5 × 5/5 = 10.
        assert!((q(0.95) - 10.0).abs() < 1e-12);
        // p99: rank 99 in le=20 (95 < 99 <= 99): 10 + 10 × 4/4 = 20.
        assert!((q(0.99) - 20.0).abs() < 1e-12);
        // p5: rank 5 in the lowest bucket, from 0: 0 + 1 × 5/10 = 0.5.
        assert!((q(0.05) - 0.5).abs() < 1e-12);
        // p99.5: rank 99.5 is past le=20 (99), so it is in +Inf: the highest
        // finite bound, 20.
        assert!((q(0.995) - 20.0).abs() < 1e-12);
        // p25: rank 25 in le=2 (10 < 25 <= 30): 1 + 1 × 15/20 = 1.75.
        assert!((q(0.25) - 1.75).abs() < 1e-12);
    }

    #[test]
    fn edge_cases_follow_prometheus() {
        assert_eq!(
            histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(histogram_quantile(0.5, &[(1.0, 3.0), (2.0, 4.0)]), None);
        assert_eq!(histogram_quantile(0.5, &[(f64::INFINITY, 4.0)]), None);
        assert_eq!(histogram_quantile(-1.0, &KNOWN), Some(f64::NEG_INFINITY));
        assert_eq!(histogram_quantile(2.0, &KNOWN), Some(f64::INFINITY));
        // Buckets in any order, and a count that dips is raised (monotonic):
        // le=1: 2, le=2: max(1, 2) = 2, le=+Inf: 4. p50 = rank 2, in le=1:
        // 0 + 1 × 2/2 = 1.
        let shuffled = [(f64::INFINITY, 4.0), (2.0, 1.0), (1.0, 2.0)];
        assert_eq!(histogram_quantile(0.5, &shuffled), Some(1.0));
    }

    #[test]
    fn every_observation_past_the_highest_bound_is_that_bound() {
        // Each rank falls in +Inf, where Prometheus gives the highest
        // finite bound rather than interpolate towards infinity.
        let buckets = [(1.0, 0.0), (10.0, 0.0), (f64::INFINITY, 7.0)];
        for q in [0.5, 0.95, 0.99] {
            assert_eq!(histogram_quantile(q, &buckets), Some(10.0), "{q}");
        }
        // An empty window: buckets, and no observation in them.
        let empty = [(1.0, 0.0), (10.0, 0.0), (f64::INFINITY, 0.0)];
        assert_eq!(histogram_quantile(0.5, &empty), None);
        assert_eq!(histogram_quantile(0.5, &[]), None);
    }

    #[test]
    fn a_bucket_whose_bound_is_nan_does_not_hide_the_others() {
        // `le="NaN"` is no bound: it sorted after +Inf, so the highest
        // bound was NaN rather than +Inf and every quantile was NaN, one
        // hostile bucket blanking a workload's latency.
        let buckets = [(1.0, 2.0), (f64::NAN, 1.0), (f64::INFINITY, 4.0)];
        assert_eq!(histogram_quantile(0.5, &buckets), Some(1.0));
        assert_eq!(histogram_quantile(0.75, &buckets), Some(1.0));
        assert_eq!(histogram_quantile(0.5, &[(f64::NAN, 1.0)]), None);
    }

    #[test]
    fn counts_that_differ_by_float_noise_are_equal_as_in_prometheus() {
        // Prometheus' ensureMonotonicAndIgnoreSmallDeltas takes counts whose
        // relative difference is under 1e-12 as equal, in either direction,
        // and keeps the earlier: here le=2 and +Inf hold le=1's 1e12, so
        // p100 is rank 1e12, which le=1 reaches: 0 + 1 × 1e12/1e12 = 1.
        let buckets = [(1.0, 1e12), (2.0, 1e12 + 1.0), (f64::INFINITY, 1e12 + 1.0)];
        assert_eq!(histogram_quantile(1.0, &buckets), Some(1.0));
        // A difference past the tolerance is a count.
        let buckets = [(1.0, 1e3), (2.0, 1e3 + 1.0), (f64::INFINITY, 1e3 + 1.0)];
        assert_eq!(histogram_quantile(1.0, &buckets), Some(2.0));
    }
}
