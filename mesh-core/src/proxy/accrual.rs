//! Failure accrual: taking an endpoint that keeps failing out of the
//! balancer for a while, as Linkerd's circuit breaker does.
//!
//! Latency-aware balancing already steers requests away from an endpoint
//! that is slow or refuses connections, and an endpoint whose HTTP/2
//! connect failed backs off whether or not failure accrual is on
//! ([`reconnect`](super::balance::reconnect)); the request whose connect
//! failed still counts here as a failure. An endpoint that answers quickly
//! with errors (a 503 from an overloaded instance, a 500 from a bad
//! deploy) looks fast, and keeps its share. With failure accrual, an
//! endpoint whose responses fail [`FailureAccrual::max_failures`] times in
//! a row is taken out for a penalty: [`min_penalty`](FailureAccrual::min_penalty)
//! at first, doubling each time it fails again up to
//! [`max_penalty`](FailureAccrual::max_penalty), each stretched by a random
//! share of up to [`jitter`](FailureAccrual::jitter) so that endpoints
//! that failed together do not return together, but never past
//! `max_penalty`: Linkerd's backoff caps its jitter at its maximum
//! (linkerd2-proxy `linkerd/exp-backoff`), so a penalty already at the
//! longest is not stretched, and `max_penalty` bounds how long an endpoint
//! can be out. When a penalty ends, the
//! endpoint is on probation: one request at a time is sent to it, and the
//! first that succeeds puts it back; requests sent before the penalty
//! that end during it count for nothing. A probe holds the probation for
//! at most the longest penalty: one still without its outcome by then (a
//! request the endpoint never answers, or a gRPC stream that lives for
//! hours) lets the next request probe too, else it would keep its
//! endpoint out for longer than failure accrual ever means to, and a
//! service of one endpoint would answer every other request `503` for
//! as long as the stream lasts. While every endpoint is out,
//! requests are not sent to endpoints that fail: they wait for one to be
//! ready (a penalty's end, a probe's success), and when none is within
//! the fail-fast timeout (3 s by default), they are answered with the
//! mesh's 503 (`mesh-error: service in fail-fast`; gRPC `UNAVAILABLE`),
//! and the requests after them are shed (`service unavailable`) until
//! one is, as Linkerd's balancer queue answers them
//! ([`queue`](super::queue)).
//!
//! A failure is a response with a 5xx status, a gRPC answer whose status
//! is a server error (`UNAVAILABLE`, `INTERNAL` and the others
//! mesh-core's classifier counts by default), a response whose body
//! breaks after a good head (the upstream resets the stream, or closes
//! the connection short of the body's length), or a request that got no
//! response at all (none before a timeout above cut it included, when
//! that layer says so with a [`TimedOut`](super::TimedOut)), unless the
//! endpoint turned it away unprocessed by its own word (an HTTP/2 stream
//! it refused, or one above a graceful
//! `GOAWAY`): a server shedding load or restarting is not failing, and
//! the balancer's latency estimate already steers requests away from it.
//! A gRPC status is read where the server put it: in the head of a
//! trailers-only answer, or else in the trailers, so a call that sends
//! its headers and messages and then fails counts when its body ends, as
//! Linkerd counts gRPC failures. Such a call also fails when its stream
//! ends without a status or the server resets it, or when it stalls until
//! a timeout of the layer above cuts it (the layer says so with a
//! [`TimedOut`](super::TimedOut)), and counts nothing when its caller
//! goes away first (a probe's caller included: the next request probes
//! instead). A gRPC call answered by a `2xx` that is not
//! gRPC (an HTML page: a web server where a gRPC server should be) fails
//! too, as its client reads `UNKNOWN`.
//!
//! So a response is judged when its body ends, as Linkerd classifies a
//! response at the end of its stream (linkerd2-proxy
//! `linkerd/http/classify/src/channel.rs`), and a good head followed by a
//! body that breaks counts as one failure, not as a success then a
//! failure, which would reset the run of failures each time; a failure at
//! the head is final and counts at once. A response whose caller drops
//! it before its end is what its head said; a gRPC call whose status was
//! still to come counts nothing (see [`ResponseBody`](super::ResponseBody)
//! for each ending). The balancer's latency sample and load end at the
//! body's first frame, also as in Linkerd. So a probe holds the probation
//! until its body ends, as a probe does in Linkerd: a probe that is a
//! long gRPC stream keeps its endpoint from any other request until the
//! stream ends, up to the longest penalty. The defaults are Linkerd's
//! (`balancer.linkerd.io/failure-accrual-consecutive-*`): 7 failures, a
//! penalty from 1 s to 60 s, jitter 0.5. Like Linkerd's, it is off unless
//! asked for.
//!
//! The connect backoff ([`reconnect`](super::balance::reconnect)) takes
//! an endpoint out and lets it back the same way: out until a time, then
//! one probe at a time, a probe held too long letting the next probe. So
//! both keep that state in a `Probation`, and draw their time outs from
//! the same doubling, jittered `backoff`, rather than each keeping a
//! copy that could drift from the other. Each keeps its own rules: here,
//! failures counted in a row and an outcome decided at a body's end;
//! there, a connect's failure or success.
//!
//! Which endpoints are in, out or on probation can be read at any time
//! (a metrics scrape, say) without a cost to requests: see
//! [`EndpointState`] and [`balance::gauges`](super::balance::gauges).

