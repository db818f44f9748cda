//! The balancer queue's metric families: requests waiting for an
//! endpoint, how long they waited, and the fail-fast gate.
//!
//! # Why
//!
//! A service whose endpoints are all gone, or all out for failing, does
//! not show in the endpoint gauges as anything but zero ready: what its
//! callers live through is the [queue](crate::proxy::queue), requests
//! waiting up to the fail-fast timeout, then failing at once. An operator
//! asks: are requests waiting now, how long do they wait, and is the
//! service in fail-fast, since when? Linkerd's proxy answers with the
//! `queue` families of its balancers (linkerd2-proxy
//! `linkerd/proxy/balance/queue`), registered as
//! `outbound_http_balancer_queue_*` and `outbound_tcp_balancer_queue_*`;
//! these are the same families, with the same names, types and buckets,
//! so that the charts and alerts written for Linkerd read them.
//!
//! # How
//!
//! [`QueueMetricFamilies::register`] registers the families under
//! `queue` in the registry given (`outbound_http_balancer`, say), and
//! [`metrics`](QueueMetricFamilies::metrics) resolves a service's
//! handles once. [`QueueMetrics::count`] then hands them to a balancer's
//! queue when the balancer is built: from then on a request that waits
//! adds to `queue_length` and `queue_requests_total` when it takes its
//! place, and gives the length back and observes the time it waited in
//! `queue_latency_seconds` when it leaves (sent, answered `503`, or its
//! caller gone). A request that finds an endpoint ready never enters the
//! queue and is not counted: unlike Linkerd's, whose every request passes
//! through a channel to the balancer's task, ours pays nothing for the
//! queue then. So `queue_requests_total` counts the requests that had to
//! wait, and the latency histogram is theirs alone.
//!
//! The gate is open while requests wait (or nothing does) and shut while
//! the service is in fail-fast. `queue_gate_open_total` counts one
//! opening when the service's handles are first resolved, as Linkerd's
//! counts one when its balancer is built, then one each time fail-fast
//! ends (an endpoint's penalty ending included, whether or not a request
//! comes then: see [`queue`](crate::proxy::queue)); `queue_gate_shut_total`
//! one each time it starts. So the gate is
//! shut exactly while `shut_total` equals `open_total`. `open_time` and
//! `shut_time` are the Unix time of the last change, the other `0`, and
//! `queue_gate_timeout_seconds` is the fail-fast timeout.
//!
//! A sidecar with several runtimes has one balancer, queue and gate per
//! runtime for a service, under the same labels: the length, requests
//! and latency add up, and the service's gate is shut while any of its
//! runtimes' is (some of its requests are failing fast), opening when the
//! last one opens. Changes of the gate are rare, and counted under a lock
//! of their own; a waiting request pays one atomic add for each count,
//! the histogram's lock, and the two clock reads that time its wait.

