//! One endpoint of a balancer, and the latency estimate its cost starts
//! from.
//!
//! # Why
//!
//! The balancer compares two endpoints by how long each looks likely to
//! take, so each needs a figure that follows a slowdown at once, forgets
//! it once it is over, and costs a request next to nothing to keep. A
//! mean of every sample follows a slowdown too late; the last sample alone
//! swings with every request. And an endpoint the balancer has learned to
//! avoid gets no new samples: without something else to bring its figure
//! down, it would be avoided for good.
//!
//! # How
//!
//! Each endpoint keeps a peak-EWMA estimate of its round-trip time to the
//! response's first body frame (or its end, when no frame comes), as
//! Linkerd's proxy does (linkerd2-proxy `hyper-balance`,
//! `PendingUntilFirstData`): a server that sends its head at once and its
//! data late is as slow as the data.
//!
//! The estimate decays toward zero over [`DECAY`] (Linkerd's 10 s), so
//! an endpoint that was avoided is tried again. A new endpoint starts at
//! [`DEFAULT_RTT`] (Linkerd's 30 ms), which decays from when it joined
//! like any estimate: one that has not answered yet is drawn once it
//! reads below the others. A sample meets the estimate as the balancer
//! last read it, when it picked the endpoint for the sample's request
//! (or as a sample that came since set it). Slower than that, it
//! replaces it at once (the "peak"); faster, it is averaged in, weighing
//! the time since that read: a request answered in 5 ms moves the
//! estimate by what 5 ms of a 10 s decay weigh.
//!
//! This is the rule of tower's `PeakEwma` (`tower::load::peak_ewma`,
//! `RttEstimate::update` and `decay`), which linkerd2-proxy balances
//! with, as Finagle's before it: there every read of an endpoint's load
//! decays the estimate and stores it with the time of the read, and a
//! sample is weighed against what was stored. Here picking only reads;
//! a store per candidate would cost every request and could overwrite a
//! sample that lands at the same moment. The sample decays the estimate
//! to its request's pick itself. (Other picks that read the endpoint
//! while the request was out are not known here, so a sample may weigh
//! a little more than it would in tower.)
//!
//! Why the time since the read, not since the last sample: the estimate
//! decays as though nothing were waited for, and a sample gives back the
//! time its request was. Weighing the whole gap since the last sample
//! counts idle time as the sample's: 20 s after a 1 s failure penalty
//! the balancer reads 135 ms, and a 200 ms answer would leave 308 ms, a
//! 100 ms one 221 ms, above both the sample and what was read. Decaying
//! first and then weighing the whole gap decays the old estimate twice:
//! an endpoint that answers would read below one sent nothing, and of
//! two it would take every request sent one after another. With the
//! rule here an estimate never reads below its start decayed, so an
//! endpoint that answers is never preferred to an untouched one that
//! joined with it; of two that answer alike, the one waited on more
//! lately looks dearer. An endpoint kept busy reads its latency; one
//! sent a request now and then reads less, by the share of the time it
//! is waited on.
//!
//! A request that fails before any response (the endpoint refused the
//! connection, say) counts as a sample of [`FAILURE_PENALTY`]: a failure
//! is fast, and without the penalty a dead endpoint would look like the
//! fastest of all. One that failed after waiting longer (reset after
//! half a minute, say) counts its wait.
//!
//! The estimate and the time of its last sample are two atomics, updated
//! without locks; samples that race may overwrite each other, which costs
//! the estimate one sample. Times are nanoseconds since the balancer's
//! epoch, as `f64` for the arithmetic.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use http::uri::Authority;

use super::super::accrual::Health;
use super::reconnect::{Reconnect, Shared};

/// The estimate of an endpoint that has not answered yet: Linkerd's.
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// How fast old samples lose their weight: Linkerd's.
pub const DECAY: Duration = Duration::from_secs(10);

