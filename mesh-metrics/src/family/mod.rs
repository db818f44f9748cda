//! Metric families with a series cap.
//!
//! The first complaint about every mesh's metrics is cardinality: one label
//! that takes its values from traffic (an authority, a path, a port) and the
//! time-series database falls over (linkerd2 #1378). Our label values come
//! from closed sets, but a closed set can still be large (ten thousand
//! configured routes times a few hundred peers), so every family also has a
//! hard cap. Past it, new label sets fold into an overflow series labelled
//! `overflow="true"`, and a counter records each observation that was
//! folded. The overflow series keeps the few labels of a folded set that
//! come from tiny closed sets and that every query selects by ([`Fold`]):
//! the direction, and for responses the classification. So totals stay
//! right, not only for a sum over the whole family but for
//! `direction="inbound"` success rates and RPS, as `linkerd viz stat`,
//! Linkerd's dashboards and our own views compute them; only the breakdown
//! by route, peer and the like is lost, and the fold counter says so.
//!
//! prometheus-client's own `Family` encodes in hash-map order; this one keeps
//! its series in a `BTreeMap`, so the exposition is sorted and stable, which
//! the golden-text tests rely on.

pub(crate) mod cache;

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder},
    metrics::{MetricType, TypedMetric, counter::Counter},
};

/// The label that marks an overflow series.
const OVERFLOW_LABELS: [(&str, &str); 1] = [("overflow", "true")];

/// What the overflow series of a family keeps of the label sets it folds.
pub(crate) trait Fold {
    /// The kept labels: values from closed sets of a handful each, so that
    /// a family never holds more than a few overflow series.
    type Kept: Ord + Clone + EncodeLabelSet;

    /// The kept labels of this label set.
    fn kept(&self) -> Self::Kept;
}

/// The labels of an overflow series: the kept ones, then `overflow="true"`.
struct OverflowLabels<'a, K>(&'a K);

impl<K: EncodeLabelSet> EncodeLabelSet for OverflowLabels<'_, K> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        self.0.encode(encoder)?;
        OVERFLOW_LABELS.encode(encoder)
    }
}

/// A handle found in a [`Family`], and whether it is the overflow series.
pub(crate) struct Series<M> {
    pub(crate) metric: M,
    pub(crate) folded: bool,
}

/// A capped, sorted metric family. Cloning shares the series.
pub(crate) struct Family<L: Fold, M> {
    inner: Arc<Inner<L, M>>,
}

struct Inner<L: Fold, M> {
    series: Mutex<Maps<L, M>>,
    limit: usize,
    make: fn() -> M,
    folds: Counter,
}

/// The series of a family: at most `limit` of them, and the overflow
/// series, created as folds need them.
struct Maps<L: Fold, M> {
    series: BTreeMap<L, M>,
    overflow: BTreeMap<L::Kept, M>,
}

impl<L: Fold, M> Clone for Family<L, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<L: Fold, M> fmt::Debug for Family<L, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("limit", &self.inner.limit)
            .field("folds", &self.inner.folds.get())
            .finish_non_exhaustive()
    }
}

impl<L: Fold + Ord + Clone, M: Clone> Family<L, M> {
    /// A family of at most `limit` series (plus the overflow series), each
    /// made by `make`.
    pub(crate) fn new(limit: usize, make: fn() -> M) -> Self {
        Self {
            inner: Arc::new(Inner {
                series: Mutex::new(Maps {
                    series: BTreeMap::new(),
                    overflow: BTreeMap::new(),
                }),
                limit,
                make,
                folds: Counter::default(),
            }),
        }
    }

    /// The series of `labels`, created if the family has room, or the
    /// overflow series if it has not.
    pub(crate) fn get_or_create(&self, labels: &L) -> Series<M> {
        let mut series = self
            .inner
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = series.series.get(labels) {
            return Series {
                metric: m.clone(),
                folded: false,
            };
        }
        if series.series.len() < self.inner.limit {
            let m = (self.inner.make)();
            series.series.insert(labels.clone(), m.clone());
            return Series {
                metric: m,
                folded: false,
            };
        }
        let metric = series
            .overflow
            .entry(labels.kept())
            .or_insert_with(self.inner.make)
            .clone();
        drop(series);
        self.inner.folds.inc();
        Series {
            metric,
            folded: true,
        }
    }

    /// The counter of folded observations.
    pub(crate) fn folds(&self) -> Counter {
        self.inner.folds.clone()
    }

