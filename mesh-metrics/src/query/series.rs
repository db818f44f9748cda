//! Which series of two scrapes are the same series, and which of them began
//! again from zero in between.
//!
//! Prometheus identifies a series by its name and label set, whatever the
//! order the labels were written in. A counter can begin again from zero
//! without going down between two scrapes (it may have climbed past its old
//! value since), so a reset is read from what dates the series: the
//! process's start time, and OpenMetrics' `_created` samples.

use std::collections::HashMap;

use super::parse::{Sample, Scrape};

/// A series: its sample name and its label set, sorted by label name.
pub(super) type SeriesKey<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// The sample whose value is the Unix time the process started.
const START_TIME: &str = "process_start_time_seconds";

/// The suffix of the sample that dates a counter, histogram or summary.
const CREATED: &str = "_created";

/// The key of `s`'s series.
pub(super) fn series_key(s: &Sample) -> SeriesKey<'_> {
    key(&s.name, s, |_| true)
}

fn key<'a>(name: &'a str, s: &'a Sample, keep: impl Fn(&str) -> bool) -> SeriesKey<'a> {
    let mut labels: Vec<(&str, &str)> = s.labels().filter(|(k, _)| keep(k)).collect();
    labels.sort_unstable();
    (name, labels)
}

/// The key of the `_created` sample that dates `s`, for the samples of
/// counters (`_total`) and histograms (`_bucket`, without `le`, `_count`,
/// `_sum`); `None` for others.
fn dated_by(s: &Sample) -> Option<SeriesKey<'_>> {
    let name = s.name.as_str();
    if let Some(family) = name.strip_suffix("_bucket") {
        return Some(key(family, s, |k| k != "le"));
    }
    let family = ["_total", "_count", "_sum"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))?;
    Some(key(family, s, |_| true))
}

/// The dates of a scrape's series: its process's start time and its
/// `_created` samples.
struct Dates<'a> {
    start: Option<f64>,
    created: HashMap<SeriesKey<'a>, f64>,
}

impl<'a> Dates<'a> {
    fn of(scrape: &'a Scrape) -> Self {
        let mut start = None;
        let mut created = HashMap::new();
        for s in scrape.samples() {
            if s.name == START_TIME && s.labels().len() == 0 {
                start = Some(s.value);
            } else if let Some(family) = s.name.strip_suffix(CREATED) {
                created.insert(key(family, s, |_| true), s.value);
            }
        }
        Self { start, created }
    }
}

/// Which series of `after` began again since `before`.
pub(super) struct Resets<'a> {
    /// The process restarted: every series did.
    restarted: bool,
    before: Dates<'a>,
    after: Dates<'a>,
}

impl<'a> Resets<'a> {
    pub(super) fn between(before: &'a Scrape, after: &'a Scrape) -> Self {
        let (before, after) = (Dates::of(before), Dates::of(after));
        let restarted = matches!((before.start, after.start), (Some(b), Some(a)) if a != b);
        Self {
            restarted,
            before,
            after,
        }
    }

    /// Whether every series of `after` began again.
    pub(super) fn all(&self) -> bool {
        self.restarted
    }

    /// Whether the series of `s`, a sample of `after`, was dated anew.
    pub(super) fn reset(&self, s: &Sample) -> bool {
        if self.after.created.is_empty() {
            return false;
        }
        dated_by(s).is_some_and(|k| {
            matches!(
                (self.before.created.get(&k), self.after.created.get(&k)),
                (Some(b), Some(a)) if a != b
            )
        })
    }
}