use std::{
    collections::HashMap,
    fmt,
    hash::Hash,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use tokio::time::Instant;

use super::state::BalancerView;

/// The buckets of `queue_latency_seconds`, Linkerd's: a broad sense of
/// the wait, from half a millisecond to its default fail-fast timeout.
pub const LATENCY_BUCKETS: [f64; 6] = [0.0005, 0.005, 0.05, 0.5, 1.0, 3.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A seconds gauge, as Linkerd's gate times are.
type Seconds = Gauge<f64, AtomicU64>;

/// The queue and gate families of a kind of balancer (HTTP, TCP), by the
/// labels `L` of each service. See the [module docs](self).
#[derive(Clone)]
pub struct QueueMetricFamilies<L> {
    length: Family<L, Gauge>,
    requests: Family<L, Counter>,
    latency: Family<L, Histogram, fn() -> Histogram>,
    open: Family<L, Counter>,
    shut: Family<L, Counter>,
    open_time: Family<L, Seconds>,
    shut_time: Family<L, Seconds>,
    timeout: Family<L, Seconds>,
    /// Each label set's gate state, shared by its handles.
    gates: Arc<Mutex<HashMap<L, Arc<GateState>>>>,
}

impl<L> Default for QueueMetricFamilies<L>
where
    L: EncodeLabelSet + Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static,
{
    /// Families registered nowhere.
    fn default() -> Self {
        Self {
            length: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            open: Family::default(),
            shut: Family::default(),
            open_time: Family::default(),
            shut_time: Family::default(),
            timeout: Family::default(),
            gates: Arc::default(),
        }
    }
}

impl<L> QueueMetricFamilies<L>
where
    L: EncodeLabelSet + Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static,
{
    /// Registers the families in `registry`, under `queue`: given the
    /// sub-registry `outbound_http_balancer`, they are Linkerd's
    /// `outbound_http_balancer_queue_length`, `_queue_requests_total`,
    /// `_queue_latency_seconds` and `_queue_gate_open_total`,
    /// `_gate_shut_total`, `_gate_open_time_seconds`,
    /// `_gate_shut_time_seconds` and `_gate_timeout_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        let families = Self::default();
        let queue = registry.sub_registry_with_prefix("queue");
        queue.register(
            "length",
            "Requests waiting in the queue now for an endpoint to be ready",
            families.length.clone(),
        );
        queue.register(
            "requests",
            "Requests that found no endpoint ready and waited in the queue",
            families.requests.clone(),
        );
        queue.register_with_unit(
            "latency",
            "How long requests waited in the queue, until sent or refused, or their caller left",
            Unit::Seconds,
            families.latency.clone(),
        );
        let gate = queue.sub_registry_with_prefix("gate");
        gate.register(
            "open",
            "Times the gate opened: once at start, then each time fail-fast ended",
            families.open.clone(),
        );
        gate.register(
            "shut",
            "Times the gate shut: the service went into fail-fast",
            families.shut.clone(),
        );
        gate.register_with_unit(
            "open_time",
            "Unix time the gate last opened; 0 while it is shut",
            Unit::Seconds,
            families.open_time.clone(),
        );
        gate.register_with_unit(
            "shut_time",
            "Unix time the gate last shut; 0 while it is open",
            Unit::Seconds,
            families.shut_time.clone(),
        );
        gate.register_with_unit(
            "timeout",
            "How long the service may have no endpoint ready before the gate shuts",
            Unit::Seconds,
            families.timeout.clone(),
        );
        families
    }

    /// The handles of the service labelled `labels`, resolved now, for
    /// each of its balancers to be [counted](QueueMetrics::count) in. The
    /// first call for a label set counts its gate's opening.
    pub fn metrics(&self, labels: &L) -> QueueMetrics {
        // One lookup per statement: a family holds its lock until the
        // end of one.
        let length = self.length.get_or_create(labels).clone();
        let requests = self.requests.get_or_create(labels).clone();
        let latency = self.latency.get_or_create(labels).clone();
        let open = self.open.get_or_create(labels).clone();
        let shut = self.shut.get_or_create(labels).clone();
        let open_time = self.open_time.get_or_create(labels).clone();
        let shut_time = self.shut_time.get_or_create(labels).clone();
        let timeout = self.timeout.get_or_create(labels).clone();
        let gate = GateMetrics {
            open,
            shut,
            open_time,
            shut_time,
            timeout,
            state: Arc::default(),
        };
        let state = {
            let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
            match gates.get(labels) {
                Some(state) => state.clone(),
                None => {
                    gate.opened_at_start();
                    gates.insert(labels.clone(), gate.state.clone());
                    gate.state.clone()
                }
            }
        };
        QueueMetrics {
            length,
            requests,
            latency,
            gate: GateMetrics { state, ..gate },
        }
    }
}

impl<L> fmt::Debug for QueueMetricFamilies<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueMetricFamilies")
            .finish_non_exhaustive()
    }
}

