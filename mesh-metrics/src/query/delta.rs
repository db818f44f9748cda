//! What changed between two scrapes, and the golden signals of a selection
//! of it.
//!
//! # Counters, resets and values no counter has
//!
//! Every sample is read as a counter (or a histogram's bucket or count,
//! which are counters too): a value that only goes up, from zero, between
//! the moments it begins again from zero. Its increase between two scrapes
//! is the later value less the earlier one, and a value that went down,
//! by however little, was reset in between: its increase is its new value,
//! what it counted since the reset. That is how Prometheus' `increase()`
//! and `rate()` read a decrease ("breaks in monotonicity (such as counter
//! resets due to target restarts) are automatically adjusted for"; over two
//! samples, the counter correction of promql's `extrapolatedRate` adds the
//! old value back, leaving the new one), so the views' figures match a
//! dashboard's.
//!
//! A counter's value is a finite number, never negative: OpenMetrics has a
//! counter's total start from 0, never decrease and never be NaN, and an
//! increase from or to an infinity is no number of events. Prometheus sets
//! no such value apart (it would subtract -5, and make every sum that takes
//! a NaN in NaN); a scraped server that is broken or not ours can serve
//! one, and 10 successes over a failure count that went from 10 to -5
//! would read as a success rate of 200%, a NaN as `NaN%`. So a series whose
//! value is below zero, NaN or infinite in the later scrape, or in the
//! earlier one unless it was reset in between, has no increase in the
//! window and is left out of the delta, as if it were absent: how much of
//! its value came in the window is not known. Every increase is then a
//! finite number, zero or more; a success rate is within 0 and 100%, and a
//! rate is never below zero.

use std::{
    collections::{HashMap, HashSet},
    hash::RandomState,
    time::Duration,
};

use super::{
    group::per_second,
    histogram_quantile,
    parse::{Sample, Scrape},
    series::{Matcher, Resets, histogram_hash, repeats, same_histogram},
};

/// The increase of every counter between two scrapes of one process.
#[derive(Clone, Debug)]
pub struct Delta {
    samples: Vec<Sample>,
    /// The first bucket of each histogram series left out for its bounds.
    dropped: Vec<Sample>,
    elapsed: Duration,
}

impl Delta {
    /// The increase of each sample from `before` to `after`, which were
    /// taken `elapsed` apart. A series is matched by its name and label
    /// set, in any label order.
    ///
    /// A series that began again from zero in between counts whole, even
    /// where it has already climbed past its old value: every series when
    /// `process_start_time_seconds` changed (the process restarted), and a
    /// counter or histogram whose OpenMetrics `_created` sample changed.
    /// Otherwise, a series that went down was reset, so its increase is its
    /// new value, as Prometheus' `rate` reads a reset; and a series new in
    /// `after` counts whole.
    ///
    /// A series written twice in one scrape is the first sample written, as
    /// Prometheus keeps it: in `after`, the others are left out.
    ///
    /// A series whose value is below zero, NaN or infinite in `after`, or
    /// in `before` where it was not reset, has no increase and is left out
    /// (see the [module docs](self)): every increase is finite, zero or
    /// more.
    ///
    /// A histogram series (the `_bucket` samples of one label set but
    /// `le`) with more than [`MAX_BOUNDS`] buckets is left out whole, and
    /// so is one that would take the distinct bounds of its family in this
    /// scrape past [`MAX_BOUNDS`]: a histogram has tens (Linkerd's has 26),
    /// and a server that is broken or not ours could otherwise fill a
    /// row's buckets with its own and blank or skew the latencies of every
    /// replica summed with it. Only the offending series goes; each is
    /// listed in [`Delta::dropped_histograms`], and the views say so.
    pub fn between(before: &Scrape, after: &Scrape, elapsed: Duration) -> Self {
        let resets = Resets::between(before, after);
        let mut before = Matcher::new(if resets.all() { &[] } else { before.samples() });
        // Room for every sample: those left out are few, and a vector that
        // grew as it went would hold up to twice the delta while it copied.
        let mut samples = Vec::with_capacity(after.samples().len());
        let repeats = repeats(after.samples());
        for (s, repeat) in after.samples().iter().zip(repeats) {
            // Looked up first, whatever `s` holds: the matcher expects the
            // samples of `after` in order.
            let found = before.find(s);
            if repeat || !is_count(s.value) {
                continue;
            }
            let old = match found {
                Some(_) if resets.reset(s) => 0.0,
                Some(old) if is_count(old.value) => old.value,
                Some(_) => continue,
                None => 0.0,
            };
            let increase = if s.value >= old {
                s.value - old
            } else {
                s.value
            };
            samples.push(s.with_value(increase));
        }
        let dropped = bound_histograms(&mut samples);
        Self {
            samples,
            dropped,
            elapsed,
        }
    }

