//! Which endpoint a request goes to: the cheaper of two drawn at random,
//! by peak-EWMA latency, as Linkerd's proxy balances (and Finagle before
//! it).
//!
//! # Why
//!
//! Taking endpoints in turn gives a slow or overloaded instance its full
//! share of requests, and every one of them waits. Picking the fastest
//! instance every time sends it everything at once. The power of two
//! choices sits between: each request draws two endpoints and goes to the
//! one that looks cheaper, so a slow endpoint loses nearly all its
//! traffic, and no single fast one is stampeded.
//!
//! # How
//!
//! Each endpoint keeps a peak-EWMA estimate of its round-trip time to the
//! response's first body frame, or its end when none comes (Linkerd's
//! `PendingUntilFirstData`), and a request counts in flight until then:
//! it decays over [`DECAY`], and a sample slower than it read when its
//! request was picked replaces it at once, a faster one is averaged in by
//! the time since then, as tower's `PeakEwma`; a new endpoint starts at
//! [`DEFAULT_RTT`], decaying from then, and a request that fails before any
//! response counts as a sample of [`FAILURE_PENALTY`], or of the time it
//! waited if longer
//! (`balance/endpoint.rs` says why this estimate, and how it is kept). A
//! request given up on before its response (its caller went away, or a
//! timeout cancelled it) counts the time it waited as a sample: an
//! endpoint that never answers is thus seen as slow, where with no
//! sample at all its estimate would decay to nothing and draw the
//! traffic to it. An endpoint's cost is the estimate times one more than
//! its requests in flight; an estimate under a nanosecond (one left
//! without a sample for minutes, which reaches zero in two hours or so)
//! counts as one, so that requests in flight still tell endpoints apart.
//!
//! A forwarded TCP connection ([`ForwardTcp`](super::ForwardTcp)) is in
//! flight for as long as it is open, not only while it connects, since
//! for a long session the load is the connection, not the connect. Its
//! connect time is the latency sample, and its cost is weighed in two
//! ways of its own. Estimates under [`CONNECT_RTT_FLOOR`] count as equal,
//! so connections spread by how many each endpoint holds (HAProxy's
//! `leastconn`) rather than pile up where connects are a fraction of a
//! millisecond faster. And an endpoint whose estimate still holds half a
//! failure's penalty ([`FAILING_ESTIMATE`]) is drawn only against another
//! such: a count of open connections can grow large enough to outweigh
//! the penalty, which a count of requests in flight does not.
//!
//! With one endpoint nothing is drawn, and a request is neither timed
//! nor counted (unless failure accrual is on). A forwarded connection
//! still is: when a second endpoint joins the set, the connections the
//! first already holds must count against it, or the next ones would
//! split evenly between the two instead of going to the one that holds
//! none.
//!
//! With [failure accrual](super::accrual), endpoints whose responses keep
//! failing are taken out for a while: only those still in are drawn, an
//! endpoint whose penalty is over takes the next request as its probe, and
//! when none is in, `Balancer::pick` finds nothing.
//!
//! Whether or not failure accrual is on, an endpoint whose HTTP/2 connect
//! failed backs off, as Linkerd's proxy reconnects one ([`reconnect`]):
//! it is not drawn until the backoff ends, then one request at a time
//! probes its connect. Picking reads one atomic per endpoint drawn for
//! this (with one endpoint, it is still the only cost), and only when
//! one backs off are the endpoints drawn as failure accrual draws them.
//!
//! When the set of endpoints changes ([`EndpointSet`](super::EndpointSet)),
//! a new balancer is built that shares the state of every endpoint it
//! keeps: its estimate, its requests and connections in flight, its
//! failure accrual and its connect backoff. Requests and connections in flight to an endpoint
//! that left finish and count against the old balancer, which no new
//! request reaches.
//!
//! What a balancer thinks of its endpoints can be read at any time,
//! without a cost to requests: a [`BalancerView`] reads each endpoint's
//! [state](EndpointState) when asked ([`state`]), and [`EndpointGauges`]
//! reports them as a Prometheus gauge family, counted when scraped, as
//! Linkerd's `outbound_http_balancer_endpoints` ([`gauges`]).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use http::uri::Authority;
use tokio::time::Instant;

use super::accrual::{FailureAccrual, claim};
use super::forward::NoEndpoints;
use super::queue::{Gate, Queue};

mod connections;
mod draw;
mod endpoint;
pub mod gauges;
pub mod queue_metrics;
pub mod reconnect;
pub mod state;
mod verdict;