/// One service's queue and gate handles: see the [module docs](self).
/// Clones share them. The default counts into handles registered
/// nowhere.
#[derive(Clone, Debug)]
pub struct QueueMetrics {
    length: Gauge,
    requests: Counter,
    latency: Histogram,
    pub(crate) gate: GateMetrics,
}

impl Default for QueueMetrics {
    fn default() -> Self {
        Self {
            length: Gauge::default(),
            requests: Counter::default(),
            latency: latency_histogram(),
            gate: GateMetrics::default(),
        }
    }
}

impl QueueMetrics {
    /// Counts the queue and gate of `balancer` in these handles from now
    /// on: the balancer of a fixed [`Forward`](crate::proxy::Forward)
    /// ([`balancer_view`](crate::proxy::Forward::balancer_view)), or that
    /// of an [`EndpointSet`](crate::proxy::EndpointSet)
    /// ([`view`](crate::proxy::EndpointSet::view)), whose queue its
    /// later balancers share. Call it once the balancer is built (after
    /// `with_queue` and `with_failure_accrual`, which start a fresh one
    /// that keeps these handles): requests that waited before are not
    /// counted.
    ///
    /// Returns `false`, counting nothing, when nothing balances over the
    /// balancer any more, or its queue is counted already (in the handles
    /// it was given first, which it keeps).
    pub fn count(&self, balancer: &BalancerView) -> bool {
        balancer
            .gate()
            .is_some_and(|gate| gate.count_in(self.clone()))
    }

    /// Requests waiting now.
    pub fn length(&self) -> i64 {
        self.length.get()
    }

    /// Requests that have waited.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// Times the service's gate opened (once at start) and shut.
    pub fn gate_changes(&self) -> (u64, u64) {
        (self.gate.open.get(), self.gate.shut.get())
    }

    /// A request took a place in the queue.
    pub(crate) fn entered(&self) {
        self.length.inc();
        self.requests.inc();
    }

    /// A request that took its place at `since` left the queue.
    pub(crate) fn left(&self, since: Instant) {
        self.length.dec();
        let waited = Instant::now().saturating_duration_since(since);
        self.latency.observe(waited.as_secs_f64());
    }
}

/// The gate's handles, and how many of the service's gates are shut.
#[derive(Clone, Debug, Default)]
pub(crate) struct GateMetrics {
    open: Counter,
    shut: Counter,
    open_time: Seconds,
    shut_time: Seconds,
    timeout: Seconds,
    state: Arc<GateState>,
}

/// How many of a service's gates (one per runtime) are shut; changes of
/// the service's gate are made under its lock, so that two runtimes'
/// changes at once leave the times of the last.
#[derive(Debug, Default)]
struct GateState {
    shut: Mutex<usize>,
}

impl GateMetrics {
    /// The service's gate is open from the start.
    fn opened_at_start(&self) {
        self.open.inc();
        self.open_time.set(unix_now());
        self.shut_time.set(0.0);
    }

    /// A gate whose fail-fast timeout is `timeout` is counted from now,
    /// shut if `shut`.
    pub(crate) fn counted(&self, timeout: Duration, shut: bool) {
        self.timeout.set(timeout.as_secs_f64());
        if shut {
            self.shut();
        }
    }

    /// One of the service's gates shut: the service's shuts if it was
    /// the first.
    pub(crate) fn shut(&self) {
        let mut shut = self
            .state
            .shut
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *shut += 1;
        if *shut == 1 {
            self.shut.inc();
            self.shut_time.set(unix_now());
            self.open_time.set(0.0);
        }
    }

    /// One of the service's gates opened (or went away shut): the
    /// service's opens if it was the last shut.
    pub(crate) fn opened(&self) {
        let mut shut = self
            .state
            .shut
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *shut == 0 {
            return;
        }
        *shut -= 1;
        if *shut == 0 {
            self.open.inc();
            self.open_time.set(unix_now());
            self.shut_time.set(0.0);
        }
    }
}

/// Seconds since the Unix epoch, by the wall clock, as Linkerd reports
/// its gate's changes: a time to show, not to measure with.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests;