    /// The time between the two scrapes.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The increases, one per sample of the later scrape, in its order,
    /// but for the series left out (see [`Delta::between`]).
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The first bucket of each histogram series left out for naming too
    /// many bounds (see [`Delta::between`]), in the order of the scrape:
    /// its labels say whose latency lost it.
    pub fn dropped_histograms(&self) -> &[Sample] {
        &self.dropped
    }

    /// Adds the samples `select` picks to `totals`, and counts the
    /// histogram series it picks that were left out.
    pub fn accumulate(&self, totals: &mut Totals, select: impl Fn(&Sample) -> bool) {
        for s in self.samples.iter().filter(|s| select(s)) {
            totals.add(s);
        }
        for s in self.dropped.iter().filter(|s| select(s)) {
            totals.add_dropped(s);
        }
    }
}

/// Leaves out of `samples` each histogram series with more than
/// [`MAX_BOUNDS`] buckets, or with a bound new to its family once the
/// family has [`MAX_BOUNDS`] distinct ones (the series first written keep
/// theirs); returns the first bucket of each series left out. A scrape has
/// one histogram family or a few, so a delta holds at most a few times
/// [`MAX_BOUNDS`] distinct bounds, however many series name them.
///
/// A few allocations a delta, not a few a series: a delta of a proxy's
/// scrape has tens of thousands of histogram series.
fn bound_histograms(samples: &mut Vec<Sample>) -> Vec<Sample> {
    let is_bucket = |s: &Sample| s.name.ends_with("_bucket");
    // Fewer buckets than a series may have: no series or family has too
    // many.
    if samples.iter().filter(|s| is_bucket(s)).count() <= MAX_BOUNDS {
        return Vec::new();
    }
    let hasher = RandomState::new();
    // Each bucket's series, in the order of the buckets; each series' first
    // sample and bucket count; the first series of each hash, and the
    // series whose hash another had first.
    let mut ids: Vec<u32> = Vec::new();
    let mut heads: Vec<usize> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut first: HashMap<u64, u32> = HashMap::new();
    let mut others: Vec<u32> = Vec::new();
    let same = |heads: &[usize], id: u32, s: &Sample| {
        heads
            .get(id as usize)
            .and_then(|&i| samples.get(i))
            .is_some_and(|head| same_histogram(head, s))
    };
    for (i, s) in samples.iter().enumerate() {
        if !is_bucket(s) {
            continue;
        }
        let hash = histogram_hash(&hasher, s);
        let found = match first.get(&hash) {
            Some(&id) if same(&heads, id, s) => Some(id),
            Some(_) => others.iter().copied().find(|&id| same(&heads, id, s)),
            None => None,
        };
        let id = match found {
            Some(id) => id,
            None => {
                // A delta has at most MAX_SAMPLES (2^21) samples.
                let id = u32::try_from(heads.len()).unwrap_or(u32::MAX);
                match first.entry(hash) {
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(id);
                    }
                    std::collections::hash_map::Entry::Occupied(_) => others.push(id),
                }
                heads.push(i);
                counts.push(0);
                id
            }
        };
        if let Some(count) = counts.get_mut(id as usize) {
            *count += 1;
        }
        ids.push(id);
    }
    // Too many buckets for one series; then, in the order they were
    // written, a bound new to its family once the family has its fill.
    let mut dropped: Vec<bool> = counts.iter().map(|&n| n as usize > MAX_BOUNDS).collect();
    let mut families: HashMap<&str, HashSet<u64>> = HashMap::new();
    for (s, &id) in samples.iter().filter(|s| is_bucket(s)).zip(&ids) {
        if dropped.get(id as usize).copied().unwrap_or(true) {
            continue;
        }
        let Some(bound) = s.label("le").and_then(parse_bound) else {
            continue;
        };
        // `-0` is the bound `0`.
        let bound = (bound + 0.0).to_bits();
        let family = families.entry(s.name.as_str()).or_default();
        if family.len() < MAX_BOUNDS || family.contains(&bound) {
            family.insert(bound);
        } else if let Some(d) = dropped.get_mut(id as usize) {
            *d = true;
        }
    }
    drop(families);
    let out: Vec<Sample> = heads
        .iter()
        .zip(&dropped)
        .filter(|(_, d)| **d)
        .filter_map(|(&i, _)| samples.get(i).cloned())
        .collect();
    if !out.is_empty() {
        let mut ids = ids.into_iter();
        samples.retain(|s| {
            !is_bucket(s)
                || ids
                    .next()
                    .and_then(|id| dropped.get(id as usize).copied())
                    .is_none_or(|d| !d)
        });
    }
    out
}

