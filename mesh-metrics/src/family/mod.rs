//! Metric families with a series cap.
//!
//! The first complaint about every mesh's metrics is cardinality: one label
//! that takes its values from traffic (an authority, a path, a port) and the
//! time-series database falls over (linkerd2 #1378). Our label values come
//! from closed sets, but a closed set can still be large (ten thousand
//! configured routes times a few hundred peers), so every family also has a
//! hard cap. Past it, new label sets fold into one series labelled
//! `overflow="true"`, and a counter records each observation that was
//! folded. Totals stay right (sums over the family include the overflow
//! series); only the breakdown is lost, and the fold counter says so.
//!
//! prometheus-client's own `Family` encodes in hash-map order; this one keeps
//! its series in a `BTreeMap`, so the exposition is sorted and stable, which
//! the golden-text tests rely on.

pub(crate) mod cache;

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder},
    metrics::{MetricType, TypedMetric, counter::Counter},
};

/// The label set of the overflow series.
const OVERFLOW_LABELS: [(&str, &str); 1] = [("overflow", "true")];

/// A handle found in a [`Family`], and whether it is the overflow series.
pub(crate) struct Series<M> {
    pub(crate) metric: M,
    pub(crate) folded: bool,
}

/// A capped, sorted metric family. Cloning shares the series.
pub(crate) struct Family<L, M> {
    inner: Arc<Inner<L, M>>,
}

struct Inner<L, M> {
    series: Mutex<BTreeMap<L, M>>,
    limit: usize,
    make: fn() -> M,
    overflow: M,
    overflowed: AtomicBool,
    folds: Counter,
}

impl<L, M> Clone for Family<L, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<L, M> fmt::Debug for Family<L, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("limit", &self.inner.limit)
            .field("folds", &self.inner.folds.get())
            .finish_non_exhaustive()
    }
}

impl<L: Ord + Clone, M: Clone> Family<L, M> {
    /// A family of at most `limit` series (plus the overflow series), each
    /// made by `make`.
    pub(crate) fn new(limit: usize, make: fn() -> M) -> Self {
        Self {
            inner: Arc::new(Inner {
                series: Mutex::new(BTreeMap::new()),
                limit,
                make,
                overflow: make(),
                overflowed: AtomicBool::new(false),
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
        if let Some(m) = series.get(labels) {
            return Series {
                metric: m.clone(),
                folded: false,
            };
        }
        if series.len() < self.inner.limit {
            let m = (self.inner.make)();
            series.insert(labels.clone(), m.clone());
            return Series {
                metric: m,
                folded: false,
            };
        }
        drop(series);
        self.inner.overflowed.store(true, Ordering::Relaxed);
        self.inner.folds.inc();
        Series {
            metric: self.inner.overflow.clone(),
            folded: true,
        }
    }

    /// The counter of folded observations.
    pub(crate) fn folds(&self) -> Counter {
        self.inner.folds.clone()
    }

    /// How many series the family holds, the overflow series excluded.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.series.lock().map(|s| s.len()).unwrap_or(0)
    }
}

impl<L, M: TypedMetric> TypedMetric for Family<L, M> {
    const TYPE: MetricType = M::TYPE;
}

impl<L, M> EncodeMetric for Family<L, M>
where
    L: EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        {
            let series = self
                .inner
                .series
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (labels, metric) in series.iter() {
                metric.encode(encoder.encode_family(labels)?)?;
            }
        }
        if self.inner.overflowed.load(Ordering::Relaxed) {
            self.inner
                .overflow
                .encode(encoder.encode_family(&OVERFLOW_LABELS)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// The fold counters of a group of families, encoded as one counter family
/// with a `family` label naming each.
#[derive(Clone, Debug)]
pub(crate) struct FoldCounters(Arc<[(&'static str, Counter)]>);

impl FoldCounters {
    /// Counters named after the families they count folds of.
    pub(crate) fn new(entries: Vec<(&'static str, Counter)>) -> Self {
        Self(entries.into())
    }
}

impl TypedMetric for FoldCounters {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for FoldCounters {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        for (family, counter) in self.0.iter() {
            counter.encode(encoder.encode_family(&[("family", *family)])?)?;
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

    #[test]
    fn past_the_limit_new_label_sets_fold_into_one_overflow_series() {
        let family = Family::<Vec<(String, String)>, Counter>::new(2, Counter::default);
        let mut registry = Registry::default();
        registry.register("hits", "Hits", family.clone());
        for route in ["b", "a", "c", "d", "a"] {
            let s = family.get_or_create(&vec![("route".into(), route.into())]);
            s.metric.inc();
        }
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert_eq!(
            text,
            "# HELP hits Hits.\n\
             # TYPE hits counter\n\
             hits_total{route=\"a\"} 2\n\
             hits_total{route=\"b\"} 1\n\
             hits_total{overflow=\"true\"} 2\n\
             # EOF\n"
        );
        assert_eq!(family.folds().get(), 2);
        assert_eq!(family.len(), 2);
    }
}