/// The least sample a request that failed before any response counts
/// as.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// One endpoint: where it is, and what picking reads of it. Shared by the
/// balancers before and after an update that kept it.
#[derive(Debug)]
pub(super) struct Endpoint {
    pub(super) addr: SocketAddr,
    pub(super) authority: Authority,
    /// The round-trip estimate, in nanoseconds, as `f64` bits.
    pub(super) rtt: AtomicU64,
    /// When `rtt` was last set, in nanoseconds since the epoch.
    pub(super) stamp: AtomicU64,
    /// Requests (or connections) in flight to it.
    pub(super) pending: AtomicU32,
    pub(super) health: Health,
    /// Its connect backoff ([`reconnect`](super::reconnect)).
    pub(super) reconnect: Reconnect,
    /// What it shares with the other endpoints of its balancer.
    pub(super) shared: Arc<Shared>,
    /// Whether its last connect failed and no response has come since:
    /// a streak of failed connects is warned of once
    /// ([`connect_failed`](Self::connect_failed)).
    unreachable: AtomicBool,
}

impl Endpoint {
    /// An endpoint that has not answered yet, at the default estimate
    /// as of `now` (nanoseconds since the epoch).
    pub(super) fn fresh(addr: SocketAddr, now: u64, shared: &Arc<Shared>) -> Option<Arc<Self>> {
        let authority = Authority::try_from(addr.to_string()).ok()?;
        Some(Arc::new(Self {
            addr,
            authority,
            rtt: AtomicU64::new(nanos(DEFAULT_RTT).to_bits()),
            stamp: AtomicU64::new(now),
            pending: AtomicU32::new(0),
            health: Health::default(),
            reconnect: Reconnect::default(),
            shared: shared.clone(),
            unreachable: AtomicBool::new(false),
        }))
    }

    /// A connection to it could not be made. Whether this begins a
    /// streak of them: the first since it last answered, or since it was
    /// added. Of requests that fail together, one begins it.
    pub(super) fn connect_failed(&self) -> bool {
        !self.unreachable.swap(true, Ordering::Relaxed)
    }

    /// It answered: a streak of failed connects, if any, is over. Every
    /// response pays one load; a store only the first after a streak.
    pub(super) fn answered(&self) {
        if self.unreachable.load(Ordering::Relaxed) {
            self.unreachable.store(false, Ordering::Relaxed);
        }
    }

    /// The estimate, decayed to `now` (nanoseconds since the epoch).
    pub(super) fn estimate_at(&self, now: f64) -> f64 {
        let rtt = f64::from_bits(self.rtt.load(Ordering::Relaxed));
        let stamp = self.stamp.load(Ordering::Relaxed) as f64;
        rtt * weight(now - stamp)
    }

    /// Counts a round trip of `sample` nanoseconds, of a request sent at
    /// `sent` and ended at `now` (nanoseconds since the epoch).
    ///
    /// The sample meets the estimate as the balancer last read it: when
    /// it picked this endpoint for the request, or as a later sample set
    /// it. Slower, it replaces it; faster, it is averaged in, weighing
    /// the time since then. See the [module docs](self) for why.
    pub(super) fn observe(&self, sample: f64, sent: f64, now: f64) {
        let rtt = f64::from_bits(self.rtt.load(Ordering::Relaxed));
        let stamp = self.stamp.load(Ordering::Relaxed) as f64;
        let read = sent.max(stamp).min(now);
        let seen = rtt * weight(read - stamp);
        let next = if sample > seen {
            sample
        } else {
            let old = weight(now - read);
            seen * old + sample * (1.0 - old)
        };
        self.rtt.store(next.to_bits(), Ordering::Relaxed);
        self.stamp.store(now as u64, Ordering::Relaxed);
    }
}

/// How much of a sample `elapsed` nanoseconds old still counts.
fn weight(elapsed: f64) -> f64 {
    (-elapsed.max(0.0) / nanos(DECAY)).exp()
}

