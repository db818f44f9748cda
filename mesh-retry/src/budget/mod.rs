//! A retry budget: retries as a share of requests, not a count per request.
//!
//! # Why a budget
//!
//! A policy of "retry up to 3 times" looks harmless while failures are rare.
//! When an upstream goes down it turns every request into four, so the
//! upstream that is already failing receives four times its load, and every
//! layer of the call graph that retries multiplies again: a retry storm. A
//! cap per request cannot prevent it, because the cap is reached on every
//! request at once.
//!
//! A budget caps retries as a fraction of the traffic instead. Finagle
//! introduced the design; Linkerd's ServiceProfile `retryBudget`, tower's
//! `TpsBudget` and the Gateway API (GEP-3388) all copy it:
//!
//! - every original request **deposits** [`retry_ratio`] of a retry;
//! - every retry **withdraws** one whole retry, and is made only when the
//!   balance allows it;
//! - a **reserve** of `min_retries_per_second × ttl` retries is always
//!   there, so a client with little traffic can still retry;
//! - deposits and withdrawals **expire** after `ttl`, counted in ten
//!   sliding slots, so the budget follows the recent traffic.
//!
//! Over any `ttl`, retries ≤ `retry_ratio` × requests +
//! `min_retries_per_second` × `ttl`. With the defaults (0.2, 10/s, 10 s) an
//! upstream that fails every request sees at most 1.2 times its load, plus
//! a hundred retries, however long the outage lasts.
//!
//! # Exact ratios
//!
//! The budget counts in ten-thousandths of a retry: a deposit adds
//! `retry_ratio × 10 000` units (rounded to the nearest unit) and a
//! withdrawal takes 10 000. So 0.3 allows exactly three retries per ten
//! requests. tower's port instead withdraws `trunc(1 / ratio)` whole
//! deposits, which turns 0.3 into 1/3 and 0.6 into 1/1 (tower #857).
//!
//! # Sharing and cost
//!
//! A `Budget` is meant to be shared through an [`Arc`](std::sync::Arc):
//! one per service, or one across several services and routes. A deposit is
//! a clock read and one atomic add (a compare-and-swap when the slot has to
//! be reset); a withdrawal adds a read of the ten slots. Neither takes a
//! lock. Time comes from [`tokio::time::Instant`], so tests can pause it.
//!
//! The clock read costs more than all the rest: about 50 ns on a virtual
//! machine, against 20 ns for the rest of a deposit. A caller that reads
//! the clock anyway, for a deadline, as the
//! [`RouteStack`](crate::RouteStack) does, passes its reading to
//! [`deposit_at`](Budget::deposit_at) and
//! [`withdraw_at`](Budget::withdraw_at) instead.
//!
//! A withdrawal never overdraws: it subtracts first, then checks the
//! balance, and puts the retry back if the balance went below zero. Two
//! withdrawals racing for the last retry may therefore both be refused; the
//! budget errs on the side of fewer retries.
//!
//! # Giving a retry back
//!
//! A retry is taken from the budget when it is decided, and sent after its
//! backoff; in between, the request's deadline may pass or its caller go
//! away. A retry that is never sent should not count against the budget,
//! or a burst of such give-ups would refuse retries that the traffic has
//! earned. [`try_withdraw`](Budget::try_withdraw) returns a [`Withdrawal`]
//! for that, and [`refund`](Budget::refund) gives it back: the same
//! ten-thousandths, into the slot of the window they were taken from, so
//! that they leave the window together and the balance is what it would
//! have been had the retry never been taken. A refund made after that slot
//! has left the window gives nothing back, since the withdrawal no longer
//! counts either. The retry layers refund every retry they decide and do
//! not send.
//!
//! ```
//! use mesh_retry::{Budget, BudgetConfig};
//!
//! let budget = Budget::new(BudgetConfig::default());
//! // The reserve alone allows 10 retries per second over 10 seconds.
//! assert_eq!(budget.balance(), 100.0);
//! budget.deposit();
//! assert_eq!(budget.balance(), 100.2);
//! assert!(budget.withdraw());
//! assert_eq!(budget.balance(), 99.2);
//! // A retry taken, then not sent after all, is given back.
//! let withdrawal = budget.try_withdraw().expect("99 retries to spare");
//! assert_eq!(budget.balance(), 98.2);
//! budget.refund(withdrawal);
//! assert_eq!(budget.balance(), 99.2);
//! ```
//!
//! [`retry_ratio`]: BudgetConfig::retry_ratio

use std::{fmt, time::Duration};

use tokio::time::Instant;

mod config;
#[cfg(test)]
mod tests;
mod window;

pub use self::config::{BudgetConfig, InvalidBudget};
use self::window::{SLOTS, Window};

/// Units per retry: the budget counts in ten-thousandths of a retry.
const SCALE: i64 = 10_000;

/// A Finagle-style retry budget. See the [module docs](self).
pub struct Budget {
    config: BudgetConfig,
    /// Units each original request adds.
    deposit: i64,
    /// Units each retry takes: one whole retry.
    withdraw: i64,
    /// Units that are always available.
    reserve: i64,
    window: Window,
    origin: Instant,
    /// The width of one of the ten slots, in nanoseconds.
    slot_nanos: u64,
}