pub(crate) use self::connections::Established;
use self::connections::{Cost, Load};
use self::draw::Probes;
use self::endpoint::{Endpoint, nanos};
use self::reconnect::Shared;
pub(crate) use self::verdict::Verdict;

pub use self::{
    connections::{CONNECT_RTT_FLOOR, FAILING_ESTIMATE},
    endpoint::{DECAY, DEFAULT_RTT, FAILURE_PENALTY},
    gauges::{EndpointCounts, EndpointGauges},
    queue_metrics::{QueueMetricFamilies, QueueMetrics},
    reconnect::{
        ConnectBackoff, DEFAULT_CONNECT_BACKOFF_JITTER, DEFAULT_CONNECT_BACKOFF_MAX,
        DEFAULT_CONNECT_BACKOFF_MIN, EndpointConnects, InvalidConnectBackoff,
    },
    state::{BalancerView, EndpointState},
};

/// The endpoints of one target and their loads. It may hold none, while
/// a set waits for its first endpoints.
#[derive(Debug)]
pub(crate) struct Balancer {
    /// Shared with the balancers before and after an update that kept them.
    endpoints: Box<[Arc<Endpoint>]>,
    /// The instant the loads' times count from.
    epoch: Instant,
    accrual: Option<FailureAccrual>,
    /// Where requests wait when no endpoint is ready; shared with the
    /// balancers before and after an update.
    gate: Arc<Gate>,
    /// The epoch, the gate and the connect backoff, as each endpoint
    /// holds them; shared with the balancers before and after an update.
    shared: Arc<Shared>,
}

/// A request in flight to one endpoint of a balancer with several. It
/// counts as pending until its response's first body frame, which the
/// response body waits for, or until it is dropped.
#[derive(Debug)]
pub(crate) struct Pending {
    balancer: Arc<Balancer>,
    index: usize,
    sent: Instant,
    /// Whether this is the probe of an endpoint whose penalty is over and
    /// no outcome has been counted yet: dropped so, it lets another
    /// request probe. Its claim is stamped with the time it was `sent`
    /// ([`claim`](Self::claim)), kept here as a flag so that a request's
    /// future is no larger for it.
    probe: bool,
    /// The claim of the endpoint's connect probe, when this request is
    /// the first sent to it after a connect backoff and its connect is
    /// not known yet; 0 otherwise ([`reconnect`]).
    connect: u64,
    /// Whether its round trip has been counted as a sample: dropped
    /// without, it counts the time it waited.
    sampled: bool,
}

/// The endpoint a request or a forwarded connection was sent to: its
/// authority, and whether connections to it are failing, which the
/// request's outcome (or the connect's) tells, for the logs to warn of a
/// streak of failed connects once. It holds the
/// endpoint itself, shared with every balancer that keeps it, so that a
/// streak outlives an update of the set, and a new endpoint starts
/// without one.
#[derive(Clone)]
pub(crate) struct Picked(Arc<Endpoint>);

impl Picked {
    /// Where the request goes.
    pub(crate) fn authority(&self) -> &Authority {
        &self.0.authority
    }

    /// The endpoint's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// A connection to the endpoint could not be made. Whether this is
    /// the first such since it last answered (or since it was added).
    pub(crate) fn connect_failed(&self) -> bool {
        self.0.connect_failed()
    }

    /// The endpoint answered, or took a forwarded connection: a streak
    /// of failed connects is over.
    pub(crate) fn answered(&self) {
        self.0.answered();
    }

    /// A connect to the endpoint failed, that of its connect probe
    /// claimed at `probe` or of another request: the endpoint backs off,
    /// or backs off longer ([`reconnect`]).
    pub(crate) fn back_off(&self, probe: Option<u64>) {
        let shared = &self.0.shared;
        self.0
            .reconnect
            .failed(&shared.backoff, probe, shared.now());
        if probe.is_some() {
            // Requests waiting for an endpoint wait for the new end.
            shared.gate.wake(false);
        }
    }

    /// The connect of the endpoint's probe claimed at `probe` succeeded:
    /// it is back, and its backoff starts from the shortest again.
    pub(crate) fn reconnected(&self, probe: u64) {
        if self.0.reconnect.connected(Some(probe)) {
            self.0.shared.gate.wake(true);
        } else {
            self.0.reconnect.release(probe);
        }
    }
}

impl std::fmt::Display for Picked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.authority.fmt(f)
    }
}

impl std::fmt::Debug for Picked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Picked").field(&self.0.authority).finish()
    }
}