use std::{
    fmt,
    num::NonZeroU32,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::Duration,
};

use super::balance::EndpointState;

/// When an endpoint is taken out, and for how long. See the
/// [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureAccrual {
    max_failures: NonZeroU32,
    min_penalty: Duration,
    max_penalty: Duration,
    jitter: f64,
}

impl Default for FailureAccrual {
    /// Linkerd's: 7 failures in a row; 1 s doubling to 60 s; jitter 0.5.
    fn default() -> Self {
        Self {
            max_failures: NonZeroU32::new(7).unwrap_or(NonZeroU32::MIN),
            min_penalty: Duration::from_secs(1),
            max_penalty: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

/// A failure accrual setting out of its range.
#[derive(Clone, Debug, PartialEq)]
pub enum InvalidFailureAccrual {
    /// The first penalty is longer than the longest.
    Penalties {
        /// The first penalty.
        min: Duration,
        /// The longest.
        max: Duration,
    },
    /// The longest penalty is zero.
    ZeroPenalty,
    /// The jitter is below 0 or above 100 (or not a number).
    Jitter(f64),
}

impl FailureAccrual {
    /// Takes an endpoint out after `max_failures` failures in a row, for
    /// `min_penalty` doubling to `max_penalty`, each stretched by up to
    /// `jitter` of itself but never past `max_penalty`.
    ///
    /// # Errors
    ///
    /// When `min_penalty` is longer than `max_penalty`, `max_penalty` is
    /// zero, or `jitter` is outside 0 to 100 (Linkerd's ranges).
    pub fn new(
        max_failures: NonZeroU32,
        min_penalty: Duration,
        max_penalty: Duration,
        jitter: f64,
    ) -> Result<Self, InvalidFailureAccrual> {
        if min_penalty > max_penalty {
            return Err(InvalidFailureAccrual::Penalties {
                min: min_penalty,
                max: max_penalty,
            });
        }
        if max_penalty.is_zero() {
            return Err(InvalidFailureAccrual::ZeroPenalty);
        }
        if !(0.0..=100.0).contains(&jitter) {
            return Err(InvalidFailureAccrual::Jitter(jitter));
        }
        Ok(Self {
            max_failures,
            min_penalty,
            max_penalty,
            jitter,
        })
    }

    /// Failures in a row that take an endpoint out.
    pub fn max_failures(&self) -> NonZeroU32 {
        self.max_failures
    }

    /// The first penalty.
    pub fn min_penalty(&self) -> Duration {
        self.min_penalty
    }

    /// The longest penalty, jitter included.
    pub fn max_penalty(&self) -> Duration {
        self.max_penalty
    }

    /// The largest share of a penalty added at random.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// How long a probe may hold its endpoint's probation, in nanoseconds:
    /// the longest penalty. See the [module docs](self).
    pub(super) fn probe_hold(&self) -> u64 {
        u64::try_from(self.max_penalty.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The penalty after `served` penalties in a row, jittered (see
    /// [`backoff`]).
    fn penalty(&self, served: u32) -> Duration {
        backoff(self.min_penalty, self.max_penalty, self.jitter, served)
    }
}

/// The time out after `served` in a row, for failure accrual's penalties
/// and the connect backoff alike, both Linkerd's `linkerd/exp-backoff`:
/// `min` doubling up to `max`, stretched by a random share of up to
/// `jitter` of itself, but never past `max`, as Linkerd's backoff caps
/// its jitter at its maximum. A stretch past what a `Duration` holds is
/// capped the same way: `mul_f64` would panic there, on the response
/// path.
pub(super) fn backoff(min: Duration, max: Duration, jitter: f64, served: u32) -> Duration {
    let base = min.saturating_mul(1 << served.min(31)).min(max);
    let room = max.saturating_sub(base);
    if room.is_zero() || jitter == 0.0 {
        return base;
    }
    let stretch = Duration::try_from_secs_f64(base.as_secs_f64() * jitter * fastrand::f64())
        .unwrap_or(Duration::MAX);
    base.saturating_add(stretch.min(room))
}

impl fmt::Display for InvalidFailureAccrual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Penalties { min, max } => write!(
                f,
                "the first penalty {min:?} is longer than the longest {max:?}"
            ),
            Self::ZeroPenalty => f.write_str("the longest penalty must be above zero"),
            Self::Jitter(jitter) => write!(f, "jitter {jitter} is outside 0 to 100"),
        }
    }
}

impl std::error::Error for InvalidFailureAccrual {}

/// One endpoint's failures and penalty. Times are nanoseconds since the
/// balancer's epoch.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Failures in a row since the last success or penalty.
    failures: AtomicU32,
    /// Penalties served in a row.
    served: AtomicU32,
    /// When the penalty ends, and the probe in flight after it.
    probation: Probation,
}

/// Whether a request may go to an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// It is in.
    In,
    /// Its penalty is over and this request is its probe: send it there.
    Probe,
    /// It is out.
    Out,
}

impl Health {
    /// The endpoint's standing at `now`. A `Probe` answer claims the one
    /// probation request, as of `now` (see [`claim`]): the caller must send
    /// it. A probe claimed `hold` or longer ago no longer holds the
    /// probation, and this request probes too.
    pub(super) fn standing(&self, now: u64, hold: u64) -> Standing {
        self.probation.standing(now, hold)
    }

