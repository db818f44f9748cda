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

use std::time::Duration;

use super::{
    group::per_second,
    histogram_quantile,
    parse::{Sample, Scrape},
    series::{Matcher, Resets, repeats},
};

/// The increase of every counter between two scrapes of one process.
#[derive(Clone, Debug)]
pub struct Delta {
    samples: Vec<Sample>,
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
        Self { samples, elapsed }
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

    /// Adds the samples `select` picks to `totals`.
    pub fn accumulate(&self, totals: &mut Totals, select: impl Fn(&Sample) -> bool) {
        for s in self.samples.iter().filter(|s| select(s)) {
            totals.add(s);
        }
    }
}

/// The most distinct bucket bounds a [`Totals`] keeps.
pub const MAX_BOUNDS: usize = 256;

/// Responses, latency buckets and retries summed over a selection of
/// series (a workload, a route), over one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// `response_total{classification="success"}`.
    pub success: f64,
    /// `response_total{classification="failure"}`.
    pub failure: f64,
    /// `response_total{tls="true"}`.
    pub tls: f64,
    /// `retry_requests_total`: attempts after the first.
    pub retries: f64,
    /// `response_latency_ms_bucket`, by bound, cumulative; at most
    /// [`MAX_BOUNDS`] bounds, the first seen.
    pub buckets: Vec<(f64, f64)>,
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
                if s.label("tls") == Some("true") {
                    self.tls += s.value;
                }
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

    /// Adds `other` into `self`: replicas of one workload, say.
    pub fn merge(&mut self, other: &Totals) {
        self.success += other.success;
        self.failure += other.failure;
        self.tls += other.tls;
        self.retries += other.retries;
        for &(bound, count) in &other.buckets {
            self.add_bucket(bound, count);
        }
    }

    /// Adds `count` to the bucket of `bound`. A bound past the first
    /// [`MAX_BOUNDS`] is left out: histograms have tens (Linkerd's 26),
    /// and a scraped server that writes thousands would make every
    /// sample's lookup a long scan.
    fn add_bucket(&mut self, bound: f64, count: f64) {
        if let Some(bucket) = self.buckets.iter_mut().find(|(b, _)| *b == bound) {
            bucket.1 += count;
        } else if self.buckets.len() < MAX_BOUNDS {
            self.buckets.push((bound, count));
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

    /// The success rate of attempts rather than requests. Every retry
    /// followed a failed attempt, and each request's last attempt decided its
    /// response, so successful attempts are the successful responses, and
    /// attempts are responses plus retries.
    pub fn actual_success_rate(&self) -> Option<f64> {
        ratio(self.success, self.responses() + self.retries)
    }

    /// Attempts per second over `elapsed`, as [`Totals::rps`].
    pub fn actual_rps(&self, elapsed: Duration) -> f64 {
        per_second(self.responses() + self.retries, elapsed)
    }
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