impl Balancer {
    /// A balancer over `endpoints`, with no failure accrual, or
    /// [`NoEndpoints`] when there are none: what a fixed set must have.
    pub(crate) fn non_empty(
        endpoints: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Self, NoEndpoints> {
        let balancer = Self::new(endpoints, None);
        if balancer.len() == 0 {
            return Err(NoEndpoints);
        }
        Ok(balancer)
    }

    /// A balancer over `endpoints` (each once, in the order given),
    /// taking out those that keep failing when `accrual` says.
    pub(crate) fn new(
        endpoints: impl IntoIterator<Item = SocketAddr>,
        accrual: Option<FailureAccrual>,
    ) -> Self {
        Self::build(
            endpoints,
            accrual,
            ConnectBackoff::default(),
            Gate::new(Queue::default()),
        )
    }

    /// A balancer over `endpoints`, fresh, as its arguments say.
    fn build(
        endpoints: impl IntoIterator<Item = SocketAddr>,
        accrual: Option<FailureAccrual>,
        backoff: ConnectBackoff,
        gate: Arc<Gate>,
    ) -> Self {
        let epoch = Instant::now();
        let shared = Arc::new(Shared {
            epoch,
            backoff,
            gate: gate.clone(),
        });
        let endpoints: Box<[Arc<Endpoint>]> = unique(endpoints)
            .filter_map(|addr| Endpoint::fresh(addr, 0, &shared))
            .collect();
        gate.watch(Readiness::of(&endpoints, accrual, &shared));
        Self {
            endpoints,
            epoch,
            accrual,
            gate,
            shared,
        }
    }

    /// The same endpoints, fresh, with `accrual` and the same queue (a
    /// fresh one, counted in the same metrics).
    pub(crate) fn with_accrual(&self, accrual: Option<FailureAccrual>) -> Self {
        let gate = self.gate.renewed(self.gate.queue());
        Self::build(self.addrs(), accrual, self.shared.backoff, gate)
    }

    /// The same endpoints, fresh, with the same failure accrual, whose
    /// requests wait for an endpoint as `queue` says (counted in the
    /// metrics of the queue they had).
    pub(crate) fn with_queue(&self, queue: Queue) -> Self {
        let gate = self.gate.renewed(queue);
        Self::build(self.addrs(), self.accrual, self.shared.backoff, gate)
    }

    /// The same endpoints, fresh, with the same failure accrual and
    /// queue, backing off a failed HTTP/2 connect as `backoff` says.
    pub(crate) fn with_connect_backoff(&self, backoff: ConnectBackoff) -> Self {
        let gate = self.gate.renewed(self.gate.queue());
        Self::build(self.addrs(), self.accrual, backoff, gate)
    }

    /// Where requests wait when no endpoint is ready.
    pub(crate) fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Whether an endpoint may take a request now: one in, or one whose
    /// penalty or connect backoff is over and whose probe is free.
    pub(crate) fn any_ready(&self) -> bool {
        let now = self.since_epoch(Instant::now()) as u64;
        self.endpoints
            .iter()
            .any(|e| self.endpoint_change(e, now).is_none())
    }

    /// When an endpoint failure accrual or a connect backoff has taken
    /// out may take a request again, the earliest: a penalty's or a
    /// backoff's end, or a probe's hold. `None` when none will by time
    /// alone.
    pub(crate) fn next_change(&self) -> Option<Instant> {
        let now = self.since_epoch(Instant::now()) as u64;
        self.endpoints
            .iter()
            .filter_map(|e| self.endpoint_change(e, now))
            .min()
            .map(|at| self.epoch + Duration::from_nanos(at))
    }

    /// When, after `now`, `endpoint` may take a request by time alone:
    /// when both failure accrual and its connect backoff let it. `None`
    /// when it may now.
    fn endpoint_change(&self, endpoint: &Endpoint, now: u64) -> Option<u64> {
        endpoint_change(endpoint, self.accrual, &self.shared.backoff, now)
    }

    /// A balancer over `endpoints` that keeps the state of those this one
    /// has: their estimates, requests in flight and failure accrual. The
    /// others start fresh, their default estimate set now. Times still
    /// count from this one's epoch, which the kept accrual state is
    /// measured in; set at the epoch, a new endpoint's estimate would
    /// have decayed to nothing, and it would take every request until
    /// its first answer.
    pub(crate) fn update(&self, endpoints: impl IntoIterator<Item = SocketAddr>) -> Self {
        let kept: HashMap<SocketAddr, &Arc<Endpoint>> =
            self.endpoints.iter().map(|e| (e.addr, e)).collect();
        let now = self.since_epoch(Instant::now()) as u64;
        let endpoints: Box<[Arc<Endpoint>]> = unique(endpoints)
            .filter_map(|addr| match kept.get(&addr) {
                Some(&endpoint) => Some(endpoint.clone()),
                None => Endpoint::fresh(addr, now, &self.shared),
            })
            .collect();
        self.gate
            .watch(Readiness::of(&endpoints, self.accrual, &self.shared));
        Self {
            endpoints,
            epoch: self.epoch,
            accrual: self.accrual,
            gate: self.gate.clone(),
            shared: self.shared.clone(),
        }
    }

    /// The endpoints, in order, for the clients made for them to report
    /// the connects they finish after their requests gave up on them.
    pub(crate) fn connects(&self) -> impl Iterator<Item = EndpointConnects> + '_ {
        self.endpoints
            .iter()
            .map(|e| EndpointConnects::new(Picked(e.clone())))
    }

