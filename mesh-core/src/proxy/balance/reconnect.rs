//! An endpoint whose HTTP/2 connect failed backs off before it is tried
//! again, as Linkerd's proxy reconnects.
//!
//! # Why
//!
//! Linkerd's proxy connects an HTTP/2 endpoint (a meshed peer its
//! HTTP/1 requests travel to over HTTP/2 included) before the endpoint
//! counts as ready, and reconnects one whose connection failed after a
//! backoff (linkerd2-proxy `linkerd/proxy/http/src/client.rs`,
//! `linkerd/reconnect`): while it backs off the endpoint is `pending`, no
//! request is sent to it, and a service whose every endpoint is pending
//! for the fail-fast timeout fails fast. Without that, a dead peer takes
//! its share of requests for as long as it is in the set, each answered
//! `502`, and a traffic split never sees its backend down. A plain
//! HTTP/1 endpoint is connected per request there, and a refused connect
//! fails only that request: it does not back off.
//!
//! # How
//!
//! Here every request connects through the client's pool, so a connect
//! that fails is seen as a request's failure. When a request sent as
//! HTTP/2 (natively, or upgraded by [`orig_proto`](crate::proxy::orig_proto))
//! fails to connect (refused, unreachable, timed out, a TLS handshake
//! that failed), its endpoint is taken out for a backoff: [`ConnectBackoff::min`]
//! at first, doubling with each failed reconnect up to
//! [`ConnectBackoff::max`], stretched by a random share of up to
//! [`ConnectBackoff::jitter`] but never past the longest, as Linkerd's
//! `linkerd/exp-backoff`. That request is still answered `502`. While the
//! backoff runs, the endpoint is not drawn and reads as
//! [`Pending`](super::EndpointState::Pending). When it ends, the next
//! request drawn to it is its probe, one at a time, and connects: its
//! connection made (as hyper-util's client reports it, before the request
//! is sent on it), or else a response head or any failure other than a
//! connect's (a connection was made for it to happen on), puts the
//! endpoint back and starts the next backoff from the shortest again; a
//! failed connect doubles it. The endpoint is back as soon as the
//! connection is made, as Linkerd's is once it reconnects: an upstream
//! that holds the probe's response (a long poll) does not keep it
//! pending, nor the requests waiting for it until fail-fast. A probe
//! given up on before either, with no connect to its endpoint under way,
//! lets the next request probe, as does one that holds the probe for
//! longer than the longest backoff.
//!
//! # A connect its request gave up on
//!
//! hyper-util's pool makes a request's connect part of the request's
//! future: a request given up on before its connect ends (a route or
//! per-try timeout cut it, its caller went away) would drop the connect
//! with it, and nothing would be learnt. An endpoint whose connects never
//! end in time (its SYNs dropped: each ends at the 1 s connect timeout)
//! behind a route timeout shorter than that would never back off, and
//! every request drawn to it would time out, for as long as it is in the
//! set. Linkerd's proxy connects apart from requests (`linkerd/reconnect`
//! connects as its service is made ready, and a request only waits for
//! that), so no request's deadline cuts a connect there.
//!
//! So the client made for an endpoint
//! ([`ForEndpoint::for_endpoint_reporting`](crate::client::ForEndpoint::for_endpoint_reporting))
//! runs each HTTP/2 connect (TCP, then the connector's TLS, each bounded
//! by its own timeout, as before) as a task of its own, which the request
//! waits for. Given up on, the connect still ends, and counts as one its
//! request saw: a failure backs the endpoint off, and a success of an
//! endpoint not backing off changes nothing. A connect probe given up on
//! while a connect to its endpoint is under way is left for that connect
//! (the first such to end) to settle: its failure backs the endpoint off
//! for twice as long, its success puts it back, as the probe's own would
//! have. A connect's task, cancelled before it ends (at a runtime's
//! shutdown, which does not wait for it), frees the probe.
//!
//! This costs a task and a one-shot channel per connect, not per request:
//! a request served by a pooled connection starts no connect, and one
//! that waits out its connect pays only for that connect's task. The
//! connection a connect given up on makes is closed. hyper-util's pool
//! takes a connection only from the connect future that one of its
//! requests started (and finishes that future in the background when
//! another connection served the request first, but drops it with a
//! request dropped whole): that future is gone with its request. Keeping
//! the connection aside for the next request would hand out one made
//! before a credential rotation that retires the pooled ones. Only HTTP/2
//! connects are run so, as only they back an endpoint off: a plain
//! HTTP/1 connect given up on is dropped with its request, as before.
//!
//! This is a state of its own, beside failure accrual's
//! ([`accrual`](crate::proxy::accrual)): a connect is decided when its
//! connection is made, failure accrual's outcome at the body's end, and an
//! endpoint is drawn only when both let it. Failure accrual still counts
//! the request whose connect failed, as it did. What the two do alike
//! they do with the same code, so that a fix to one is a fix to both:
//! out until a time, then one probe at a time, a probe held too long
//! freeing the next (`accrual::Probation`), and the time out doubling
//! with jitter (`accrual::backoff`). What takes an endpoint out and what
//! puts it back stay here: a failed connect, and the probe's connect.
//!
//! On the path of a request whose endpoint is not backing off, this
//! costs one atomic load of the backoff of each endpoint drawn for it
//! (with one endpoint, that one's), and a test of a field of its own
//! when its response head comes: only a probe writes anything, and only
//! a probe allocates (what waits for its connection). A connect adds its
//! task, and two atomic writes to count it under way.