/// `d` in nanoseconds, as the estimates count time.
pub(super) fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;

    fn endpoint() -> Arc<Endpoint> {
        let shared = Arc::new(Shared {
            epoch: tokio::time::Instant::now(),
            backoff: super::super::ConnectBackoff::default(),
            gate: crate::proxy::queue::Gate::new(crate::proxy::queue::Queue::default()),
        });
        Endpoint::fresh(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)), 0, &shared).unwrap()
    }

    fn ms(n: f64) -> f64 {
        n * 1e6
    }

    fn secs(n: f64) -> f64 {
        n * 1e9
    }

    /// Counts a request sent at `at` seconds that took `took` ms, and
    /// hands back the estimate the balancer read when it sent it.
    fn answer(endpoint: &Endpoint, at: f64, took: f64) -> f64 {
        let (sent, now) = (secs(at), secs(at) + ms(took));
        let read = endpoint.estimate_at(sent);
        endpoint.observe(ms(took), sent, now);
        read
    }

    #[test]
    fn a_streak_of_failed_connects_begins_once_and_ends_with_an_answer() {
        let endpoint = endpoint();
        endpoint.answered();
        assert!(endpoint.connect_failed());
        assert!(!endpoint.connect_failed());
        assert!(!endpoint.connect_failed());
        endpoint.answered();
        assert!(endpoint.connect_failed());
        assert!(!endpoint.connect_failed());
    }

    #[test]
    fn a_sample_between_the_estimate_read_and_the_one_stored_replaces_it() {
        let endpoint = endpoint();
        // A failure's penalty, then 20 s of nothing: the balancer reads
        // 1 s × e^-2, about 135 ms.
        endpoint.observe(nanos(FAILURE_PENALTY), 0.0, 0.0);
        let read = endpoint.estimate_at(secs(20.0));
        assert!((read - ms(1000.0) * (-2f64).exp()).abs() < 1.0, "{read}");
        // A request sent then takes 200 ms: slower than what was read, it
        // is the new peak, not a blend with the 1 s stored (308 ms).
        answer(&endpoint, 20.0, 200.0);
        let after = endpoint.estimate_at(secs(20.2));
        assert!((after - ms(200.0)).abs() < 1.0, "{} ms", after / 1e6);
    }

    #[test]
    fn a_faster_sample_does_not_raise_the_estimate_read_when_it_was_sent() {
        let endpoint = endpoint();
        endpoint.observe(nanos(FAILURE_PENALTY), 0.0, 0.0);
        for (at, took) in [(20.0, 100.0), (20.5, 50.0), (40.0, 1.0), (40.001, 0.5)] {
            let read = answer(&endpoint, at, took);
            assert!(ms(took) < read, "{took} ms is not faster than {read}");
            let after = endpoint.estimate_at(secs(at) + ms(took));
            // Between the sample and what the balancer read: averaged in,
            // by the time since then (the old rule gave 221 ms for the
            // first, from the 135 ms read).
            assert!(after <= read, "{read} rose to {after} at {at} s");
            assert!(after >= ms(took), "{after} fell below {took} ms at {at} s");
        }
    }

    #[test]
    fn a_sample_weighs_the_time_since_the_estimate_was_last_read_or_set() {
        let e = std::f64::consts::E;
        let endpoint = endpoint();
        endpoint.observe(ms(100.0), 0.0, 0.0);
        // A request sent one decay later, answered in 10 ms: the 100 ms
        // read 100 / e then, and the sample weighs what 10 ms of a decay
        // does.
        let read = answer(&endpoint, DECAY.as_secs_f64(), 10.0);
        assert!((read - ms(100.0) / e).abs() < 1.0, "{read}");
        let weight = (-0.01 / DECAY.as_secs_f64()).exp();
        let expected = read * weight + ms(10.0) * (1.0 - weight);
        let now = nanos(DECAY) + ms(10.0);
        let got = endpoint.estimate_at(now);
        assert!((got - expected).abs() < 1.0, "{got}, not {expected}");
        // Of two requests sent together, the later answer weighs the
        // time since the earlier one, when the estimate was last set.
        let sent = now;
        endpoint.observe(ms(20.0), sent, sent + ms(20.0));
        let set = endpoint.estimate_at(sent + ms(20.0));
        endpoint.observe(ms(5.0), sent, sent + ms(25.0));
        let weight = (-0.005 / DECAY.as_secs_f64()).exp();
        let expected = set * weight + ms(5.0) * (1.0 - weight);
        let got = endpoint.estimate_at(sent + ms(25.0));
        assert!((got - expected).abs() < 1.0, "{got}, not {expected}");
    }

    #[test]
    fn between_samples_the_estimate_decays_and_a_sample_adds_only_its_own_time() {
        // Two endpoints set up together: one answers every 10 ms, in
        // 5 ms; the other is never sent anything. The estimate of the
        // one answering never reads below the other's: each answer adds
        // to the decayed estimate only what its 5 ms of waiting weigh.
        let (busy, idle) = (endpoint(), endpoint());
        for i in 0..2_000 {
            let at = f64::from(i) * 0.01;
            answer(&busy, at, 5.0);
            let now = secs(at) + ms(5.0);
            assert!(busy.estimate_at(now) >= idle.estimate_at(now), "at {at} s");
        }
    }
}