    /// The endpoint's state at `now`, as a reader reports it: unlike
    /// [`standing`](Self::standing), this claims no probe.
    pub(super) fn state(&self, now: u64) -> EndpointState {
        match self.probation.out_until() {
            0 => EndpointState::Ready,
            until if now < until => EndpointState::Failing,
            _ => EndpointState::Probing,
        }
    }

    /// Counts the outcome at `now` of a request, the endpoint's `probe`
    /// or not.
    ///
    /// While the endpoint is out, only its probe decides: requests sent
    /// before the penalty began end during it, and a burst of them failing
    /// together would otherwise double the penalty once each (and free the
    /// probe's claim), or one finishing late would end the penalty early.
    ///
    /// Failures that cross `max_failures` at the same moment (two
    /// responses ending on two threads) serve one penalty between them: the
    /// one that moves the penalty's end first takes the endpoint out, and
    /// the other counts for nothing, as it would a moment later. A success
    /// at the moment a failure takes the endpoint out does not put it back
    /// in: counted before the failure, it would not have, and counted
    /// after, it came while the endpoint was out. While in, a success
    /// writes nothing unless failures are being counted, so the common
    /// response writes no state that every thread shares.
    pub(super) fn record(&self, accrual: &FailureAccrual, success: bool, probe: bool, now: u64) {
        let until = self.probation.out_until();
        let out = until != 0;
        if out && !probe {
            return;
        }
        if success {
            if out {
                // The probe's: the endpoint is back in.
                self.failures.store(0, Ordering::Relaxed);
                self.served.store(0, Ordering::Relaxed);
                self.probation.put_back();
            } else if self.failures.load(Ordering::Relaxed) != 0 {
                // In: only the count of failures in a row has anything
                // to reset. Writing `until` here would undo a penalty
                // that a failure on another thread has just started.
                self.failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if out || failures >= accrual.max_failures.get() {
            let served = self.served.load(Ordering::Relaxed);
            let penalty = u64::try_from(accrual.penalty(served).as_nanos()).unwrap_or(u64::MAX);
            self.probation
                .take_out(until, now.saturating_add(penalty), || {
                    self.served.fetch_add(1, Ordering::Relaxed);
                    self.failures.store(0, Ordering::Relaxed);
                });
        }
    }

    /// The probe claimed at `claimed` (its [`claim`]) ended with no
    /// outcome to count (its caller went away first): the next request may
    /// probe instead. A probe that no longer holds the probation (another
    /// claimed it after `hold`) leaves the newer claim alone.
    pub(super) fn release_probe(&self, claimed: u64) {
        self.probation.release(claimed);
    }

    /// When, after `now`, the endpoint may take a request again by time
    /// alone: its penalty's end, or when the probe in flight stops
    /// holding its probation (`hold` after its claim). `None` when it is
    /// in, or when a request may probe it now.
    pub(super) fn next_change(&self, now: u64, hold: u64) -> Option<u64> {
        self.probation.next_change(now, hold)
    }

    /// When the penalty ends, if the endpoint is out.
    #[cfg(test)]
    pub(super) fn until(&self) -> Option<u64> {
        self.probation.until()
    }
}

/// An endpoint out until a time, then let back one probe at a time: the
/// state failure accrual's penalty and the connect backoff
/// ([`reconnect`](super::balance::reconnect)) both keep, each under its
/// own rules for when to take the endpoint out and what puts it back.
/// Times are nanoseconds since the balancer's epoch.
///
/// A probe claimed `hold` or longer ago no longer holds the endpoint, and
/// the next request probes too: one that never ends must not keep its
/// endpoint out for good.
#[derive(Debug, Default)]
pub(super) struct Probation {
    /// When the time out ends; 0 when the endpoint is in.
    until: AtomicU64,
    /// When the probe in flight was claimed (a [`claim`], at least 1); 0
    /// when none is.
    probing: AtomicU64,
}

impl Probation {
    /// When the time out ends; 0 when the endpoint is in.
    pub(super) fn out_until(&self) -> u64 {
        self.until.load(Ordering::Acquire)
    }

    /// The endpoint's standing at `now`. A `Probe` answer claims the one
    /// probe, as of `now` (see [`claim`]): the caller must send it, or
    /// [release](Self::release) it.
    pub(super) fn standing(&self, now: u64, hold: u64) -> Standing {
        let until = self.until.load(Ordering::Acquire);
        if until == 0 {
            return Standing::In;
        }
        if now < until {
            return Standing::Out;
        }
        let claimed = self.probing.load(Ordering::Acquire);
        if claimed != 0 && now.saturating_sub(claimed) < hold {
            return Standing::Out;
        }
        let won =
            self.probing
                .compare_exchange(claimed, claim(now), Ordering::AcqRel, Ordering::Acquire);
        if won.is_ok() {
            Standing::Probe
        } else {
            Standing::Out
        }
    }

    /// Whether the probe claimed with the stamp `claimed` still holds the
    /// endpoint.
    pub(super) fn holds(&self, claimed: u64) -> bool {
        self.probing.load(Ordering::Acquire) == claimed
    }

    /// The probe claimed with the stamp `claimed` is given up on: the
    /// next request may probe. A newer claim is left alone.
    pub(super) fn release(&self, claimed: u64) {
        let _ = self
            .probing
            .compare_exchange(claimed, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Takes the endpoint out until `next` (at least 1), if its time out
    /// still ends at `seen` (0: it was in): of two threads that both saw
    /// `seen`, only the first moves it. The winner runs `won`, then frees
    /// the probe. Whether this one won.
    pub(super) fn take_out(&self, seen: u64, next: u64, won: impl FnOnce()) -> bool {
        let moved =
            self.until
                .compare_exchange(seen, next.max(1), Ordering::AcqRel, Ordering::Acquire);
        if moved.is_ok() {
            won();
            self.probing.store(0, Ordering::Release);
        }
        moved.is_ok()
    }

    /// Puts the endpoint back in, its probe's work done.
    pub(super) fn put_back(&self) {
        self.until.store(0, Ordering::Release);
        self.probing.store(0, Ordering::Release);
    }

    /// When, after `now`, a request may be sent by time alone: the time
    /// out's end, or when the probe in flight stops holding it (`hold`
    /// after its claim). `None` when the endpoint is in, or when a
    /// request may probe it now.
    pub(super) fn next_change(&self, now: u64, hold: u64) -> Option<u64> {
        let until = self.until.load(Ordering::Acquire);
        if until == 0 {
            return None;
        }
        if now < until {
            return Some(until);
        }
        let claimed = self.probing.load(Ordering::Acquire);
        (claimed != 0)
            .then(|| claimed.saturating_add(hold))
            .filter(|&at| at > now)
    }

    /// When the time out ends, if the endpoint is out.
    #[cfg(test)]
    pub(super) fn until(&self) -> Option<u64> {
        Some(self.until.load(Ordering::Acquire)).filter(|&u| u != 0)
    }
}

/// The stamp of a probe claimed at `now`: never 0, which means none.
pub(super) fn claim(now: u64) -> u64 {
    now.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// A probe holds its probation for good, as far as these tests go.
    const HOLD: u64 = u64::MAX;

    fn accrual(max_failures: u32, jitter: f64) -> FailureAccrual {
        FailureAccrual::new(
            NonZeroU32::new(max_failures).unwrap(),
            Duration::from_secs(1),
            Duration::from_secs(8),
            jitter,
        )
        .unwrap()
    }

    #[test]
    fn failures_in_a_row_take_an_endpoint_out_and_a_success_resets_the_count() {
        let accrual = accrual(3, 0.0);
        let health = Health::default();
        health.record(&accrual, false, false, 0);
        health.record(&accrual, false, false, 0);
        health.record(&accrual, true, false, 0);
        health.record(&accrual, false, false, 0);
        health.record(&accrual, false, false, 0);
        assert_eq!(health.standing(0, HOLD), Standing::In);
        health.record(&accrual, false, false, 5);
        assert_eq!(health.until(), Some(5 + SECOND));
        assert_eq!(health.standing(SECOND, HOLD), Standing::Out);
    }

    #[test]
    fn after_a_penalty_one_probe_at_a_time_decides() {
        let accrual = accrual(1, 0.0);
        let health = Health::default();
        health.record(&accrual, false, false, 0);
        let end = SECOND;
        assert_eq!(health.standing(end, HOLD), Standing::Probe);
        assert_eq!(
            health.standing(end, HOLD),
            Standing::Out,
            "one probe at a time"
        );
        // The probe fails: a penalty twice as long.
        health.record(&accrual, false, true, end);
        assert_eq!(health.until(), Some(end + 2 * SECOND));
        assert_eq!(health.standing(end + 2 * SECOND, HOLD), Standing::Probe);
        // It succeeds: the endpoint is in, and the next penalty starts
        // from the first again.
        health.record(&accrual, true, true, end + 2 * SECOND);
        assert_eq!(health.standing(end + 2 * SECOND, HOLD), Standing::In);
        health.record(&accrual, false, false, 10 * SECOND);
        assert_eq!(health.until(), Some(11 * SECOND));
    }

    #[test]
    fn the_state_reads_in_out_and_probation_without_claiming_the_probe() {
        let accrual = accrual(1, 0.0);
        let health = Health::default();
        assert_eq!(health.state(0), EndpointState::Ready);
        health.record(&accrual, false, false, 0);
        assert_eq!(health.state(SECOND - 1), EndpointState::Failing);
        assert_eq!(health.state(SECOND), EndpointState::Probing);
        assert_eq!(health.state(SECOND), EndpointState::Probing);
        assert_eq!(
            health.standing(SECOND, HOLD),
            Standing::Probe,
            "still unclaimed"
        );
        assert_eq!(
            health.state(SECOND),
            EndpointState::Probing,
            "while in flight"
        );
        health.record(&accrual, true, true, SECOND);
        assert_eq!(health.state(SECOND), EndpointState::Ready);
    }

    #[test]
    fn a_probe_holds_the_probation_for_the_longest_penalty_at_most() {
        let accrual = accrual(1, 0.0);
        let hold = accrual.probe_hold();
        assert_eq!(hold, 8 * SECOND);
        let health = Health::default();
        health.record(&accrual, false, false, 0);
        assert_eq!(health.standing(SECOND, hold), Standing::Probe);
        assert_eq!(health.standing(SECOND + hold - 1, hold), Standing::Out);
        let second = SECOND + hold;
        assert_eq!(health.standing(second, hold), Standing::Probe);
        assert_eq!(health.standing(second, hold), Standing::Out);
        // The first probe, given up on late, leaves the second's claim.
        health.release_probe(claim(SECOND));
        assert_eq!(health.standing(second, hold), Standing::Out);
        health.release_probe(claim(second));
        assert_eq!(health.standing(second, hold), Standing::Probe);
        // Either probe's outcome decides.
        health.record(&accrual, true, true, second);
        assert_eq!(health.standing(second, hold), Standing::In);
    }

    #[test]
    fn while_out_only_the_probe_counts() {
        let accrual = accrual(1, 0.0);
        let health = Health::default();
        health.record(&accrual, false, false, 0);
        // Requests sent before the penalty end during it.
        health.record(&accrual, false, false, 0);
        health.record(&accrual, true, false, 0);
        assert_eq!(health.until(), Some(SECOND));
        assert_eq!(health.standing(SECOND, HOLD), Standing::Probe);
        health.record(&accrual, false, false, SECOND);
        assert_eq!(
            health.standing(SECOND, HOLD),
            Standing::Out,
            "the probe is out"
        );
        health.record(&accrual, false, true, SECOND);
        assert_eq!(health.until(), Some(3 * SECOND));
    }

    #[test]
    fn failures_that_cross_the_threshold_together_serve_one_penalty() {
        // Two responses that fail at the same moment, on two threads, both
        // see the endpoint in: only one of them takes it out.
        let accrual = accrual(1, 0.0);
        for round in 0..2_000 {
            let health = Health::default();
            let start = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        start.wait();
                        health.record(&accrual, false, false, 0);
                    });
                }
            });
            assert_eq!(health.until(), Some(SECOND), "round {round}: one penalty");
            assert_eq!(health.served.load(Ordering::Relaxed), 1, "round {round}");
        }
    }

