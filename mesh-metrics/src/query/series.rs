//! Which series of two scrapes are the same series, and which of them began
//! again from zero in between.
//!
//! Prometheus identifies a series by its name and label set, whatever the
//! order the labels were written in. A counter can begin again from zero
//! without going down between two scrapes (it may have climbed past its old
//! value since), so a reset is read from what dates the series: the
//! process's start time, and OpenMetrics' `_created` samples.
//!
//! Two scrapes of one process mostly write their series in the same
//! order, so a sample is first compared with the one after the last
//! match; only when that is another series is it looked up, by a hash of
//! its label set that does not depend on the labels' order. Keys of
//! borrowed texts, a `Vec` per series, took about three times the text of
//! the scrape to build, for a lookup that most samples do not need.

use std::{
    collections::{HashMap, hash_map::Entry},
    hash::{BuildHasher, RandomState},
};

use super::parse::{Sample, Scrape};

/// A series: its sample name and its label set, sorted by label name.
pub(super) type SeriesKey<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// The sample whose value is the Unix time the process started.
const START_TIME: &str = "process_start_time_seconds";

/// The suffix of the sample that dates a counter, histogram or summary.
const CREATED: &str = "_created";

/// Finds, for each sample of a later scrape, the sample of the same
/// series in an earlier one.
pub(super) struct Matcher<'a> {
    before: &'a [Sample],
    /// Which samples of `before` repeat a series written before them
    /// ([`repeats`]): those are never the one found.
    repeated: Vec<bool>,
    /// Where the series after the last one found would be, in the same
    /// order.
    next: usize,
    /// Built at the first sample not found at `next`.
    index: Option<Index>,
}

impl<'a> Matcher<'a> {
    pub(super) fn new(before: &'a [Sample]) -> Self {
        Self {
            before,
            repeated: repeats(before),
            next: 0,
            index: None,
        }
    }

    /// The sample of `before` in the series of `s`: the first, should the
    /// series be written twice, wherever the last match left off.
    pub(super) fn find(&mut self, s: &Sample) -> Option<&'a Sample> {
        if let Some(b) = self.before.get(self.next)
            && !self.repeated.get(self.next).copied().unwrap_or_default()
            && b.name == s.name
            && b.labels().eq(s.labels())
        {
            self.next += 1;
            return Some(b);
        }
        let before = self.before;
        let found = self
            .index
            .get_or_insert_with(|| Index::of(before))
            .find(before, s)?;
        self.next = found + 1;
        before.get(found)
    }
}

/// The samples of a scrape by a hash of their series.
struct Index {
    hasher: RandomState,
    /// The sample of each hash; the first of its series.
    first: HashMap<u64, usize>,
    /// Samples whose hash another series had first.
    others: Vec<usize>,
}

impl Index {
    fn of(samples: &[Sample]) -> Self {
        let mut index = Self {
            hasher: RandomState::new(),
            first: HashMap::with_capacity(samples.len()),
            others: Vec::new(),
        };
        for (i, s) in samples.iter().enumerate() {
            let hash = index.hash(s);
            match index.first.entry(hash) {
                Entry::Vacant(e) => {
                    e.insert(i);
                }
                Entry::Occupied(e) => match samples.get(*e.get()) {
                    Some(other) if same_series(other, s) => {}
                    _ => index.others.push(i),
                },
            }
        }
        index
    }

    fn hash(&self, s: &Sample) -> u64 {
        series_hash(&self.hasher, s)
    }

    fn find(&self, samples: &[Sample], s: &Sample) -> Option<usize> {
        let is = |i: &usize| samples.get(*i).is_some_and(|other| same_series(other, s));
        self.first
            .get(&self.hash(s))
            .filter(|i| is(i))
            .or_else(|| self.others.iter().find(|i| is(i)))
            .copied()
    }
}

/// The name's hash plus each label's: the same in any label order.
fn series_hash(hasher: &RandomState, s: &Sample) -> u64 {
    s.labels()
        .fold(hasher.hash_one(s.name.as_str()), |sum, label| {
            sum.wrapping_add(hasher.hash_one(label))
        })
}