    /// Whether the family holds no series, not even an overflow one.
    pub(crate) fn is_empty(&self) -> bool {
        let series = self
            .inner
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        series.series.is_empty() && series.overflow.is_empty()
    }

    /// How many series the family holds, the overflow series excluded.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner
            .series
            .lock()
            .map(|s| s.series.len())
            .unwrap_or(0)
    }
}

impl<L: Fold, M: TypedMetric> TypedMetric for Family<L, M> {
    const TYPE: MetricType = M::TYPE;
}

impl<L, M> EncodeMetric for Family<L, M>
where
    L: Fold + EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let series = self
            .inner
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (labels, metric) in &series.series {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        for (kept, metric) in &series.overflow {
            metric.encode(encoder.encode_family(&OverflowLabels(kept))?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A family that may have no series, and is then not written.
pub(crate) trait HasSeries: fmt::Debug + Send + Sync {
    /// Whether it holds a series, an overflow one included.
    fn has_series(&self) -> bool;
}

impl<L, M> HasSeries for Family<L, M>
where
    L: Fold + Ord + Clone + Send,
    L::Kept: Send,
    M: Clone + Send,
{
    fn has_series(&self) -> bool {
        !self.is_empty()
    }
}

/// The fold counters of a group of families, encoded as one counter family
/// with a `family` label naming each.
#[derive(Clone, Debug)]
pub(crate) struct FoldCounters(Arc<[FoldCounter]>);

/// One family's fold counter, and for a family written only while it has
/// a series, that family.
#[derive(Debug)]
struct FoldCounter {
    family: &'static str,
    folds: Counter,
    unless_empty: Option<Arc<dyn HasSeries>>,
}

impl FoldCounters {
    /// Counters named after the families they count folds of, and the
    /// counters of families written only while they have a series (the
    /// error families, as Linkerd's proxy writes them): each of those is
    /// written with its family, from 0, and not before, so that a family
    /// absent from the exposition is not named in it either.
    pub(crate) fn new(
        entries: Vec<(&'static str, Counter)>,
        unless_empty: Vec<(&'static str, Counter, Arc<dyn HasSeries>)>,
    ) -> Self {
        let always = entries.into_iter().map(|(family, folds)| FoldCounter {
            family,
            folds,
            unless_empty: None,
        });
        let shown = unless_empty
            .into_iter()
            .map(|(family, folds, of)| FoldCounter {
                family,
                folds,
                unless_empty: Some(of),
            });
        Self(always.chain(shown).collect())
    }
}

impl TypedMetric for FoldCounters {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for FoldCounters {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        for entry in self.0.iter() {
            if entry.unless_empty.as_ref().is_some_and(|f| !f.has_series()) {
                continue;
            }
            let labels = [("family", entry.family)];
            entry.folds.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;

    /// Test labels: the overflow keeps `kind`, and folds the rest.
    impl Fold for Vec<(String, String)> {
        type Kept = Vec<(String, String)>;

        fn kept(&self) -> Self::Kept {
            self.iter().filter(|(k, _)| k == "kind").cloned().collect()
        }
    }

    fn hit(kind: &str, route: &str) -> Vec<(String, String)> {
        vec![("kind".into(), kind.into()), ("route".into(), route.into())]
    }

    #[test]
    fn past_the_limit_new_label_sets_fold_into_an_overflow_series_per_kept_labels() {
        let family = Family::<Vec<(String, String)>, Counter>::new(2, Counter::default);
        let mut registry = Registry::default();
        registry.register("hits", "Hits", family.clone());
        for (kind, route) in [("x", "b"), ("x", "a"), ("x", "c"), ("y", "d"), ("x", "e")] {
            family.get_or_create(&hit(kind, route)).metric.inc();
        }
        family.get_or_create(&hit("x", "a")).metric.inc();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert_eq!(
            text,
            "# HELP hits Hits.\n\
             # TYPE hits counter\n\
             hits_total{kind=\"x\",route=\"a\"} 2\n\
             hits_total{kind=\"x\",route=\"b\"} 1\n\
             hits_total{kind=\"x\",overflow=\"true\"} 2\n\
             hits_total{kind=\"y\",overflow=\"true\"} 1\n\
             # EOF\n"
        );
        assert_eq!(family.folds().get(), 3);
        assert_eq!(family.len(), 2);
    }
}