    /// The endpoints' addresses, in order.
    pub(crate) fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoints.iter().map(|e| e.addr)
    }

    /// Each endpoint's address and state now, in order. Reads only: an
    /// endpoint whose penalty is over is `Probing` whether or not its
    /// probe has been claimed, and stays so until the probe's outcome;
    /// one whose connect backoff has not ended in a connect is
    /// `Pending`, unless failure accrual has it `Failing`.
    pub(crate) fn states(&self) -> Vec<(SocketAddr, EndpointState)> {
        let now = self.since_epoch(Instant::now()) as u64;
        self.endpoints
            .iter()
            .map(|e| {
                let health = if self.accrual.is_some() {
                    e.health.state(now)
                } else {
                    EndpointState::Ready
                };
                let connect = if e.reconnect.is_pending() {
                    EndpointState::Pending
                } else {
                    EndpointState::Ready
                };
                (e.addr, health.max(connect))
            })
            .collect()
    }

    /// How many endpoints there are.
    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Endpoint `i`, in the order given.
    fn endpoint(&self, i: usize) -> Option<&Endpoint> {
        self.endpoints.get(i).map(|e| &**e)
    }

    /// [`pick_indexed`](Self::pick_indexed) without the index.
    #[cfg(test)]
    pub(crate) fn pick(self: &Arc<Self>) -> Option<(&Authority, Option<Pending>)> {
        let (_, authority, pending) = self.pick_by(Load::Requests)?;
        Some((authority, pending))
    }

    /// The endpoint the next request goes to, with its index in the order
    /// of [`addrs`](Self::addrs), and the pending request to hold until
    /// its response's first body frame when there is a choice or a failure
    /// count to inform. `None` when failure accrual has taken every
    /// endpoint out, or there is none.
    pub(crate) fn pick_indexed(self: &Arc<Self>) -> Option<(usize, Picked, Option<Pending>)> {
        let (index, _, pending) = self.pick_by(Load::Requests)?;
        let endpoint = self.endpoints.get(index)?.clone();
        Some((index, Picked(endpoint), pending))
    }

    /// [`pick_indexed`](Self::pick_indexed), with the endpoints' costs
    /// counted as `load` says.
    fn pick_by(self: &Arc<Self>, load: Load) -> Option<(usize, &Authority, Option<Pending>)> {
        let n = match (&*self.endpoints, load) {
            // One endpoint: nothing to choose, nothing to measure for a
            // request, which is done in moments. A connection is still
            // counted: it may stay open for hours, and when a second
            // endpoint joins, the connections the first holds must weigh
            // against it, or the next ones would split evenly rather
            // than go to the one that has none.
            // Unless it backs off a failed connect: one load tells.
            ([only], Load::Requests) if self.accrual.is_none() && only.reconnect.is_clear() => {
                return Some((0, &only.authority, None));
            }
            ([], _) => return None,
            (endpoints, _) => endpoints.len(),
        };
        let now = Instant::now();
        let since = self.since_epoch(now);
        let (index, probes) = match self.accrual {
            None => match self.two_clear(n, since, load) {
                Some(index) => (index, Probes::default()),
                // One drawn backs off a failed connect: drawn again
                // among those that do not.
                None => self.pick_in(since as u64, load)?,
            },
            Some(_) => self.pick_in(since as u64, load)?,
        };
        let endpoint = self.endpoint(index)?;
        endpoint.pending.fetch_add(1, Ordering::Relaxed);
        let pending = Pending {
            balancer: self.clone(),
            index,
            sent: now,
            probe: probes.accrual,
            connect: probes.connect,
            sampled: false,
        };
        Some((index, &endpoint.authority, Some(pending)))
    }

    /// Without failure accrual: the cheaper of two endpoints drawn at
    /// random (the only one, of one), or `None` when one drawn backs off
    /// a failed connect. A load of each one's backoff is all this adds.
    fn two_clear(&self, n: usize, since: f64, load: Load) -> Option<usize> {
        let clear = |i: usize| self.endpoint(i).is_some_and(|e| e.reconnect.is_clear());
        if n == 1 {
            return clear(0).then_some(0);
        }
        let a = fastrand::usize(0..n);
        let mut b = fastrand::usize(0..n - 1);
        if b >= a {
            b += 1;
        }
        (clear(a) && clear(b)).then(|| self.cheaper(a, b, since, load))
    }

    /// Of `a` and `b`, the one that looks cheaper at `since`.
    fn cheaper(&self, a: usize, b: usize, since: f64, load: Load) -> usize {
        if self.cost(b, since, load) < self.cost(a, since, load) {
            b
        } else {
            a
        }
    }

    fn since_epoch(&self, now: Instant) -> f64 {
        nanos(now.saturating_duration_since(self.epoch))
    }

    /// What sending one more request (or connection, as `load` says) to
    /// endpoint `i` looks like it costs at `now` (nanoseconds since the
    /// epoch).
    fn cost(&self, i: usize, now: f64, load: Load) -> Cost {
        let Some(endpoint) = self.endpoint(i) else {
            return Cost::MAX;
        };
        let pending = endpoint.pending.load(Ordering::Relaxed);
        load.cost(endpoint.estimate_at(now), pending)
    }

    /// Counts a response of endpoint `i`, ended at `now`, as a `success`
    /// or a failure for failure accrual, if the balancer has it; `probe`
    /// says whether it was the endpoint's probe.
    fn record(&self, i: usize, success: bool, probe: bool, now: Instant) {
        if let (Some(accrual), Some(endpoint)) = (&self.accrual, self.endpoint(i)) {
            let since = self.since_epoch(now) as u64;
            endpoint.health.record(accrual, success, probe, since);
            if probe {
                // Back in, or out for longer: requests waiting for an
                // endpoint look again.
                self.gate.wake(success);
            }
        }
    }

    /// Counts a round trip of `sample` to endpoint `i`, of a request
    /// picked at `sent` and ended at `now`.
    fn observe(&self, i: usize, sample: Duration, sent: Instant, now: Instant) {
        let Some(endpoint) = self.endpoint(i) else {
            return;
        };
        let (sent, now) = (self.since_epoch(sent), self.since_epoch(now));
        endpoint.observe(nanos(sample), sent, now);
    }
}