use std::{
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use super::Picked;
use crate::{
    error::BoxError,
    proxy::{
        accrual::{Probation, Standing, backoff, claim},
        forward::failure::Chain,
        queue::Gate,
    },
};

/// The first backoff of an endpoint whose connect failed: Linkerd's
/// outbound default (`DEFAULT_OUTBOUND_CONNECT_BACKOFF`, linkerd2-proxy
/// `linkerd/app/src/env.rs`).
pub const DEFAULT_CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// The longest backoff of an endpoint whose connects keep failing:
/// Linkerd's outbound default.
pub const DEFAULT_CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The largest share of a backoff added at random, so that endpoints
/// that failed together are not all tried again together: Linkerd's
/// outbound default.
pub const DEFAULT_CONNECT_BACKOFF_JITTER: f64 = 0.1;

/// How long an endpoint whose HTTP/2 connect failed is left before it is
/// tried again. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnectBackoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

impl Default for ConnectBackoff {
    /// Linkerd's: 100 ms doubling to 60 s, jitter 0.1.
    fn default() -> Self {
        Self {
            min: DEFAULT_CONNECT_BACKOFF_MIN,
            max: DEFAULT_CONNECT_BACKOFF_MAX,
            jitter: DEFAULT_CONNECT_BACKOFF_JITTER,
        }
    }
}

/// A connect backoff setting out of its range.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum InvalidConnectBackoff {
    /// The first backoff is longer than the longest.
    Backoffs {
        /// The first backoff.
        min: Duration,
        /// The longest.
        max: Duration,
    },
    /// The longest backoff is zero.
    ZeroBackoff,
    /// The jitter is below 0 or above 100 (or not a number).
    Jitter(f64),
}

impl fmt::Display for InvalidConnectBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backoffs { min, max } => write!(
                f,
                "connect backoff: the first backoff {min:?} is longer than the longest {max:?}"
            ),
            Self::ZeroBackoff => f.write_str("connect backoff: the longest must be above zero"),
            Self::Jitter(jitter) => {
                write!(f, "connect backoff: jitter {jitter} is outside 0 to 100")
            }
        }
    }
}

impl std::error::Error for InvalidConnectBackoff {}

impl ConnectBackoff {
    /// Backs off for `min` doubling to `max`, each stretched by up to
    /// `jitter` of itself but never past `max`.
    ///
    /// # Errors
    ///
    /// When `min` is longer than `max`, `max` is zero, or `jitter` is
    /// outside 0 to 100 (Linkerd's ranges).
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Result<Self, InvalidConnectBackoff> {
        if min > max {
            return Err(InvalidConnectBackoff::Backoffs { min, max });
        }
        if max.is_zero() {
            return Err(InvalidConnectBackoff::ZeroBackoff);
        }
        if !(0.0..=100.0).contains(&jitter) {
            return Err(InvalidConnectBackoff::Jitter(jitter));
        }
        Ok(Self { min, max, jitter })
    }

