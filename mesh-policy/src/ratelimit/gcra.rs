//! One limit's state: the generic cell rate algorithm (GCRA) on one
//! atomic.
//!
//! GCRA keeps a single number per limit, the *theoretical arrival time*
//! (TAT): when the limit would be back to empty if requests kept coming at
//! exactly the rate. A request is admitted when the TAT, pushed on by one
//! request's share of a second, is at most one burst window ahead of now.
//! It behaves as a token bucket that refills continuously, but needs no
//! separate refill step, so a compare-and-swap is the whole critical
//! section. This is the algorithm of the `governor` crate, which
//! linkerd2-proxy's `LocalRateLimit` uses with `Quota::per_second(rps)`:
//! a burst of one second's worth of requests, then one request per
//! `1/rps` seconds.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A rate, in the form GCRA uses: the time one request takes up, and the
/// burst window, both in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    requests_per_second: NonZeroU32,
    /// `1/rps` seconds, at least 1 ns.
    interval: u64,
    /// `rps` intervals: about one second, so a burst of exactly `rps`.
    window: u64,
}

impl Rate {
    pub(crate) fn per_second(requests_per_second: NonZeroU32) -> Self {
        let rps = u64::from(requests_per_second.get());
        let interval = (NANOS_PER_SEC / rps).max(1);
        Self {
            requests_per_second,
            interval,
            window: interval.saturating_mul(rps),
        }
    }

    pub(crate) fn requests_per_second(self) -> u32 {
        self.requests_per_second.get()
    }

    /// The TAT after admitting a request at `now`, or `None` when the
    /// request is over the limit. A TAT at or before `now` is a full
    /// burst: the state of a limit that has never been used.
    #[inline]
    pub(crate) fn admit(self, tat: u64, now: u64) -> Option<u64> {
        let next = tat.max(now).saturating_add(self.interval);
        (next - now <= self.window).then_some(next)
    }
}

/// A limit shared by every request it applies to, without a lock.
#[derive(Debug)]
pub(crate) struct Gcra {
    rate: Rate,
    tat: AtomicU64,
}

impl Gcra {
    pub(crate) fn new(rate: Rate) -> Self {
        Self {
            rate,
            tat: AtomicU64::new(0),
        }
    }

    pub(crate) fn rate(&self) -> Rate {
        self.rate
    }

    /// Admits a request at `now` (nanoseconds since the limiter began), or
    /// says it is over the limit. A refused request takes up nothing.
    #[inline]
    pub(crate) fn check(&self, now: u64) -> bool {
        // Relaxed is enough: the TAT is the only shared datum, and
        // compare-and-swap orders the updates of one location.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let Some(next) = self.rate.admit(tat, now) else {
                return false;
            };
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}