impl Budget {
    /// A budget with `config`'s parameters, starting from its reserve.
    pub fn new(config: BudgetConfig) -> Self {
        // The ratio is at most 1000, so the product fits an i64 exactly.
        let deposit = (config.retry_ratio() * SCALE as f64).round() as i64;
        let slot = config.ttl() / SLOTS as u32;
        Self {
            config,
            deposit,
            withdraw: SCALE,
            reserve: config.reserve_units(SCALE),
            window: Window::new(),
            origin: Instant::now(),
            // At most 6 s: fits a u64 with room to spare.
            slot_nanos: u64::try_from(slot.as_nanos()).unwrap_or(u64::MAX).max(1),
        }
    }

    /// The parameters this budget was built with.
    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Records an original request: adds `retry_ratio` of a retry.
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// [`deposit`](Self::deposit), at `now`: a reading of tokio's clock the
    /// caller has just made, which saves reading it again. A reading a
    /// moment old counts in the slot it falls in, or in the later one if
    /// another thread has moved that slot on since.
    pub fn deposit_at(&self, now: Instant) {
        if self.deposit != 0 {
            self.window.add(self.generation(now), self.deposit);
        }
    }

    /// Takes one retry from the budget. Returns `false`, and takes nothing,
    /// when the balance has less than one retry.
    pub fn withdraw(&self) -> bool {
        self.withdraw_at(Instant::now())
    }

    /// [`withdraw`](Self::withdraw), at `now`, a reading of tokio's clock
    /// the caller has already made; see [`deposit_at`](Self::deposit_at).
    pub fn withdraw_at(&self, now: Instant) -> bool {
        self.try_withdraw_at(now).is_some()
    }

    /// Takes one retry from the budget, as [`withdraw`](Self::withdraw)
    /// does, and returns the [`Withdrawal`] that gives it back if the retry
    /// is not sent after all; `None` when the balance has less than one
    /// retry.
    #[must_use = "a withdrawal is taken even if the result is ignored"]
    pub fn try_withdraw(&self) -> Option<Withdrawal> {
        self.try_withdraw_at(Instant::now())
    }

    /// [`try_withdraw`](Self::try_withdraw), at `now`; see
    /// [`deposit_at`](Self::deposit_at).
    #[must_use = "a withdrawal is taken even if the result is ignored"]
    pub fn try_withdraw_at(&self, now: Instant) -> Option<Withdrawal> {
        let generation = self.generation(now);
        let mark = self.window.add(generation, -self.withdraw);
        if self.reserve.saturating_add(self.window.sum(generation)) >= 0 {
            return Some(Withdrawal { mark });
        }
        // Overdrawn: put it back where it was counted.
        self.window.take_back(mark, -self.withdraw);
        None
    }

    /// Gives back a retry taken by [`try_withdraw`](Self::try_withdraw)
    /// that was not sent, so that the budget counts only the retries that
    /// went out.
    ///
    /// The retry goes back into the slot of the window it was taken from,
    /// not the current one, and it is exactly the units taken: from then
    /// on the balance is, at every instant, what it would have been had the
    /// retry never been taken (short of a slot that saturated in between,
    /// past three million retries in one slot). A withdrawal whose slot has
    /// left the window no longer counts against the balance, and its refund
    /// adds nothing. Like a withdrawal, a refund takes no lock.
    ///
    /// `withdrawal` must come from this budget: given to another, it would
    /// credit that one with a retry it never lent.
    // By value, so that a withdrawal is given back at most once.
    #[allow(clippy::needless_pass_by_value)]
    pub fn refund(&self, withdrawal: Withdrawal) {
        self.window.take_back(withdrawal.mark, -self.withdraw);
    }

    /// The retries the budget allows right now, in whole and fractional
    /// retries.
    pub fn balance(&self) -> f64 {
        let units = self
            .reserve
            .saturating_add(self.window.sum(self.generation(Instant::now())));
        units as f64 / SCALE as f64
    }

    /// Which slot width `now` falls in, counted from the budget's
    /// creation.
    fn generation(&self, now: Instant) -> u64 {
        let elapsed: Duration = now.saturating_duration_since(self.origin);
        // 2^64 nanoseconds are 584 years; a 64-bit division is much cheaper
        // than a 128-bit one.
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        nanos / self.slot_nanos
    }
}

/// A retry taken from a [`Budget`] by
/// [`try_withdraw`](Budget::try_withdraw), which
/// [`refund`](Budget::refund) gives back if the retry is not sent. Dropping
/// it keeps the retry taken, for as long as the budget's ttl.
///
/// It names the slot of the budget's window that the retry was taken from,
/// and the generation that slot counted then.
#[derive(Debug)]
pub struct Withdrawal {
    mark: window::Mark,
}

impl Default for Budget {
    /// A budget with the [default parameters](BudgetConfig::default).
    fn default() -> Self {
        Self::new(BudgetConfig::default())
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("config", &self.config)
            .field("balance", &self.balance())
            .finish()
    }
}
