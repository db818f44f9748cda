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
//! Each endpoint keeps an estimate of its round-trip time to the response
//! head. A sample slower than the estimate replaces it at once (the
//! "peak"); a faster one is averaged in, weighted by how long ago the last
//! sample came, over [`DECAY`] (Linkerd's 10 s). Between samples the
//! estimate decays toward zero, so an endpoint that was avoided is tried
//! again. A new endpoint starts at [`DEFAULT_RTT`] (Linkerd's 30 ms). Its
//! cost is the estimate times one more than its requests in flight.
//!
//! A request that fails before any response (the endpoint refused the
//! connection, say) counts as a sample of [`FAILURE_PENALTY`]: a failure
//! is fast, and without the penalty a dead endpoint would look like the
//! fastest of all.
//!
//! With one endpoint nothing is drawn, timed or counted (unless failure
//! accrual is on).
//!
//! With [failure accrual](super::accrual), endpoints whose responses keep
//! failing are taken out for a while: only those still in are drawn, an
//! endpoint whose penalty is over takes the next request as its probe, and
//! when none is in, `Balancer::pick` finds nothing.
//!
//! Endpoints are updated without locks; samples that race may overwrite
//! each other, which costs the estimate one sample.
//!
//! When the set of endpoints changes ([`EndpointSet`](super::EndpointSet)),
//! a new balancer is built that shares the state of every endpoint it
//! keeps: its estimate, its requests in flight and its failure accrual.
//! Requests in flight to an endpoint that left finish and count against
//! the old balancer, which no new request reaches.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use http::uri::Authority;
use tokio::time::Instant;

use super::accrual::{FailureAccrual, Health, Standing};

/// The estimate of an endpoint that has not answered yet: Linkerd's.
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// How fast old samples lose their weight: Linkerd's.
pub const DECAY: Duration = Duration::from_secs(10);

/// The sample a request that failed before any response counts as.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// The endpoints of one target and their loads. It may hold none, while
/// a set waits for its first endpoints.
#[derive(Debug)]
pub(crate) struct Balancer {
    /// Shared with the balancers before and after an update that kept them.
    endpoints: Box<[Arc<Endpoint>]>,
    /// The instant the loads' times count from.
    epoch: Instant,
    accrual: Option<FailureAccrual>,
}

#[derive(Debug)]
struct Endpoint {
    addr: SocketAddr,
    authority: Authority,
    /// The round-trip estimate, in nanoseconds, as `f64` bits.
    rtt: AtomicU64,
    /// When `rtt` was last set, in nanoseconds since the epoch.
    stamp: AtomicU64,
    pending: AtomicU32,
    health: Health,
}

/// A request in flight to one endpoint of a balancer with several. It
/// counts as pending until its response head arrives or it is dropped.
#[derive(Debug)]
pub(crate) struct Pending {
    balancer: Arc<Balancer>,
    index: usize,
    sent: Instant,
    /// Whether this is the probe of an endpoint whose penalty is over and
    /// no outcome has been counted yet: dropped so, it lets another
    /// request probe.
    probe: bool,
}

impl Balancer {
    /// A balancer over `endpoints` (each once, in the order given),
    /// taking out those that keep failing when `accrual` says.
    pub(crate) fn new(
        endpoints: impl IntoIterator<Item = SocketAddr>,
        accrual: Option<FailureAccrual>,
    ) -> Self {
        Self {
            endpoints: unique(endpoints).filter_map(Endpoint::fresh).collect(),
            epoch: Instant::now(),
            accrual,
        }
    }

    /// The same endpoints, fresh, with `accrual`.
    pub(crate) fn with_accrual(&self, accrual: Option<FailureAccrual>) -> Self {
        Self::new(self.addrs(), accrual)
    }