/// The most buckets a histogram series may have, and the most distinct
/// bounds the histogram series of one family in one scrape may name
/// together, in a [`Delta`]: a histogram has tens.
pub const MAX_BOUNDS: usize = 256;

/// Responses, latency buckets and retries summed over a selection of
/// series (a workload, a route), over one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// `response_total{classification="success"}`.
    pub success: f64,
    /// `response_total{classification="failure"}`.
    pub failure: f64,
    /// `response_total` on mutual TLS: `tls="true"`, but for the series
    /// whose peer proved no identity ([`Totals::tls_rate`]).
    pub tls: f64,
    /// `retry_requests_total`: attempts after the first.
    pub retries: f64,
    /// `response_latency_ms_bucket`, by bound, cumulative, sorted by
    /// bound. A [`Delta`] holds at most [`MAX_BOUNDS`] distinct bounds of
    /// a family, so a row that sums several sources holds at most that
    /// many of each.
    pub buckets: Vec<(f64, f64)>,
    /// Attempts a backend answered with a success, as Linkerd's
    /// `stat-outbound` counts one: a response whose status is not 5xx
    /// (`outbound_http_route_backend_response_statuses_total`), or a gRPC
    /// call's whose `grpc_status` is `OK`
    /// (`outbound_grpc_route_backend_response_statuses_total`); in either
    /// family with no `error`. The sidecar counts each attempt once, in
    /// one of the two, under the retries.
    pub attempt_successes: f64,
    /// Attempts that failed: a 5xx or a gRPC status other than `OK`, no
    /// response at all, or an error the mesh answered or failed with (a
    /// cancelled attempt included).
    pub attempt_failures: f64,
    /// `response_total` with a `grpc_status`: gRPC responses, whose
    /// failures the attempts' HTTP statuses do not show.
    pub grpc_responses: f64,
    /// Whether the source serves
    /// `outbound_grpc_route_backend_response_statuses_total` for these
    /// series, so that the attempts of gRPC calls are counted by their
    /// gRPC status rather than among the HTTP ones.
    pub grpc_attempts_served: bool,
    /// Histogram series of `response_latency_ms` left out of `buckets`
    /// for naming too many bounds ([`Delta::between`]): the latencies
    /// leave their requests out.
    pub latency_series_dropped: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, s: &Sample) {
        match s.name.as_str() {
            "response_total" => {
                match s.label("classification") {
                    Some("success") => self.success += s.value,
                    Some("failure") => self.failure += s.value,
                    _ => return,
                }
                if is_mutual_tls(s) {
                    self.tls += s.value;
                }
                if s.label("grpc_status").is_some_and(|g| !g.is_empty()) {
                    self.grpc_responses += s.value;
                }
            }
            "outbound_http_route_backend_response_statuses_total" => {
                let failed = s.label("error").is_some_and(|e| !e.is_empty())
                    || s.label("http_status")
                        .and_then(|c| c.parse::<u16>().ok())
                        .is_none_or(|c| c >= 500);
                self.add_attempts(failed, s.value);
            }
            "outbound_grpc_route_backend_response_statuses_total" => {
                // As linkerd2's `viz/cmd/stat_outbound.go` reads the
                // family: a status other than `OK`, or an error, failed.
                let failed = s.label("error").is_some_and(|e| !e.is_empty())
                    || s.label("grpc_status") != Some("OK");
                self.add_attempts(failed, s.value);
                self.grpc_attempts_served = true;
            }
            "response_latency_ms_bucket" => {
                let Some(bound) = s.label("le").and_then(parse_bound) else {
                    return;
                };
                self.add_bucket(bound, s.value);
            }
            "retry_requests_total" => self.retries += s.value,
            _ => {}
        }
    }

    fn add_attempts(&mut self, failed: bool, count: f64) {
        if failed {
            self.attempt_failures += count;
        } else {
            self.attempt_successes += count;
        }
    }

    /// Counts `s`, the first bucket of a histogram series a [`Delta`]
    /// left out, if it is a latency's.
    pub(crate) fn add_dropped(&mut self, s: &Sample) {
        if s.name == "response_latency_ms_bucket" {
            self.latency_series_dropped += 1;
        }
    }

    /// Adds `other` into `self`: replicas of one workload, say.
    pub fn merge(&mut self, other: &Totals) {
        self.success += other.success;
        self.failure += other.failure;
        self.tls += other.tls;
        self.retries += other.retries;
        self.attempt_successes += other.attempt_successes;
        self.attempt_failures += other.attempt_failures;
        self.grpc_responses += other.grpc_responses;
        self.grpc_attempts_served |= other.grpc_attempts_served;
        self.latency_series_dropped += other.latency_series_dropped;
        for &(bound, count) in &other.buckets {
            self.add_bucket(bound, count);
        }
    }

    /// Adds `count` to the bucket of `bound`, found by a binary search:
    /// each source of a row brings up to [`MAX_BOUNDS`] bounds (a
    /// [`Delta`] bounds them per source, so that one source cannot crowd
    /// out the others' bounds), and a row may sum many.
    fn add_bucket(&mut self, bound: f64, count: f64) {
        // `-0` is the bound `0`.
        let bound = bound + 0.0;
        match self.buckets.binary_search_by(|(b, _)| b.total_cmp(&bound)) {
            Ok(i) => {
                if let Some(bucket) = self.buckets.get_mut(i) {
                    bucket.1 += count;
                }
            }
            Err(i) => self.buckets.insert(i, (bound, count)),
        }
    }

    /// Every response counted.
    pub fn responses(&self) -> f64 {
        self.success + self.failure
    }

    /// Successes over responses; `None` without responses, or when they
    /// sum past the range of `f64`. The shares and ratios below are `None`
    /// alike.
    pub fn success_rate(&self) -> Option<f64> {
        ratio(self.success, self.responses())
    }

    /// Responses per second over `elapsed`: +Inf when the responses sum
    /// past the range of `f64`, or when there are responses and `elapsed`
    /// is zero, which a view shows as not computed; 0 without responses.
    pub fn rps(&self, elapsed: Duration) -> f64 {
        per_second(self.responses(), elapsed)
    }

    /// The share of responses on mutually authenticated TLS.
    ///
    /// A sidecar that serves TLS to a client without a certificate writes
    /// `tls="true"` with `client_id=""`: that client proved nothing, and
    /// `edges` shows its traffic as `no_peer_identity`, so it is not
    /// counted here either. An overflow series, which folded the peer's
    /// identity away and keeps `tls="true"` alone, counts as it says.
    pub fn tls_rate(&self) -> Option<f64> {
        ratio(self.tls, self.responses())
    }

    /// The `q` latency quantile in milliseconds, as `histogram_quantile`.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        histogram_quantile(q, &self.buckets).filter(|v| v.is_finite())
    }

    /// Retries per request the caller made.
    pub fn retry_ratio(&self) -> Option<f64> {
        ratio(self.retries, self.responses())
    }

    /// Attempts whose end the backend statuses counted.
    pub fn attempts(&self) -> f64 {
        self.attempt_successes + self.attempt_failures
    }

    /// The success rate of attempts rather than requests, as the backend
    /// saw them: Linkerd's `routes -o wide` ACTUAL_SUCCESS, which is the
    /// success share of `route_actual_response_total`, the responses of
    /// every attempt by classification (linkerd2's
    /// `viz/metrics-api/top_routes.go`). Counted from the attempts'
    /// statuses where the sidecar exports them, those of gRPC calls by
    /// their gRPC status.
    ///
    /// Without them, the figure is worked out from the requests: as if
    /// every retry followed a failed attempt and each request's last
    /// attempt decided its response, successes over responses plus
    /// retries. That is wrong whenever a route retries a status the
    /// classification counts as a success (a 429), or a request failed
    /// before any attempt; [`Totals::actual_estimated`] says when the
    /// figure is that estimate.
    pub fn actual_success_rate(&self) -> Option<f64> {
        if self.attempts() > 0.0 {
            ratio(self.attempt_successes, self.attempts())
        } else {
            ratio(self.success, self.responses() + self.retries)
        }
    }

    /// Attempts per second over `elapsed`, as [`Totals::rps`]: those the
    /// backend statuses counted, else responses plus retries.
    pub fn actual_rps(&self, elapsed: Duration) -> f64 {
        if self.attempts() > 0.0 {
            per_second(self.attempts(), elapsed)
        } else {
            per_second(self.responses() + self.retries, elapsed)
        }
    }

    /// Whether [`Totals::actual_success_rate`] is an estimate rather than
    /// a count: worked out from retries (no attempt statuses, and some
    /// retries; without retries every request was one attempt), or counted
    /// over gRPC responses by their HTTP statuses alone, from a source
    /// that does not serve the gRPC family: their failures come in
    /// `grpc-status`, which an HTTP status does not carry.
    pub fn actual_estimated(&self) -> bool {
        if self.attempts() > 0.0 {
            self.grpc_responses > 0.0 && !self.grpc_attempts_served
        } else {
            self.retries > 0.0
        }
    }
}

/// Whether the responses of `s` were on mutual TLS: `tls="true"`, unless
/// the series names the peer's identity empty (`client_id=""`, or
/// `server_id=""` outbound), as it does for TLS without a client
/// certificate.
fn is_mutual_tls(s: &Sample) -> bool {
    s.label("tls") == Some("true")
        && ["client_id", "server_id"]
            .into_iter()
            .all(|peer| s.label(peer) != Some(""))
}

/// Whether `value` can be a counter's: finite, and not below zero.
fn is_count(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

/// `part` over `whole`; `None` without a whole, or when either sum went
/// past the range of `f64`: the increases are finite, but a sum of them
/// can be +Inf, and 1e308 over +Inf would read as 0%.
fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0 && whole.is_finite() && part.is_finite())
        .then(|| part / whole)
        .filter(|r| r.is_finite())
}

/// The bound `le` names; `None` for one that is not a number or is NaN,
/// which bounds nothing and, equal to no other bound, would take a new one
/// of the [`MAX_BOUNDS`] places at each sample.
fn parse_bound(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => le.parse().ok().filter(|b: &f64| !b.is_nan()),
    }
}

#[cfg(test)]
mod tests;
