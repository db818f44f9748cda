//! How what a route sends ends, at one level (the route's logical
//! requests, or the attempts it sends one backend): counted by status, and
//! timed. One [`Families`] per level holds the HTTP and gRPC families;
//! [`Ends`] are one route's (or route backend's) handles into them.
//!
//! The handles are resolved when the route is built, those of a gRPC
//! family the first time the route sees a gRPC call (so that a route that
//! carries none shows no gRPC series), and those of the statuses the first
//! time each is seen: an ending then takes an atomic increment, and a
//! duration an observation of atomics, with no lock.

use std::{fmt, hash::Hash, sync::OnceLock, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::{Registry, Unit},
};

use super::backend::GrpcEnding;
use super::duration::{Buckets, DurationHistogram, WithBuckets};
use super::labels::{GrpcStatusLabels, StatusLabels};

/// The statuses one handle keeps resolved; the rare route or backend that
/// ends with more finds the others through the family, under its lock.
const KEPT_STATUSES: usize = 8;

/// How an HTTP request ended: the values of `http_status` and `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ending {
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<&'static str>,
}

type Durations<L> = Family<L, DurationHistogram, WithBuckets>;

/// The statuses and durations families of one level, HTTP and gRPC,
/// registered once and shared by every route.
#[derive(Clone, Debug)]
pub(crate) struct Families<L: Eq + Hash> {
    statuses: Family<StatusLabels<L>, Counter>,
    durations: Durations<L>,
    grpc_statuses: Family<GrpcStatusLabels<L>, Counter>,
    grpc_durations: Durations<L>,
}

/// The names and help of one level's families: `statuses` and `duration`
/// after `outbound_http_route_` (or `outbound_grpc_route_`), each with its
/// help text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Names {
    pub(crate) statuses: (&'static str, &'static str),
    pub(crate) duration: (&'static str, &'static str),
    pub(crate) buckets: &'static Buckets,
}

impl<L> Families<L>
where
    L: Clone + fmt::Debug + Eq + Hash + EncodeLabelSet + Send + Sync + 'static,
{
    pub(crate) fn register(registry: &mut Registry, names: Names) -> Self {
        let families = Self {
            statuses: Family::default(),
            durations: Family::new_with_constructor(WithBuckets(names.buckets)),
            grpc_statuses: Family::default(),
            grpc_durations: Family::new_with_constructor(WithBuckets(names.buckets)),
        };
        let (statuses, statuses_help) = names.statuses;
        let (duration, duration_help) = names.duration;
        let help = |text: &str, calls: &str| text.replace("{}", calls);
        registry.register(
            format!("outbound_http_route_{statuses}"),
            help(statuses_help, "requests"),
            families.statuses.clone(),
        );
        registry.register_with_unit(
            format!("outbound_http_route_{duration}"),
            help(duration_help, "requests"),
            Unit::Seconds,
            families.durations.clone(),
        );
        registry.register(
            format!("outbound_grpc_route_{statuses}"),
            help(statuses_help, "gRPC calls"),
            families.grpc_statuses.clone(),
        );
        registry.register_with_unit(
            format!("outbound_grpc_route_{duration}"),
            help(duration_help, "gRPC calls"),
            Unit::Seconds,
            families.grpc_durations.clone(),
        );
        families
    }

    /// The handles of what is labelled `labels`.
    pub(crate) fn ends(&self, labels: L) -> Ends<L> {
        Ends {
            duration: self.durations.get_or_create(&labels).clone(),
            labels,
            families: self.clone(),
            kept: Kept::default(),
            grpc_duration: OnceLock::new(),
            grpc_kept: Kept::default(),
        }
    }
}

/// One route's, or one route backend's, handles. See the
/// [module docs](self).
#[derive(Debug)]
pub(crate) struct Ends<L: Eq + Hash> {
    labels: L,
    families: Families<L>,
    duration: DurationHistogram,
    kept: Kept<Ending>,
    grpc_duration: OnceLock<DurationHistogram>,
    grpc_kept: Kept<GrpcEnding>,
}

impl<L: Eq + Hash> Ends<L> {
    /// The labels the handles were resolved for.
    pub(crate) fn labels(&self) -> &L {
        &self.labels
    }
}

/// What the responses a route counts tell of their end: a gRPC call's
/// status, and how long it took. Shared by the route's and the backends'
/// [`Ends`], so that their response bodies are of one type.
pub(crate) trait Sink: fmt::Debug + Send + Sync {
    /// Counts an HTTP request's ending.
    fn count(&self, ending: Ending);
    /// Counts a gRPC call's ending.
    fn count_grpc(&self, ending: GrpcEnding);
    /// Records how long a request (a gRPC call when `grpc`) took to end.
    fn observe(&self, grpc: bool, elapsed: Duration);
}

impl<L> Sink for Ends<L>
where
    L: Clone + fmt::Debug + Eq + Hash + EncodeLabelSet + Send + Sync + 'static,
{
    fn count(&self, ending: Ending) {
        self.kept.count(ending, |ending| {
            let labels = StatusLabels {
                labels: self.labels.clone(),
                http_status: ending.status,
                error: ending.error,
            };
            self.families.statuses.get_or_create(&labels).clone()
        });
    }

    fn count_grpc(&self, ending: GrpcEnding) {
        self.grpc_kept.count(ending, |ending| {
            let labels = GrpcStatusLabels {
                labels: self.labels.clone(),
                grpc_status: ending.status,
                error: ending.error,
            };
            self.families.grpc_statuses.get_or_create(&labels).clone()
        });
    }

    fn observe(&self, grpc: bool, elapsed: Duration) {
        let histogram = if grpc {
            self.grpc_duration.get_or_init(|| {
                self.families
                    .grpc_durations
                    .get_or_create(&self.labels)
                    .clone()
            })
        } else {
            &self.duration
        };
        histogram.observe(elapsed);
    }
}

/// The counters (or histograms) of the first endings seen, set once and
/// never replaced, so that reading them takes no lock.
#[derive(Debug)]
pub(super) struct Kept<E, M = Counter>([OnceLock<(E, M)>; KEPT_STATUSES]);

impl<E, M> Default for Kept<E, M> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<E: Copy + PartialEq> Kept<E> {
    /// Counts `ending`, in the counter `resolve` finds for it the first
    /// time it is seen.
    fn count(&self, ending: E, resolve: impl Fn(E) -> Counter) {
        self.with(ending, resolve, Counter::inc);
    }
}

impl<E: Copy + PartialEq, M> Kept<E, M> {
    /// Applies `f` to the metric of `ending`, which `resolve` finds the
    /// first time it is seen.
    pub(super) fn with<R>(&self, ending: E, resolve: impl Fn(E) -> M, f: impl FnOnce(&M) -> R) {
        for slot in &self.0 {
            let (kept, metric) = slot.get_or_init(|| (ending, resolve(ending)));
            if *kept == ending {
                f(metric);
                return;
            }
        }
        f(&resolve(ending));
    }
}