    /// A balancer over `endpoints` that keeps the state of those this one
    /// has: their estimates, requests in flight and failure accrual. The
    /// others start fresh. Times still count from this one's epoch, which
    /// the kept accrual state is measured in.
    pub(crate) fn update(&self, endpoints: impl IntoIterator<Item = SocketAddr>) -> Self {
        let kept: HashMap<SocketAddr, &Arc<Endpoint>> =
            self.endpoints.iter().map(|e| (e.addr, e)).collect();
        let endpoints = unique(endpoints)
            .filter_map(|addr| match kept.get(&addr) {
                Some(&endpoint) => Some(endpoint.clone()),
                None => Endpoint::fresh(addr),
            })
            .collect();
        Self {
            endpoints,
            epoch: self.epoch,
            accrual: self.accrual,
        }
    }

    /// The endpoints' addresses, in order.
    pub(crate) fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoints.iter().map(|e| e.addr)
    }

    /// How many endpoints there are.
    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Endpoint `i`, in the order given.
    fn endpoint(&self, i: usize) -> Option<&Endpoint> {
        self.endpoints.get(i).map(|e| &**e)
    }

    /// The endpoint the next request goes to, and the pending request to
    /// hold until its response head when there is a choice or a failure
    /// count to inform. `None` when failure accrual has taken every
    /// endpoint out, or there is none.
    pub(crate) fn pick(self: &Arc<Self>) -> Option<(&Authority, Option<Pending>)> {
        let n = match &*self.endpoints {
            // One endpoint: nothing to choose, nothing to measure.
            [only] if self.accrual.is_none() => return Some((&only.authority, None)),
            [] => return None,
            endpoints => endpoints.len(),
        };
        let now = Instant::now();
        let since = self.since_epoch(now);
        let (index, probe) = match self.accrual {
            None => {
                let a = fastrand::usize(0..n);
                let mut b = fastrand::usize(0..n - 1);
                if b >= a {
                    b += 1;
                }
                (self.cheaper(a, b, since), false)
            }
            Some(_) => self.pick_in(since as u64)?,
        };
        let endpoint = self.endpoint(index)?;
        endpoint.pending.fetch_add(1, Ordering::Relaxed);
        let pending = Pending {
            balancer: self.clone(),
            index,
            sent: now,
            probe,
        };
        Some((&endpoint.authority, Some(pending)))
    }

    /// Of `a` and `b`, the one that looks cheaper at `since`.
    fn cheaper(&self, a: usize, b: usize, since: f64) -> usize {
        if self.cost(b, since) < self.cost(a, since) {
            b
        } else {
            a
        }
    }

    /// Two endpoints drawn among those failure accrual has not taken out,
    /// the cheaper of them; or one whose penalty is over, as its probe.
    /// Each draw starts at a random endpoint and takes the first one in
    /// from there.
    fn pick_in(&self, now: u64) -> Option<(usize, bool)> {
        let n = self.len();
        let draw = |skip: Option<usize>| {
            let start = fastrand::usize(0..n);
            (0..n)
                .map(|k| (start + k) % n)
                .filter(|&i| Some(i) != skip)
                .find_map(|i| match self.endpoint(i)?.health.standing(now) {
                    Standing::In => Some((i, false)),
                    Standing::Probe => Some((i, true)),
                    Standing::Out => None,
                })
        };
        let (a, probe) = draw(None)?;
        if probe || n == 1 {
            return Some((a, probe));
        }
        match draw(Some(a)) {
            None => Some((a, false)),
            Some((b, true)) => Some((b, true)),
            Some((b, false)) => Some((self.cheaper(a, b, now as f64), false)),
        }
    }

    fn since_epoch(&self, now: Instant) -> f64 {
        nanos(now.saturating_duration_since(self.epoch))
    }

    /// What sending one more request to endpoint `i` looks like it costs
    /// at `now` (nanoseconds since the epoch).
    fn cost(&self, i: usize, now: f64) -> f64 {
        let Some(endpoint) = self.endpoint(i) else {
            return f64::INFINITY;
        };
        let rtt = f64::from_bits(endpoint.rtt.load(Ordering::Relaxed));
        let stamp = endpoint.stamp.load(Ordering::Relaxed) as f64;
        let pending = endpoint.pending.load(Ordering::Relaxed);
        rtt * weight(now - stamp) * f64::from(pending + 1)
    }

    /// Counts a round trip of `sample` to endpoint `i`, ended at `now`.
    fn observe(&self, i: usize, sample: Duration, now: Instant) {
        let Some(endpoint) = self.endpoint(i) else {
            return;
        };
        let now = self.since_epoch(now);
        let sample = nanos(sample);
        let rtt = f64::from_bits(endpoint.rtt.load(Ordering::Relaxed));
        let stamp = endpoint.stamp.load(Ordering::Relaxed) as f64;
        let next = if sample > rtt {
            sample
        } else {
            let old = weight(now - stamp);
            rtt * old + sample * (1.0 - old)
        };
        endpoint.rtt.store(next.to_bits(), Ordering::Relaxed);
        endpoint.stamp.store(now as u64, Ordering::Relaxed);
    }

    /// A request sent to the endpoint at `addr`, whatever its cost.
    #[cfg(test)]
    pub(crate) fn send_to(self: &Arc<Self>, addr: SocketAddr) -> Option<Pending> {
        let index = self.endpoints.iter().position(|e| e.addr == addr)?;
        self.endpoints[index]
            .pending
            .fetch_add(1, Ordering::Relaxed);
        Some(Pending {
            balancer: self.clone(),
            index,
            sent: Instant::now(),
            probe: false,
        })
    }

    /// The estimate of the endpoint at `addr`, as of its last sample.
    #[cfg(test)]
    pub(crate) fn estimate_of(&self, addr: SocketAddr) -> Option<Duration> {
        let index = self.endpoints.iter().position(|e| e.addr == addr)?;
        Some(self.estimate(index))
    }

    /// The requests in flight to the endpoint at `addr`.
    #[cfg(test)]
    pub(crate) fn pending_of(&self, addr: SocketAddr) -> Option<u32> {
        let endpoint = self.endpoints.iter().find(|e| e.addr == addr)?;
        Some(endpoint.pending.load(Ordering::Relaxed))
    }

    /// Endpoint `i`'s estimate, as of its last sample.
    #[cfg(test)]
    fn estimate(&self, i: usize) -> Duration {
        let rtt = self
            .endpoint(i)
            .map_or(0, |e| e.rtt.load(Ordering::Relaxed));
        let rtt = f64::from_bits(rtt);
        Duration::from_nanos(rtt as u64)
    }
}

