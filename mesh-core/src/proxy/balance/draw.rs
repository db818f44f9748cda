//! Drawing endpoints when failure accrual may have taken some out.
//!
//! # Why
//!
//! The two endpoints a request compares must each be drawn with the same
//! chance among those still in, or the balancer sends one of them more
//! than its share before the costs are even compared. Taking the first
//! endpoint in from a random start does not do that: an endpoint right
//! after a run of endpoints taken out is found from every start inside
//! the run. Endpoints that fail together often sit together (the pods of
//! a bad node have neighbouring addresses, and sets are sorted), so with
//! half of a hundred out, the one after them was drawn first for half of
//! all requests: twenty-five times its share, enough to overload it in
//! turn and take the next one down with it.
//!
//! # How
//!
//! An endpoint is drawn at random among all, and drawn again while the
//! one drawn is out, up to as many times as there are endpoints. When
//! most are out and every draw missed, the endpoints still in are
//! counted and one of them is chosen at random. Either way each endpoint
//! in is as likely as any other. An endpoint whose penalty is over is in
//! for one request, its probe, which drawing it claims.
//!
//! An endpoint backing off a failed connect ([`reconnect`](super::reconnect))
//! is out the same way, whether or not failure accrual is on, and one
//! past its backoff is in for one request, its connect probe. An endpoint
//! is drawn only when both let it: one failure accrual has out is not
//! probed for its connect, and one still backing off does not take
//! failure accrual's probe.

use super::{Balancer, Load};
use crate::proxy::{
    accrual::{Standing, claim},
    balance::EndpointState,
};

/// The probes a request drawn to an endpoint claimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Probes {
    /// Failure accrual's.
    pub(super) accrual: bool,
    /// The connect backoff's, by its claim; 0 for none.
    pub(super) connect: u64,
}

impl Probes {
    fn any(self) -> bool {
        self.accrual || self.connect != 0
    }
}

impl Balancer {
    /// Two endpoints drawn among those failure accrual and connect
    /// backoffs have not taken out, the cheaper of them; or one whose
    /// penalty or backoff is over, as its probe.
    pub(super) fn pick_in(&self, now: u64, load: Load) -> Option<(usize, Probes)> {
        let n = self.len();
        let (a, probes) = self.draw(now, None)?;
        if probes.any() || n == 1 {
            return Some((a, probes));
        }
        match self.draw(now, Some(a)) {
            None => Some((a, probes)),
            Some((b, probes)) if probes.any() => Some((b, probes)),
            Some((b, probes)) => Some((self.cheaper(a, b, now as f64, load), probes)),
        }
    }

    /// One endpoint other than `skip`, drawn at random among those in at
    /// `now`, and whether it is a probe. See the [module docs](self).
    fn draw(&self, now: u64, skip: Option<usize>) -> Option<(usize, Probes)> {
        let n = self.len();
        let others = n.checked_sub(usize::from(skip.is_some()))?;
        if others == 0 {
            return None;
        }
        // The `k`th endpoint other than `skip`.
        let other = |k: usize| match skip {
            Some(skip) if k >= skip => k + 1,
            _ => k,
        };
        for _ in 0..n {
            let i = other(fastrand::usize(0..others));
            if let Some(drawn) = self.take(i, now) {
                return Some(drawn);
            }
        }
        // Most are out: choose among those still in. One whose probe
        // another request has just claimed is passed over for the next.
        let hold = self.shared.backoff.probe_hold();
        let open = |i: &usize| {
            self.endpoint(*i).is_some_and(|e| {
                (self.accrual.is_none() || e.health.state(now) != EndpointState::Failing)
                    && e.reconnect.may_take(now, hold)
            })
        };
        let count = (0..others).map(other).filter(open).count();
        if count == 0 {
            return None;
        }
        let chosen = fastrand::usize(0..count);
        (0..others)
            .map(other)
            .filter(open)
            .cycle()
            .skip(chosen)
            .take(count)
            .find_map(|i| self.take(i, now))
    }

    /// Endpoint `i` and the probes it claimed, if it may take a request
    /// at `now`.
    ///
    /// Failure accrual's probe ends fail-fast, if on: the endpoint is
    /// ready again. A connect probe does not, as an endpoint that
    /// reconnects in Linkerd is not ready until its connect succeeds
    /// ([`Picked::reconnected`](super::Picked::reconnected)).
    fn take(&self, i: usize, now: u64) -> Option<(usize, Probes)> {
        let endpoint = self.endpoint(i)?;
        let hold = self.shared.backoff.probe_hold();
        // Read first, so that an endpoint still backing off claims no
        // failure accrual probe.
        if !endpoint.reconnect.may_take(now, hold) {
            return None;
        }
        let accrual = match self.accrual {
            None => false,
            Some(accrual) => match endpoint.health.standing(now, accrual.probe_hold()) {
                Standing::In => false,
                Standing::Probe => true,
                Standing::Out => return None,
            },
        };
        let connect = match endpoint.reconnect.standing(now, hold) {
            Standing::In => 0,
            Standing::Probe => claim(now),
            Standing::Out => {
                // Another request took the connect probe meanwhile.
                if accrual {
                    endpoint.health.release_probe(claim(now));
                }
                return None;
            }
        };
        if accrual {
            self.gate.wake(true);
        }
        Some((i, Probes { accrual, connect }))
    }
}