/// Whether each of `samples` repeats the series of one before it.
/// Prometheus keeps one value of a series per scrape, and drops another
/// written at the same time as a duplicate; a delta that took both would
/// count the series' traffic twice.
pub(super) fn repeats(samples: &[Sample]) -> Vec<bool> {
    let hasher = RandomState::new();
    // The first sample of each hash, and those whose hash another series
    // had first, as in [`Index`].
    let mut first: HashMap<u64, usize> = HashMap::with_capacity(samples.len());
    let mut others: Vec<usize> = Vec::new();
    let mut repeats = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let is = |j: &usize| samples.get(*j).is_some_and(|other| same_series(other, s));
        let repeat = match first.entry(series_hash(&hasher, s)) {
            Entry::Vacant(e) => {
                e.insert(i);
                false
            }
            Entry::Occupied(e) => {
                let repeat = is(e.get()) || others.iter().any(is);
                if !repeat {
                    others.push(i);
                }
                repeat
            }
        };
        repeats.push(repeat);
    }
    repeats
}

/// Whether `a` and `b` are samples of one series: one name, one label set
/// in any order. A sample names each label once (the parser makes sure).
///
/// Labels in another order are looked up one by one in the other's while
/// there are few; past that (the scraped server picks how many), both
/// sets are sorted and compared, as a lookup of each of 200,000 labels by
/// a scan of the other's would take 2 × 10^10 comparisons.
fn same_series(a: &Sample, b: &Sample) -> bool {
    const LOOKED_UP: usize = 16;
    if a.name != b.name || a.labels().len() != b.labels().len() {
        return false;
    }
    if a.labels().eq(b.labels()) {
        return true;
    }
    if a.labels().len() <= LOOKED_UP {
        return a.labels().all(|(k, v)| b.label(k) == Some(v));
    }
    sorted_labels(a) == sorted_labels(b)
}

fn sorted_labels(s: &Sample) -> Vec<(&str, &str)> {
    let mut labels: Vec<(&str, &str)> = s.labels().collect();
    labels.sort_unstable();
    labels
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
/// `_created` samples. A value that is not a finite number (`NaN`,
/// `+Inf`, from a server that is broken or not ours) dates nothing: `NaN`
/// differs from itself, and would date every window anew.
struct Dates<'a> {
    start: Option<f64>,
    created: HashMap<SeriesKey<'a>, f64>,
}

impl<'a> Dates<'a> {
    fn of(scrape: &'a Scrape) -> Self {
        let mut start = None;
        let mut created = HashMap::new();
        for s in scrape.samples() {
            if !s.value.is_finite() {
                continue;
            }
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

/// A histogram series: a `_bucket` sample's name and its labels but `le`,
/// hashed in any label order.
pub(super) fn histogram_hash(hasher: &RandomState, s: &Sample) -> u64 {
    s.labels()
        .filter(|(k, _)| *k != "le")
        .fold(hasher.hash_one(s.name.as_str()), |sum, label| {
            sum.wrapping_add(hasher.hash_one(label))
        })
}

/// Whether `a` and `b`, two `_bucket` samples, are buckets of one
/// histogram series: one name, one label set but `le`, in any order. As
/// [`same_series`], a long label set is sorted rather than scanned.
pub(super) fn same_histogram(a: &Sample, b: &Sample) -> bool {
    const LOOKED_UP: usize = 16;
    fn but_le(s: &Sample) -> impl Iterator<Item = (&str, &str)> + Clone {
        s.labels().filter(|(k, _)| *k != "le")
    }
    if a.name != b.name || but_le(a).count() != but_le(b).count() {
        return false;
    }
    if but_le(a).eq(but_le(b)) {
        return true;
    }
    if a.labels().len() <= LOOKED_UP {
        return but_le(a).all(|(k, v)| b.label(k) == Some(v));
    }
    fn sorted(s: &Sample) -> Vec<(&str, &str)> {
        let mut labels: Vec<(&str, &str)> = but_le(s).collect();
        labels.sort_unstable();
        labels
    }
    sorted(a) == sorted(b)
}