impl Pending {
    /// The response head arrived: the round trip is a sample, and the
    /// response a `success` or a failure for failure accrual.
    pub(crate) fn answered(mut self, success: bool) {
        let now = Instant::now();
        let sample = now.saturating_duration_since(self.sent);
        self.balancer.observe(self.index, sample, now);
        self.record(success, now);
    }

    /// The request failed before any response.
    pub(crate) fn failed(mut self) {
        let now = Instant::now();
        self.balancer.observe(self.index, FAILURE_PENALTY, now);
        self.record(false, now);
    }

    fn record(&mut self, success: bool, now: Instant) {
        self.probe = false;
        if let (Some(accrual), Some(endpoint)) =
            (&self.balancer.accrual, self.balancer.endpoint(self.index))
        {
            let since = self.balancer.since_epoch(now) as u64;
            endpoint.health.record(accrual, success, since);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(endpoint) = self.balancer.endpoint(self.index) else {
            return;
        };
        endpoint.pending.fetch_sub(1, Ordering::Relaxed);
        if self.probe {
            endpoint.health.release_probe();
        }
    }
}

impl Endpoint {
    /// An endpoint that has not answered yet.
    fn fresh(addr: SocketAddr) -> Option<Arc<Self>> {
        let authority = Authority::try_from(addr.to_string()).ok()?;
        Some(Arc::new(Self {
            addr,
            authority,
            rtt: AtomicU64::new(nanos(DEFAULT_RTT).to_bits()),
            stamp: AtomicU64::new(0),
            pending: AtomicU32::new(0),
            health: Health::default(),
        }))
    }
}

/// `endpoints` in order, each once: a duplicate would double its share.
fn unique(endpoints: impl IntoIterator<Item = SocketAddr>) -> impl Iterator<Item = SocketAddr> {
    let mut seen = std::collections::HashSet::new();
    endpoints.into_iter().filter(move |addr| seen.insert(*addr))
}

/// How much of a sample `elapsed` nanoseconds old still counts.
fn weight(elapsed: f64) -> f64 {
    (-elapsed.max(0.0) / nanos(DECAY)).exp()
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> impl Iterator<Item = SocketAddr> {
        (1..=n).map(|i| SocketAddr::from(([10, 0, 0, i as u8], 80)))
    }

    fn balancer(n: u16) -> Arc<Balancer> {
        Arc::new(Balancer::new(addrs(n), None))
    }

    fn index(balancer: &Balancer, authority: &Authority) -> usize {
        (0..balancer.len())
            .find(|&i| balancer.endpoint(i).unwrap().authority == *authority)
            .unwrap()
    }

    /// Sends `n` requests one after another, each answered after the
    /// latency of the endpoint it went to, and counts them per endpoint.
    async fn send(balancer: &Arc<Balancer>, latencies: &[Duration], n: usize) -> Vec<usize> {
        let mut counts = vec![0; balancer.len()];
        for _ in 0..n {
            let (authority, pending) = balancer.pick().unwrap();
            let i = index(balancer, authority);
            counts[i] += 1;
            tokio::time::advance(latencies[i]).await;
            pending.unwrap().answered(true);
        }
        counts
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_endpoint_loses_nearly_all_its_traffic() {
        let balancer = balancer(3);
        let ms = Duration::from_millis;
        let counts = send(&balancer, &[ms(2), ms(100), ms(2)], 300).await;
        // Each endpoint is tried while its estimate is the default; after
        // that the slow one waits until its 100 ms decays below 2 ms,
        // which takes longer than these requests do.
        assert!(counts[1] <= 3, "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), 300);
        // The two fast ones share the rest.
        assert!(counts[0] > 100 && counts[2] > 100, "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_make_an_endpoint_look_dearer() {
        let balancer = balancer(2);
        // Equal estimates; the first endpoint holds three requests.
        let held: Vec<_> = (0..3)
            .map(|_| {
                let (_, pending) = balancer.pick().unwrap();
                pending.unwrap()
            })
            .collect();
        let busy = held.iter().map(|p| p.index).collect::<Vec<_>>();
        // With two endpoints both are always drawn, so the second request
        // already went to the idle one: the three alternate.
        assert!(busy.contains(&0) && busy.contains(&1), "{busy:?}");
        let (a, b) = (balancer.endpoint(0).unwrap(), balancer.endpoint(1).unwrap());
        let (on_a, on_b) = (
            a.pending.load(Ordering::Relaxed),
            b.pending.load(Ordering::Relaxed),
        );
        assert_eq!(on_a + on_b, 3);
        // The next goes to the one with fewer: one in flight against two.
        let (authority, next) = balancer.pick().unwrap();
        let fewer = usize::from(on_b < on_a);
        assert_eq!(index(&balancer, authority), fewer);
        drop(next);
        drop(held);
        assert_eq!(a.pending.load(Ordering::Relaxed), 0);
        assert_eq!(b.pending.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_endpoint_is_avoided_and_tried_again_later() {
        let balancer = balancer(2);
        let start = Instant::now();
        // The first endpoint refuses connections; the second answers in
        // 5 ms. Requests go one after another until the first is tried
        // again.
        let mut failed_at = Vec::new();
        while failed_at.len() < 2 {
            let (authority, pending) = balancer.pick().unwrap();
            let pending = pending.unwrap();
            if index(&balancer, authority) == 0 {
                failed_at.push(start.elapsed());
                pending.failed();
                let penalty = balancer.estimate(0).as_secs_f64();
                assert!((penalty - FAILURE_PENALTY.as_secs_f64()).abs() < 1e-6);
            } else {
                tokio::time::advance(Duration::from_millis(5)).await;
                pending.answered(true);
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "never tried again"
            );
        }
        // The penalty of 1 s decays below the other's 5 ms after
        // 10 s × ln(1 s / 5 ms) = 53 s.
        let again = failed_at[1] - failed_at[0];
        assert!(
            (Duration::from_secs(50)..Duration::from_secs(56)).contains(&again),
            "{again:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_faster_sample_is_averaged_in_by_its_age_and_a_slower_one_replaces() {
        let balancer = balancer(2);
        let start = Instant::now();
        balancer.observe(0, Duration::from_millis(100), start);
        assert_eq!(balancer.estimate(0), Duration::from_millis(100));
        // A sample one decay later weighs 1 - 1/e.
        let later = start + DECAY;
        balancer.observe(0, Duration::from_millis(10), later);
        let expected = 100.0 / std::f64::consts::E + 10.0 * (1.0 - 1.0 / std::f64::consts::E);
        let got = balancer.estimate(0).as_secs_f64() * 1e3;
        assert!((got - expected).abs() < 1e-3, "{got} ms, not {expected} ms");
        balancer.observe(0, Duration::from_millis(500), later);
        assert_eq!(balancer.estimate(0), Duration::from_millis(500));
    }

    fn with_accrual(n: u16, max_failures: u32) -> Arc<Balancer> {
        let accrual = FailureAccrual::new(
            std::num::NonZeroU32::new(max_failures).unwrap(),
            Duration::from_secs(1),
            Duration::from_secs(60),
            0.0,
        )
        .unwrap();
        Arc::new(balancer(n).with_accrual(Some(accrual)))
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_that_keeps_failing_is_taken_out_then_probed() {
        let balancer = with_accrual(3, 2);
        // Endpoint 0 answers 503 to everything; the others succeed.
        let mut to_failing = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(3_500) {
            let (authority, pending) = balancer.pick().unwrap();
            let i = index(&balancer, authority);
            if i == 0 {
                to_failing.push(start.elapsed().as_millis());
            }
            tokio::time::advance(Duration::from_millis(10)).await;
            pending.unwrap().answered(i != 0);
        }
        // Two failures take it out for 1 s; its probe fails and it is out
        // for 2 s; the next probe fails too.
        assert_eq!(to_failing.len(), 4, "{to_failing:?}");
        let gaps: Vec<u128> = to_failing.windows(2).map(|w| w[1] - w[0]).collect();
        // The gaps after the second failure: the penalty, plus the 10 ms
        // the failure took to come back, plus the few requests it takes
        // for the draws to reach the endpoint again (each misses it with
        // a chance of 4 in 9: 20 misses in a row, 200 ms, is one chance
        // in ten million).
        assert!((1_010..1_210).contains(&gaps[1]), "{to_failing:?}");
        assert!((2_010..2_210).contains(&gaps[2]), "{to_failing:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_endpoint_out_nothing_is_picked_until_a_probe() {
        let balancer = with_accrual(1, 1);
        let (_, pending) = balancer.pick().unwrap();
        pending.expect("accrual counts even one endpoint").failed();
        assert!(balancer.pick().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, probe) = balancer.pick().expect("the probe");
        assert!(balancer.pick().is_none(), "one probe at a time");
        probe.unwrap().answered(true);
        assert!(balancer.pick().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_caller_went_away_lets_the_next_request_probe() {
        let balancer = with_accrual(1, 1);
        let (_, pending) = balancer.pick().unwrap();
        pending.unwrap().failed();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, probe) = balancer.pick().expect("the probe");
        assert!(balancer.pick().is_none());
        drop(probe);
        let (_, probe) = balancer.pick().expect("another probe");
        probe.unwrap().answered(true);
        assert!(balancer.pick().is_some());
    }

    #[test]
    fn one_endpoint_is_neither_drawn_nor_measured() {
        let balancer = balancer(1);
        let (authority, pending) = balancer.pick().unwrap();
        assert_eq!(authority.as_str(), "10.0.0.1:80");
        assert!(pending.is_none());
        assert!(Arc::new(Balancer::new([], None)).pick().is_none());
    }
}
