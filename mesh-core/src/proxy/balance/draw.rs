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

use super::{Balancer, Load};
use crate::proxy::{accrual::Standing, balance::EndpointState};

impl Balancer {
    /// Two endpoints drawn among those failure accrual has not taken out,
    /// the cheaper of them; or one whose penalty is over, as its probe.
    pub(super) fn pick_in(&self, now: u64, load: Load) -> Option<(usize, bool)> {
        let n = self.len();
        let (a, probe) = self.draw(now, None)?;
        if probe || n == 1 {
            return Some((a, probe));
        }
        match self.draw(now, Some(a)) {
            None => Some((a, false)),
            Some((b, true)) => Some((b, true)),
            Some((b, false)) => Some((self.cheaper(a, b, now as f64, load), false)),
        }
    }

    /// One endpoint other than `skip`, drawn at random among those in at
    /// `now`, and whether it is a probe. See the [module docs](self).
    fn draw(&self, now: u64, skip: Option<usize>) -> Option<(usize, bool)> {
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
        let open = |i: &usize| {
            self.endpoint(*i)
                .is_some_and(|e| e.health.state(now) != EndpointState::Failing)
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

    /// Endpoint `i` and whether it is a probe, if it may take a request
    /// at `now`; a probe is claimed.
    fn take(&self, i: usize, now: u64) -> Option<(usize, bool)> {
        let hold = self.accrual.map_or(u64::MAX, |a| a.probe_hold());
        match self.endpoint(i)?.health.standing(now, hold) {
            Standing::In => Some((i, false)),
            Standing::Probe => {
                // An endpoint is ready again: fail-fast, if on, ends.
                self.gate.wake(true);
                Some((i, true))
            }
            Standing::Out => None,
        }
    }
}