    /// Spins until `ready`, letting other threads run now and then, in
    /// case the one it waits for has no core of its own.
    fn spin_until(ready: impl Fn() -> bool) {
        for spins in 1_u32.. {
            if ready() {
                return;
            }
            if spins % 1024 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    #[test]
    fn a_success_at_the_moment_a_failure_takes_the_endpoint_out_does_not_undo_it() {
        // One response succeeds and another fails, on two threads, while
        // the endpoint is in. Whichever is counted first, the failure
        // takes the endpoint out: the success either came before it, or
        // came while the endpoint was out and counts for nothing.
        use std::sync::atomic::AtomicUsize;
        let accrual = accrual(1, 0.0);
        let health = Health::default();
        // Round `n` starts when `go` is `n`; the success is counted when
        // `done` is. Spinning rather than parking keeps both threads on
        // their cores, so that the two records overlap often.
        let (go, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let rounds = 20_000;
        let erased = std::thread::scope(|s| {
            s.spawn(|| {
                for round in 1..=rounds {
                    spin_until(|| go.load(Ordering::Acquire) == round);
                    health.record(&accrual, true, false, 0);
                    done.store(round, Ordering::Release);
                }
            });
            let mut erased = 0;
            for round in 1..=rounds {
                go.store(round, Ordering::Release);
                health.record(&accrual, false, false, 0);
                spin_until(|| done.load(Ordering::Acquire) == round);
                if health.until().is_none() {
                    erased += 1;
                }
                // Back in, as a probe's success puts it.
                health.record(&accrual, true, true, 0);
            }
            erased
        });
        assert_eq!(erased, 0, "penalties erased in {rounds} rounds");
    }

    #[test]
    fn penalties_double_up_to_the_longest_and_jitter_only_stretches_them() {
        let plain = accrual(1, 0.0);
        let penalties: Vec<u64> = (0..6).map(|n| plain.penalty(n).as_secs()).collect();
        assert_eq!(penalties, [1, 2, 4, 8, 8, 8]);
        let jittered = accrual(1, 0.5);
        for _ in 0..100 {
            let penalty = jittered.penalty(1);
            assert!(penalty >= Duration::from_secs(2), "{penalty:?}");
            assert!(penalty <= Duration::from_secs(3), "{penalty:?}");
        }
    }

    #[test]
    fn jitter_never_stretches_a_penalty_past_the_longest() {
        // As Linkerd's backoff: the jitter fills at most the room between
        // a penalty and the longest, so one at the longest has none.
        let wide = accrual(1, 100.0);
        for _ in 0..200 {
            let first = wide.penalty(0);
            assert!(first >= Duration::from_secs(1), "{first:?}");
            assert!(first <= Duration::from_secs(8), "{first:?}");
            assert_eq!(wide.penalty(3), Duration::from_secs(8));
            assert_eq!(wide.penalty(40), Duration::from_secs(8));
        }
        let health = Health::default();
        health.record(&wide, false, false, 0);
        assert!(health.until().is_some_and(|until| until <= 8 * SECOND));
    }

    #[test]
    fn a_penalty_jitter_stretches_past_a_duration_is_the_longest() {
        let accrual =
            FailureAccrual::new(NonZeroU32::MIN, Duration::MAX, Duration::MAX, 100.0).unwrap();
        let health = Health::default();
        health.record(&accrual, false, false, 5);
        assert_eq!(health.until(), Some(u64::MAX));
        assert_eq!(accrual.penalty(0), Duration::MAX);
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let one = NonZeroU32::MIN;
        let s = Duration::from_secs;
        assert_eq!(
            FailureAccrual::new(one, s(10), s(1), 0.5)
                .unwrap_err()
                .to_string(),
            "the first penalty 10s is longer than the longest 1s"
        );
        assert_eq!(
            FailureAccrual::new(one, s(0), s(0), 0.5).unwrap_err(),
            InvalidFailureAccrual::ZeroPenalty
        );
        assert!(FailureAccrual::new(one, s(1), s(2), -0.1).is_err());
        assert!(FailureAccrual::new(one, s(1), s(2), f64::NAN).is_err());
        assert_eq!(FailureAccrual::default().max_failures().get(), 7);
    }
}
