//! What changed between two scrapes, and the golden signals of a selection
//! of it.

use std::time::Duration;

use super::{
    histogram_quantile,
    parse::{Sample, Scrape},
    series::{Matcher, Resets},
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
    pub fn between(before: &Scrape, after: &Scrape, elapsed: Duration) -> Self {
        let resets = Resets::between(before, after);
        let mut before = Matcher::new(if resets.all() { &[] } else { before.samples() });
        let samples = after
            .samples()
            .iter()
            .map(|s| {
                let old = match before.find(s) {
                    Some(_) if resets.reset(s) => 0.0,
                    Some(old) => old.value,
                    None => 0.0,
                };
                let value = if s.value >= old {
                    s.value - old
                } else {
                    s.value
                };
                s.with_value(value)
            })
            .collect();
        Self { samples, elapsed }
    }

    /// The time between the two scrapes.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The increases, one per sample of the later scrape.
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

    /// Successes over responses; `None` without responses.
    pub fn success_rate(&self) -> Option<f64> {
        ratio(self.success, self.responses())
    }

    /// Responses per second over `elapsed`.
    pub fn rps(&self, elapsed: Duration) -> f64 {
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            self.responses() / secs
        } else {
            0.0
        }
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

    /// Attempts per second over `elapsed`.
    pub fn actual_rps(&self, elapsed: Duration) -> f64 {
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.responses() + self.retries) / secs
        } else {
            0.0
        }
    }
}

fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole)
}

fn parse_bound(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => le.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_survive_resets_and_new_series() {
        let before = Scrape::parse(
            "response_total{classification=\"success\",tls=\"true\"} 10\n\
             response_total{classification=\"failure\"} 5\n",
        )
        .unwrap();
        let after = Scrape::parse(
            "response_total{classification=\"success\",tls=\"true\"} 28\n\
             response_total{classification=\"failure\"} 2\n\
             retry_requests_total{route_name=\"r\"} 4\n",
        )
        .unwrap();
        let delta = Delta::between(&before, &after, Duration::from_secs(10));
        let mut t = Totals::default();
        delta.accumulate(&mut t, |_| true);
        // 18 new successes; the failure series reset to 2; 4 new retries.
        assert_eq!(
            (t.success, t.failure, t.tls, t.retries),
            (18.0, 2.0, 18.0, 4.0)
        );
        assert_eq!(t.success_rate(), Some(0.9));
        assert_eq!(t.rps(delta.elapsed()), 2.0);
        assert_eq!(t.tls_rate(), Some(0.9));
        assert_eq!(t.retry_ratio(), Some(0.2));
        // 18 successful attempts of 20 requests + 4 retries.
        assert_eq!(t.actual_success_rate(), Some(0.75));
        assert_eq!(t.actual_rps(delta.elapsed()), 2.4);
    }

    #[test]
    fn a_series_is_its_label_set_whatever_the_order_of_its_labels() {
        // Prometheus identifies a series by its label set; another exporter,
        // or another version of this one, may write the labels in another
        // order.
        let before =
            Scrape::parse("response_total{classification=\"success\",direction=\"inbound\"} 100\n")
                .unwrap();
        let after =
            Scrape::parse("response_total{direction=\"inbound\",classification=\"success\"} 130\n")
                .unwrap();
        let delta = Delta::between(&before, &after, Duration::from_secs(10));
        let mut t = Totals::default();
        delta.accumulate(&mut t, |_| true);
        assert_eq!(t.success, 30.0);
    }

    #[test]
    fn series_are_matched_in_any_order_and_new_ones_count_whole() {
        // A family's series change places when its map grows, and a new
        // series may come anywhere.
        let before = Scrape::parse(
            "a_total{x=\"1\"} 10\n\
             a_total{x=\"2\"} 20\n\
             b_total{x=\"1\"} 30\n\
             b_total{x=\"2\"} 40\n",
        )
        .unwrap();
        let after = Scrape::parse(
            "a_total{x=\"2\"} 21\n\
             a_total{x=\"3\"} 5\n\
             a_total{x=\"1\"} 12\n\
             b_total{x=\"1\"} 33\n\
             b_total{x=\"2\"} 44\n\
             c_total{x=\"1\"} 7\n",
        )
        .unwrap();
        let delta = Delta::between(&before, &after, Duration::from_secs(10));
        let increases: Vec<(&str, Option<&str>, f64)> = delta
            .samples()
            .iter()
            .map(|s| (s.name.as_str(), s.label("x"), s.value))
            .collect();
        assert_eq!(
            increases,
            [
                ("a_total", Some("2"), 1.0),
                ("a_total", Some("3"), 5.0),
                ("a_total", Some("1"), 2.0),
                ("b_total", Some("1"), 3.0),
                ("b_total", Some("2"), 4.0),
                ("c_total", Some("1"), 7.0),
            ]
        );
    }

    #[test]
    fn after_a_restart_every_counter_counts_whole() {
        // The process restarted between the scrapes: every counter began
        // again from zero, including those that have already climbed past
        // their old values. Taking those as increases would count 20 - 10
        // failures instead of 20.
        let before = Scrape::parse(
            "process_start_time_seconds 1700000000\n\
             response_total{classification=\"success\"} 1000\n\
             response_total{classification=\"failure\"} 10\n",
        )
        .unwrap();
        let after = Scrape::parse(
            "process_start_time_seconds 1700000500\n\
             response_total{classification=\"success\"} 50\n\
             response_total{classification=\"failure\"} 20\n",
        )
        .unwrap();
        let delta = Delta::between(&before, &after, Duration::from_secs(10));
        let mut t = Totals::default();
        delta.accumulate(&mut t, |_| true);
        assert_eq!((t.success, t.failure), (50.0, 20.0));

        // The same process: increases as usual.
        let same = Scrape::parse(
            "process_start_time_seconds 1700000000\n\
             response_total{classification=\"success\"} 1050\n\
             response_total{classification=\"failure\"} 30\n",
        )
        .unwrap();
        let delta = Delta::between(&before, &same, Duration::from_secs(10));
        let mut t = Totals::default();
        delta.accumulate(&mut t, |_| true);
        assert_eq!((t.success, t.failure), (50.0, 20.0));
    }

    #[test]
    fn a_series_whose_created_time_changed_was_reset() {
        // OpenMetrics dates each counter and histogram series with a
        // `_created` sample; a new date means the series began again from
        // zero, even where its new value is past its old one.
        let before = Scrape::parse(
            "hits_total{a=\"1\"} 100\n\
             hits_created{a=\"1\"} 1000\n\
             lat_bucket{le=\"1.0\",a=\"1\"} 50\n\
             lat_count{a=\"1\"} 50\n\
             lat_created{a=\"1\"} 1000\n",
        )
        .unwrap();
        let after = Scrape::parse(
            "hits_total{a=\"1\"} 130\n\
             hits_created{a=\"1\"} 2000\n\
             lat_bucket{le=\"1.0\",a=\"1\"} 60\n\
             lat_count{a=\"1\"} 60\n\
             lat_created{a=\"1\"} 1000\n",
        )
        .unwrap();
        let delta = Delta::between(&before, &after, Duration::from_secs(10));
        let value = |name: &str| {
            delta
                .samples()
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.value)
        };
        assert_eq!(value("hits_total"), Some(130.0));
        assert_eq!(value("lat_bucket"), Some(10.0));
        assert_eq!(value("lat_count"), Some(10.0));
    }
}
