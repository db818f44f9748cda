//! Balancing long-lived connections: the load of a byte stream is the
//! connections open to an endpoint, not the time its connects take.
//!
//! # Why
//!
//! A request is load for a round trip; a forwarded TCP connection (a
//! PostgreSQL or Redis client's pooled connection) is load for as long as
//! it stays open, hours perhaps. If it counted only while it connects, a
//! pool of fifty connections opened together would all go to whichever
//! endpoint connects fastest, and stay there. For long sessions the load
//! that matters is the number open: HAProxy's `leastconn` is the balance
//! its manual recommends for them, and Linkerd's balancer holds its load
//! handle on an opaque connection until the connection ends.
//!
//! # How
//!
//! [`Balancer::pick_connection`] counts the connection as in flight
//! against its endpoint, as [`pick_indexed`](Balancer::pick_indexed) counts a request.
//! When the connect succeeds, [`Pending::connected`] counts the connect
//! time as the endpoint's latency sample (and a success for failure
//! accrual, which ends a probe) and hands back an [`Established`], which
//! keeps the connection counted until it is dropped: when both directions
//! are done, when either fails, or when the future forwarding it is
//! dropped or unwinds. A connect that fails is a failure, as for a
//! request.
//!
//! The cost of an endpoint for one more connection is its open
//! connections plus one, times its latency estimate, but with two
//! changes from a request's cost:
//!
//! - An estimate below [`CONNECT_RTT_FLOOR`] counts as the floor. A
//!   connect takes a fraction of a millisecond on a LAN, and a TLS
//!   handshake a few: differences that small say nothing of how loaded
//!   an endpoint is, and weighted in they would let the fastest endpoint
//!   hold many times the connections of the others. Above the floor, a
//!   slow endpoint still takes fewer connections in proportion.
//! - An endpoint whose estimate is at least [`FAILING_ESTIMATE`] (it
//!   refused a connect within the last seven seconds or so, timed one
//!   out within the last half minute, or connects that slowly) is drawn
//!   only against another such. A request's cost
//!   can weigh a failure's penalty against a count of requests in flight,
//!   which stays small; a count of open connections grows without bound,
//!   and past a few dozen it would outweigh the penalty and send every
//!   new connection to the endpoint that just refused one.
//!
//! An endpoint that leaves the set in an update takes its connections
//! with it: they count against the old balancer until they close. One
//! that stays keeps its count. One that leaves and comes back starts
//! fresh, without the connections it still carries from before.

use std::time::Duration;

use tokio::time::Instant;

use super::{Balancer, DEFAULT_RTT, FAILURE_PENALTY, Pending, Picked, nanos};
use std::sync::Arc;

/// The latency estimate below which connects count as equally fast when
/// connections are balanced: a fresh endpoint's, [`DEFAULT_RTT`], 30 ms.
pub const CONNECT_RTT_FLOOR: Duration = DEFAULT_RTT;

/// The latency estimate from which an endpoint is drawn for a connection
/// only when no endpoint under it is: half the [`FAILURE_PENALTY`], which
/// the penalty decays to in 10 s × ln 2, about 7 s.
pub const FAILING_ESTIMATE: Duration = Duration::from_millis(500);

const _: () = assert!(FAILING_ESTIMATE.as_nanos() * 2 == FAILURE_PENALTY.as_nanos());

/// The least latency estimate, in nanoseconds, a request's cost counts:
/// a nanosecond. Below it an estimate says nothing of an endpoint, and
/// requests in flight alone tell endpoints apart.
const REQUEST_RTT_FLOOR: f64 = 1.0;

/// What an endpoint's in-flight count stands for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Load {
    /// Requests, each until its response's first body frame.
    Requests,
    /// Connections, each until it closes.
    Connections,
}

/// What one more request or connection to an endpoint looks like it
/// costs: ordered by `failing` first, then `weighted`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(super) struct Cost {
    failing: bool,
    weighted: f64,
}

impl Cost {
    /// The cost of an endpoint that is not there.
    pub(super) const MAX: Self = Self {
        failing: true,
        weighted: f64::INFINITY,
    };
}

impl Load {
    /// The cost of an endpoint with a latency `estimate` (nanoseconds,
    /// decayed to now) and `pending` in flight.
    ///
    /// A request's estimate counts as at least [`REQUEST_RTT_FLOOR`]: an
    /// estimate decays toward zero while its endpoint gets no sample, and
    /// reaches it, past the smallest an `f64` holds, after two hours or
    /// so. At zero every endpoint would cost nothing whatever its
    /// requests in flight, and a burst after a quiet night would go
    /// wherever the draw fell, not to the endpoint with fewer.
    #[inline]
    pub(super) fn cost(self, estimate: f64, pending: u32) -> Cost {
        let in_flight = f64::from(pending) + 1.0;
        match self {
            Self::Requests => Cost {
                failing: false,
                weighted: estimate.max(REQUEST_RTT_FLOOR) * in_flight,
            },
            Self::Connections => Cost {
                failing: estimate >= nanos(FAILING_ESTIMATE),
                weighted: estimate.max(nanos(CONNECT_RTT_FLOOR)) * in_flight,
            },
        }
    }
}

impl Balancer {
    /// The endpoint the next connection goes to, and the connect to hold
    /// until it ends, as [`pick_indexed`](Self::pick_indexed) does for a request, with
    /// the costs of a connection: see the [module docs](self). The
    /// endpoint is handed out as a request's is, so that its connect's
    /// outcome tells whether a streak of failed connects begins or ends.
    pub(crate) fn pick_connection(self: &Arc<Self>) -> Option<(Picked, Option<Pending>)> {
        let (index, _, pending) = self.pick_by(Load::Connections)?;
        let endpoint = self.endpoints.get(index)?.clone();
        Some((Picked(endpoint), pending))
    }
}

impl Pending {
    /// The connect succeeded: its time is the endpoint's sample and a
    /// success for failure accrual (a probe's outcome), and the
    /// connection stays counted against the endpoint until the
    /// [`Established`] is dropped.
    pub(crate) fn connected(mut self) -> Established {
        let now = Instant::now();
        // Sampled once: the connection's life, when it is dropped, is no
        // latency.
        self.observe_wait(now);
        // Takes the probe: dropped, the connection no longer holds it.
        self.record(true, now);
        Established { _pending: self }
    }
}

/// An open connection, counted against its endpoint until dropped.
#[derive(Debug)]
pub(crate) struct Established {
    _pending: Pending,
}

#[cfg(test)]
mod tests;
