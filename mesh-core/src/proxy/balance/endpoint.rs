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
//! data late is as slow as the data. A sample slower than the
//! estimate replaces it at once (the "peak"); a faster one is averaged
//! in, weighted by how long ago the last sample came, over [`DECAY`]
//! (Linkerd's 10 s). Between samples the estimate decays toward zero, so
//! an endpoint that was avoided is tried again. A new endpoint starts at
//! [`DEFAULT_RTT`] (Linkerd's 30 ms).
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
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use http::uri::Authority;

use super::super::accrual::Health;

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
}

impl Endpoint {
    /// An endpoint that has not answered yet, at the default estimate
    /// as of `now` (nanoseconds since the epoch).
    pub(super) fn fresh(addr: SocketAddr, now: u64) -> Option<Arc<Self>> {
        let authority = Authority::try_from(addr.to_string()).ok()?;
        Some(Arc::new(Self {
            addr,
            authority,
            rtt: AtomicU64::new(nanos(DEFAULT_RTT).to_bits()),
            stamp: AtomicU64::new(now),
            pending: AtomicU32::new(0),
            health: Health::default(),
        }))
    }

    /// The estimate, decayed to `now` (nanoseconds since the epoch).
    pub(super) fn estimate_at(&self, now: f64) -> f64 {
        let rtt = f64::from_bits(self.rtt.load(Ordering::Relaxed));
        let stamp = self.stamp.load(Ordering::Relaxed) as f64;
        rtt * weight(now - stamp)
    }

    /// Counts a round trip of `sample` nanoseconds, ended at `now`
    /// (nanoseconds since the epoch).
    pub(super) fn observe(&self, sample: f64, now: f64) {
        let rtt = f64::from_bits(self.rtt.load(Ordering::Relaxed));
        let stamp = self.stamp.load(Ordering::Relaxed) as f64;
        let next = if sample > rtt {
            sample
        } else {
            let old = weight(now - stamp);
            rtt * old + sample * (1.0 - old)
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