impl Pending {
    /// The response arrived, and nothing after it is waited for: the
    /// round trip is a sample, and the response a `success` or a failure
    /// for failure accrual.
    pub(crate) fn answered(mut self, success: bool) {
        let now = Instant::now();
        self.observe_wait(now);
        self.record(success, now);
    }

    /// The request failed before any response: the sample is the
    /// [`FAILURE_PENALTY`], or the time it waited if longer.
    pub(crate) fn failed(mut self) {
        let now = Instant::now();
        let waited = now.saturating_duration_since(self.sent);
        self.balancer
            .observe(self.index, waited.max(FAILURE_PENALTY), self.sent, now);
        self.sampled = true;
        self.record(false, now);
    }

    /// The endpoint turned the request away unprocessed (a refused
    /// stream): the sample is that of a failure, as for
    /// [`failed`](Self::failed), so that the next requests go to endpoints
    /// with room while this one sheds load, but failure accrual counts
    /// nothing, and a probe lets the next request probe.
    pub(crate) fn turned_away(mut self) {
        let now = Instant::now();
        let waited = now.saturating_duration_since(self.sent);
        self.balancer
            .observe(self.index, waited.max(FAILURE_PENALTY), self.sent, now);
        self.sampled = true;
    }

    /// Counts the time since the request was sent as the endpoint's
    /// sample.
    fn observe_wait(&mut self, now: Instant) {
        let sample = now.saturating_duration_since(self.sent);
        self.balancer.observe(self.index, sample, self.sent, now);
        self.sampled = true;
    }