    /// The first backoff.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The longest backoff, jitter included.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The largest share of a backoff added at random.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The backoff after `served` in a row, jittered but never past the
    /// longest (see [`backoff`]).
    fn backoff(&self, served: u32) -> Duration {
        backoff(self.min, self.max, self.jitter, served)
    }

    /// How long a probe may hold its endpoint, in nanoseconds: the
    /// longest backoff.
    pub(super) fn probe_hold(&self) -> u64 {
        u64::try_from(self.max.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What every endpoint of a balancer (and of the balancers an update
/// builds from it) shares, for a request that holds only its endpoint to
/// back it off: when times count from, how long to back off, and where
/// requests wait for an endpoint.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) epoch: Instant,
    pub(super) backoff: ConnectBackoff,
    pub(super) gate: Arc<Gate>,
}

impl Shared {
    /// Nanoseconds from the epoch to now.
    pub(super) fn now(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One endpoint's connect backoff. Times are nanoseconds since the
/// balancer's epoch.
#[derive(Debug, Default)]
pub(super) struct Reconnect {
    /// Backoffs in a row, since the last connect that succeeded.
    served: AtomicU32,
    /// When the backoff ends, and the probe in flight after it.
    probation: Probation,
    /// Connects under way that end whether or not their request waits
    /// for them ([`EndpointConnects`]).
    connecting: AtomicU32,
    /// The claim of a connect probe whose request was given up on while
    /// such a connect was under way, for the first of them to end to
    /// settle; 0 when none is left.
    parked: AtomicU64,
}

impl Reconnect {
    /// Whether the endpoint is not backing off: the one load a request
    /// to a healthy endpoint pays.
    pub(super) fn is_clear(&self) -> bool {
        self.probation.out_until() == 0
    }

    /// Whether the endpoint backs off, or is past its backoff with its
    /// connect not yet known to succeed: `Pending`, for a reader.
    pub(super) fn is_pending(&self) -> bool {
        !self.is_clear()
    }

    /// Whether a request may be sent at `now` without claiming anything:
    /// not backing off, or past the backoff with the probe free.
    pub(super) fn may_take(&self, now: u64, hold: u64) -> bool {
        self.next_change(now, hold).is_none()
    }

    /// The endpoint's standing at `now`; a `Probe` claims the probe, as
    /// of `now`, and the caller must send it (or [release](Self::release)
    /// it).
    pub(super) fn standing(&self, now: u64, hold: u64) -> Standing {
        self.probation.standing(now, hold)
    }

    /// The probe claimed at `claimed` ended with no connect known either
    /// way: the next request may probe. A newer claim is left alone.
    pub(super) fn release(&self, claimed: u64) {
        self.probation.release(claim(claimed));
    }

    /// A connect failed at `now`, for the probe claimed at `probe` or for
    /// another request. While the endpoint backs off, only its probe
    /// counts: requests sent before the backoff fail during it, and would
    /// otherwise double it once each. Whether this started (or lengthened)
    /// a backoff.
    pub(super) fn failed(&self, backoff: &ConnectBackoff, probe: Option<u64>, now: u64) -> bool {
        let until = self.probation.out_until();
        if until != 0 && probe.is_none_or(|claimed| !self.probation.holds(claim(claimed))) {
            return false;
        }
        let served = self.served.load(Ordering::Relaxed);
        let wait = u64::try_from(backoff.backoff(served).as_nanos()).unwrap_or(u64::MAX);
        self.probation
            .take_out(until, now.saturating_add(wait), || {
                self.served.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// A connect succeeded, that of the probe claimed at `probe` or of
    /// another request. Only the probe's puts the endpoint back: one sent
    /// before the backoff may succeed on a connection made before the
    /// failure. Whether it put it back.
    pub(super) fn connected(&self, probe: Option<u64>) -> bool {
        let Some(claimed) = probe else {
            return false;
        };
        if self.probation.out_until() == 0 || !self.probation.holds(claim(claimed)) {
            return false;
        }
        self.served.store(0, Ordering::Relaxed);
        self.probation.put_back();
        true
    }

    /// When, after `now`, a request may be sent by time alone: the
    /// backoff's end, or when the probe in flight stops holding it.
    /// `None` when one may be now.
    pub(super) fn next_change(&self, now: u64, hold: u64) -> Option<u64> {
        self.probation.next_change(now, hold)
    }

    /// The request that holds the connect probe claimed at `claimed` was
    /// given up on before its connect was known. While a connect to the
    /// endpoint is under way that ends on its own, the claim is left for
    /// it to settle ([`connect_ended`](Self::connect_ended)); with none,
    /// the probe is released for the next request. Whether it was
    /// released.
    ///
    /// Parked first and counted after, as a connect ending counts first
    /// and takes after: whichever order the two run in, a parked claim
    /// is either taken by a connect that ends or released here.
    pub(super) fn abandon(&self, claimed: u64) -> bool {
        self.parked.store(claimed, Ordering::SeqCst);
        if self.connecting.load(Ordering::SeqCst) != 0 {
            return false;
        }
        let unparked =
            self.parked
                .compare_exchange(claimed, 0, Ordering::SeqCst, Ordering::Relaxed);
        if unparked.is_ok() {
            self.release(claimed);
        }
        unparked.is_ok()
    }

    /// A connect that ends on its own started.
    fn connect_started(&self) {
        self.connecting.fetch_add(1, Ordering::SeqCst);
    }

    /// A connect that ends on its own ended: the claim of a probe given up
    /// on meanwhile, if one was left, for its outcome to settle.
    fn connect_ended(&self) -> Option<u64> {
        self.connecting.fetch_sub(1, Ordering::SeqCst);
        Some(self.parked.swap(0, Ordering::SeqCst)).filter(|&c| c != 0)
    }

    /// When the backoff ends, if there is one.
    #[cfg(test)]
    pub(super) fn until(&self) -> Option<u64> {
        self.probation.until()
    }
}

/// One endpoint of a balancer, for the client made for it
/// ([`ForEndpoint::for_endpoint_reporting`](crate::client::ForEndpoint::for_endpoint_reporting))
/// to report the HTTP/2 connects it finishes after their requests gave
/// up on them, which back the endpoint off as any failed connect does
/// (see the [module docs](self)).
///
/// A clone is a reference count. It keeps the endpoint's backoff alive,
/// not its balancer.
#[derive(Clone, Debug)]
pub struct EndpointConnects(Picked);

impl EndpointConnects {
    pub(super) fn new(endpoint: Picked) -> Self {
        Self(endpoint)
    }

    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Whether `other` is this very endpoint, its state shared, not only
    /// one at the same address.
    pub(crate) fn is(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0.0, &other.0.0)
    }

    /// A connect to the endpoint starts, to end whether or not its request
    /// waits for it: what it learns is reported through the
    /// [`ConnectUnderWay`].
    pub(crate) fn start(&self) -> ConnectUnderWay {
        self.0.0.reconnect.connect_started();
        ConnectUnderWay(Some(self.0.clone()))
    }
}

/// A connect to an endpoint under way ([`EndpointConnects::start`]).
/// Dropped without an outcome (its task was cancelled, as at a runtime's
/// shutdown), it gives back the probe a request gave up on meanwhile.
#[derive(Debug)]
pub(crate) struct ConnectUnderWay(Option<Picked>);

impl ConnectUnderWay {
    /// The connect ended, and its request saw how: it reports a failure
    /// itself, as ever. Only a connect probe given up on meanwhile is
    /// settled here, by this outcome.
    pub(crate) fn seen(mut self, connected: bool) {
        let Some(endpoint) = self.0.take() else {
            return;
        };
        if let Some(probe) = endpoint.0.reconnect.connect_ended() {
            settle(&endpoint, connected, Some(probe));
        }
    }

    /// The connect ended after its request gave up on it: it counts for
    /// the endpoint as though the request had seen it. A failure backs
    /// the endpoint off (longer, if a probe given up on was waiting for
    /// it) and is logged as a request's failed connect is; a success puts
    /// back an endpoint whose probe was waiting for it.
    pub(crate) fn given_up(mut self, outcome: Result<(), &BoxError>) {
        let Some(endpoint) = self.0.take() else {
            return;
        };
        let probe = endpoint.0.reconnect.connect_ended();
        if let Err(error) = outcome {
            if endpoint.connect_failed() {
                tracing::warn!(
                    %endpoint,
                    error = %Chain(&**error),
                    "upstream connect failed after its request was given up on"
                );
            } else {
                tracing::debug!(
                    %endpoint,
                    error = %Chain(&**error),
                    "upstream connect failed after its request was given up on"
                );
            }
        }
        settle(&endpoint, outcome.is_ok(), probe);
    }
}

impl Drop for ConnectUnderWay {
    fn drop(&mut self) {
        if let Some(endpoint) = self.0.take()
            && let Some(probe) = endpoint.0.reconnect.connect_ended()
        {
            endpoint.0.reconnect.release(probe);
            endpoint.0.shared.gate.wake(false);
        }
    }
}

/// Counts a connect to `endpoint` that `connected` or failed, for the
/// probe claimed at `probe` or for none.
fn settle(endpoint: &Picked, connected: bool, probe: Option<u64>) {
    match (connected, probe) {
        (true, Some(probe)) => endpoint.reconnected(probe),
        (true, None) => {}
        (false, probe) => endpoint.back_off(probe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn plain() -> ConnectBackoff {
        ConnectBackoff::new(Duration::from_millis(100), Duration::from_millis(800), 0.0).unwrap()
    }

    #[test]
    fn the_defaults_are_linkerds() {
        let d = ConnectBackoff::default();
        assert_eq!(d.min(), Duration::from_millis(100));
        assert_eq!(d.max(), Duration::from_secs(60));
        assert!((d.jitter() - 0.1).abs() < f64::EPSILON);
    }

    #[test]
    fn a_failed_connect_backs_off_a_failed_probe_doubles_and_a_success_resets() {
        let backoff = plain();
        let hold = backoff.probe_hold();
        let r = Reconnect::default();
        assert!(r.failed(&backoff, None, 0));
        assert_eq!(r.until(), Some(100 * MS));
        // Requests sent before it fail during it: nothing changes.
        assert!(!r.failed(&backoff, None, 10 * MS));
        assert_eq!(r.standing(50 * MS, hold), Standing::Out);
        assert_eq!(r.standing(100 * MS, hold), Standing::Probe);
        assert_eq!(r.standing(100 * MS, hold), Standing::Out, "one probe");
        assert!(r.failed(&backoff, Some(100 * MS), 100 * MS));
        assert_eq!(r.until(), Some(300 * MS));
        assert_eq!(r.standing(300 * MS, hold), Standing::Probe);
        assert!(!r.connected(None), "only the probe puts it back");
        assert!(r.connected(Some(300 * MS)));
        assert!(r.is_clear());
        assert!(r.failed(&backoff, None, 400 * MS));
        assert_eq!(r.until(), Some(500 * MS), "from the shortest again");
    }

    #[test]
    fn a_probe_released_lets_the_next_request_probe() {
        let backoff = plain();
        let hold = backoff.probe_hold();
        let r = Reconnect::default();
        r.failed(&backoff, None, 0);
        assert_eq!(r.standing(100 * MS, hold), Standing::Probe);
        assert_eq!(r.next_change(100 * MS, hold), Some(100 * MS + hold));
        r.release(100 * MS);
        assert!(r.may_take(100 * MS, hold));
        assert_eq!(r.standing(100 * MS, hold), Standing::Probe);
        // Held past the longest backoff, it no longer holds.
        assert_eq!(r.standing(100 * MS + hold, hold), Standing::Probe);
    }

    #[test]
    fn backoffs_double_to_the_longest_and_jitter_never_passes_it() {
        let backoff = plain();
        let got: Vec<u64> = (0..6)
            .map(|n| backoff.backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(got, [100, 200, 400, 800, 800, 800]);
        let wide = ConnectBackoff::new(
            Duration::from_millis(100),
            Duration::from_millis(800),
            100.0,
        )
        .unwrap();
        for _ in 0..100 {
            assert!(wide.backoff(0) <= Duration::from_millis(800));
            assert!(wide.backoff(0) >= Duration::from_millis(100));
            assert_eq!(wide.backoff(4), Duration::from_millis(800));
        }
    }

    mod balancer {
        use std::{net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

        use crate::{
            error::BoxError,
            proxy::{
                EndpointState, FailureAccrual,
                balance::{Balancer, ConnectBackoff, EndpointConnects},
            },
        };

        fn addr(n: u8) -> SocketAddr {
            SocketAddr::from(([10, 0, 0, n], 80))
        }

        fn minute() -> ConnectBackoff {
            ConnectBackoff::new(Duration::from_secs(60), Duration::from_secs(60), 0.0).unwrap()
        }

        /// Backs the endpoint at `addr` off, as a request's failed
        /// connect does.
        fn back_off(balancer: &Arc<Balancer>, addr: SocketAddr) {
            loop {
                let (_, picked, _) = balancer.pick_indexed().unwrap();
                if picked.addr() == addr {
                    picked.back_off(None);
                    return;
                }
            }
        }

        #[tokio::test(start_paused = true)]
        async fn an_endpoint_backing_off_is_not_drawn_however_cheap_it_looks() {
            let balancer =
                Arc::new(Balancer::new([addr(1), addr(2)], None).with_connect_backoff(minute()));
            back_off(&balancer, addr(1));
            balancer.seed(addr(1), Duration::from_nanos(1));
            balancer.seed(addr(2), Duration::from_secs(10));
            for _ in 0..100 {
                let (_, picked, _) = balancer.pick_indexed().unwrap();
                assert_eq!(picked.addr(), addr(2));
            }
            assert_eq!(
                balancer.states(),
                [
                    (addr(1), EndpointState::Pending),
                    (addr(2), EndpointState::Ready)
                ]
            );
            // Once its backoff is over, the cheaper takes one request, its
            // probe, and no other until its connect is known.
            tokio::time::advance(Duration::from_secs(60)).await;
            let (_, picked, probe) = balancer.pick_indexed().unwrap();
            assert_eq!(picked.addr(), addr(1));
            let claim = probe.unwrap().take_connect_probe().unwrap();
            for _ in 0..100 {
                let (_, other, _) = balancer.pick_indexed().unwrap();
                assert_eq!(other.addr(), addr(2));
            }
            picked.reconnected(claim);
            assert_eq!(balancer.states()[0], (addr(1), EndpointState::Ready));
            let (_, picked, _) = balancer.pick_indexed().unwrap();
            assert_eq!(picked.addr(), addr(1), "back, and cheaper");
        }

        #[tokio::test(start_paused = true)]
        async fn with_failure_accrual_an_endpoint_is_drawn_when_both_let_it() {
            let accrual = FailureAccrual::new(
                NonZeroU32::MIN,
                Duration::from_secs(1),
                Duration::from_secs(1),
                0.0,
            )
            .unwrap();
            let balancer =
                Arc::new(Balancer::new([addr(1)], Some(accrual)).with_connect_backoff(minute()));
            let (_, picked, pending) = balancer.pick_indexed().unwrap();
            picked.back_off(None);
            pending.unwrap().failed();
            assert_eq!(balancer.states(), [(addr(1), EndpointState::Failing)]);
            // The penalty is over; the backoff is not: no probe of either.
            tokio::time::advance(Duration::from_secs(1)).await;
            assert_eq!(balancer.states(), [(addr(1), EndpointState::Pending)]);
            assert!(balancer.pick_indexed().is_none());
            assert!(!balancer.any_ready());
            assert_eq!(
                balancer.next_change(),
                Some(balancer.epoch + Duration::from_secs(60))
            );
            tokio::time::advance(Duration::from_secs(59)).await;
            assert!(balancer.any_ready());
            // One request probes both: its connect puts it back for the
            // backoff, and its response for failure accrual.
            let (_, picked, pending) = balancer.pick_indexed().unwrap();
            let mut pending = pending.unwrap();
            assert!(balancer.pick_indexed().is_none(), "one probe");
            picked.reconnected(pending.take_connect_probe().unwrap());
            assert_eq!(balancer.states(), [(addr(1), EndpointState::Probing)]);
            pending.answered(true);
            assert_eq!(balancer.states(), [(addr(1), EndpointState::Ready)]);
        }

        /// The endpoint at `addr` of `balancer`, for its client.
        fn connects(balancer: &Balancer, addr: SocketAddr) -> EndpointConnects {
            balancer.connects().find(|c| c.addr() == addr).unwrap()
        }

        #[tokio::test(start_paused = true)]
        async fn a_connect_given_up_on_backs_off_when_it_fails_and_not_when_it_connects() {
            let balancer =
                Arc::new(Balancer::new([addr(1), addr(2)], None).with_connect_backoff(minute()));
            let connects = connects(&balancer, addr(1));
            connects.start().given_up(Ok(()));
            assert_eq!(balancer.states()[0], (addr(1), EndpointState::Ready));
            let failed: BoxError = "timed out".into();
            connects.start().given_up(Err(&failed));
            assert_eq!(balancer.states()[0], (addr(1), EndpointState::Pending));
            assert_eq!(balancer.states()[1], (addr(2), EndpointState::Ready));
        }

        #[tokio::test(start_paused = true)]
        async fn a_probe_given_up_on_mid_connect_is_settled_by_that_connect() {
            let doubling =
                ConnectBackoff::new(Duration::from_secs(60), Duration::from_secs(120), 0.0)
                    .unwrap();
            let balancer = Arc::new(Balancer::new([addr(1)], None).with_connect_backoff(doubling));
            let connects = connects(&balancer, addr(1));
            back_off(&balancer, addr(1));
            tokio::time::advance(Duration::from_secs(60)).await;

            // The probe's request goes while its connect is under way:
            // no other request probes meanwhile, and the connect, failing,
            // backs the endpoint off longer.
            let (_, _, probe) = balancer.pick_indexed().unwrap();
            let under_way = connects.start();
            drop(probe);
            assert!(balancer.pick_indexed().is_none(), "still its probe's");
            let failed: BoxError = "timed out".into();
            under_way.given_up(Err(&failed));
            let at = balancer.epoch + Duration::from_secs(60 + 120);
            assert_eq!(balancer.next_change(), Some(at), "doubled");

            // The next probe's, connecting, puts it back.
            tokio::time::advance(Duration::from_secs(120)).await;
            let (_, _, probe) = balancer.pick_indexed().unwrap();
            let under_way = connects.start();
            drop(probe);
            under_way.given_up(Ok(()));
            assert_eq!(balancer.states(), [(addr(1), EndpointState::Ready)]);
        }

        #[tokio::test(start_paused = true)]
        async fn a_probe_given_up_on_is_settled_by_a_connect_its_request_saw_or_freed() {
            let balancer = Arc::new(Balancer::new([addr(1)], None).with_connect_backoff(minute()));
            let connects = connects(&balancer, addr(1));
            back_off(&balancer, addr(1));
            tokio::time::advance(Duration::from_secs(60)).await;
            let (_, _, probe) = balancer.pick_indexed().unwrap();
            let under_way = connects.start();
            drop(probe);
            // Another request's connect, seen by it: it settles the probe.
            under_way.seen(true);
            assert_eq!(balancer.states(), [(addr(1), EndpointState::Ready)]);

            back_off(&balancer, addr(1));
            tokio::time::advance(Duration::from_secs(60)).await;
            let (_, _, probe) = balancer.pick_indexed().unwrap();
            let under_way = connects.start();
            drop(probe);
            // Cancelled before it ends (the runtime shuts down): the next
            // request may probe.
            drop(under_way);
            assert!(balancer.pick_indexed().is_some());
        }

        #[tokio::test(start_paused = true)]
        async fn a_probe_dropped_before_its_connect_is_known_lets_the_next_request_probe() {
            let balancer = Arc::new(Balancer::new([addr(1)], None).with_connect_backoff(minute()));
            back_off(&balancer, addr(1));
            assert!(balancer.pick_indexed().is_none());
            tokio::time::advance(Duration::from_secs(60)).await;
            let (_, _, probe) = balancer.pick_indexed().unwrap();
            assert!(balancer.pick_indexed().is_none(), "one probe");
            drop(probe);
            let (_, picked, probe) = balancer.pick_indexed().unwrap();
            // It fails to connect: out for another backoff.
            picked.back_off(probe.unwrap().take_connect_probe());
            assert!(balancer.pick_indexed().is_none());
            assert_eq!(balancer.states(), [(addr(1), EndpointState::Pending)]);
        }
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let s = Duration::from_secs;
        assert_eq!(
            ConnectBackoff::new(s(2), s(1), 0.1)
                .unwrap_err()
                .to_string(),
            "connect backoff: the first backoff 2s is longer than the longest 1s"
        );
        assert_eq!(
            ConnectBackoff::new(s(0), s(0), 0.1).unwrap_err(),
            InvalidConnectBackoff::ZeroBackoff
        );
        assert!(ConnectBackoff::new(s(1), s(2), f64::NAN).is_err());
    }
}