    /// Whether this request holds its endpoint's connect probe, not yet
    /// taken.
    pub(crate) fn holds_connect_probe(&self) -> bool {
        self.connect != 0
    }

    /// The claim of the endpoint's connect probe, if this request holds
    /// it: taken, as its connect is now known (or the caller decides).
    pub(crate) fn take_connect_probe(&mut self) -> Option<u64> {
        Some(std::mem::take(&mut self.connect)).filter(|&c| c != 0)
    }

    /// The stamp of the probe this request claimed, if it did: the time
    /// it was picked at, as the endpoint's standing was read then.
    fn claim(&self) -> u64 {
        claim(self.balancer.since_epoch(self.sent) as u64)
    }

    fn record(&mut self, success: bool, now: Instant) {
        let probe = std::mem::take(&mut self.probe);
        self.balancer.record(self.index, success, probe, now);
    }
}

impl Drop for Pending {
    /// A request given up on before its outcome (its caller went away, or
    /// a timeout above cancelled it) still counts the time it waited as
    /// a sample, as tower's and Linkerd's peak-EWMA handles do. Without
    /// one, an endpoint that never answers would get no sample at all:
    /// its estimate would decay to nothing, and it would draw ever more
    /// of the traffic. Nothing is counted for failure accrual.
    fn drop(&mut self) {
        if !self.sampled {
            self.observe_wait(Instant::now());
        }
        let Some(endpoint) = self.balancer.endpoint(self.index) else {
            return;
        };
        endpoint.pending.fetch_sub(1, Ordering::Relaxed);
        if self.probe {
            endpoint.health.release_probe(self.claim());
        }
        // A connect probe's connect may still be under way, and end on
        // its own: it settles the probe then ([`reconnect`]).
        let released = self.connect != 0 && endpoint.reconnect.abandon(self.connect);
        if self.probe || released {
            // The next request may probe: one waiting may be it.
            self.balancer.gate.wake(false);
        }
    }
}

/// When, after `now`, `endpoint` may take a request by time alone: when
/// both failure accrual (if on) and its connect backoff let it. `None`
/// when it may now.
fn endpoint_change(
    endpoint: &Endpoint,
    accrual: Option<FailureAccrual>,
    backoff: &ConnectBackoff,
    now: u64,
) -> Option<u64> {
    let health = accrual.and_then(|a| endpoint.health.next_change(now, a.probe_hold()));
    let connect = endpoint.reconnect.next_change(now, backoff.probe_hold());
    match (health, connect) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

/// The endpoints of a gate's latest balancer, for the gate to open by time
/// alone when one is ready again while no request comes to see it (see
/// [`queue`](super::queue)). Weak: it keeps no endpoint alive, and reads
/// none that left.
#[derive(Debug)]
pub(crate) struct Readiness {
    endpoints: Box<[std::sync::Weak<Endpoint>]>,
    accrual: Option<FailureAccrual>,
    shared: std::sync::Weak<Shared>,
}

impl Readiness {
    fn of(
        endpoints: &[Arc<Endpoint>],
        accrual: Option<FailureAccrual>,
        shared: &Arc<Shared>,
    ) -> Self {
        Self {
            endpoints: endpoints.iter().map(Arc::downgrade).collect(),
            accrual,
            shared: Arc::downgrade(shared),
        }
    }

    /// Whether an endpoint is ready: not backing off a connect, and in,
    /// or past its penalty with its probe free. One past its connect
    /// backoff is not: it is ready once a connect succeeds, and nothing
    /// connects but a request.
    pub(crate) fn ready(&self) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        let now = shared.now();
        self.endpoints
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .any(|e| {
                e.reconnect.is_clear()
                    && self
                        .accrual
                        .is_none_or(|a| e.health.next_change(now, a.probe_hold()).is_none())
            })
    }

    /// When an endpoint may take a request again by time alone, the
    /// earliest; `None` when none will.
    pub(crate) fn next_change(&self) -> Option<Instant> {
        let shared = self.shared.upgrade()?;
        let now = shared.now();
        let at = self
            .endpoints
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .filter_map(|e| endpoint_change(&e, self.accrual, &shared.backoff, now))
            .min()?;
        Some(shared.epoch + Duration::from_nanos(at))
    }
}

/// `endpoints` in order, each once: a duplicate would double its share.
fn unique(endpoints: impl IntoIterator<Item = SocketAddr>) -> impl Iterator<Item = SocketAddr> {
    let mut seen = std::collections::HashSet::new();
    endpoints.into_iter().filter(move |addr| seen.insert(*addr))
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
