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
//! Each retry is paid for by requests made within a `ttl` before it, or by
//! the reserve, and no request pays for more than `retry_ratio` of a retry.
//! So over any stretch of time, retries ≤ `retry_ratio` × (the requests of
//! that stretch and of the `ttl` before it) + `min_retries_per_second` ×
//! (its length + `ttl`). With the defaults (0.2, 10/s, 10 s) an upstream
//! that fails every request sees at most 1.2 times its load plus ten
//! retries a second, however long the outage lasts. Within a single `ttl`
//! the retries can outnumber `retry_ratio` × its requests: a burst may
//! spend deposits made in the `ttl` before, just before they expire.
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
//! one per service, or one across several services and routes. Neither a
//! deposit nor a withdrawal takes a lock, and time comes from
//! [`tokio::time::Instant`], so tests can pause it.
//!
//! Every request deposits, so the threads of a runtime all write to a
//! shared budget at once. A budget of one window would move that window's
//! cache line between cores on every request, which on a two-core virtual
//! machine made a deposit cost 75–100 ns instead of 21. So a budget is
//! split into eight shards, each a window of its own on cache lines of its
//! own with an eighth of the reserve, and each thread counts in one of
//! them, picked by its thread number (consecutive threads, as a runtime's
//! workers are, get different shards). A deposit is a clock read and one
//! atomic add to the thread's shard; a withdrawal adds a read of that
//! shard's ten slots. A withdrawal the thread's shard cannot pay for in
//! full takes the rest from the other shards, a fraction from each if need
//! be, so no retry is refused because what pays for it sits in another
//! thread's shard. One difference from a single window remains. When
//! deposits that paid for a shard's withdrawals expire before the
//! withdrawals do, that shard's balance falls below zero, and it gives
//! nothing until they expire too; but its deficit is not set against the
//! other shards, whose retries any thread can still spend. One window would
//! have held back every retry for that time. Either way each retry is paid
//! for by deposits made within a ttl before it, or by the reserve, and no
//! deposit's share of a retry pays twice; [`balance`](Budget::balance)
//! counts what the shards can give.
//!
//! The clock read costs more than all the rest: about 50 ns on a virtual
//! machine, against 20 ns for the rest of a deposit. A caller that reads
//! the clock anyway, for a deadline, as the
//! [`RouteStack`](crate::RouteStack) does, passes its reading to
//! [`deposit_at`](Budget::deposit_at) and
//! [`withdraw_at`](Budget::withdraw_at) instead.
//!
//! A withdrawal never overdraws: it subtracts first, then checks the
//! balance of the shard it took from, counting the slots of the ttl before
//! its clock reading (or before the shard's latest slot, if that is later)
//! and any later ones other threads have counted in since, and puts the
//! retry back if that went below zero. Two withdrawals racing for the last
//! retry of a shard may therefore both be refused; the budget errs on the
//! side of fewer retries. One limit: a slot holds about 3.4 million
//! retries either way, and saturates past it. Deposits past it are lost,
//! which errs the same way; withdrawals past it, which only a shard with a
//! reserve of millions of retries would grant in one tenth of a ttl, are
//! not counted.
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
mod readings_tests;
mod shards;
#[cfg(test)]
mod tests;
mod window;

pub use self::config::{BudgetConfig, InvalidBudget};
use self::{
    shards::{SHARDS, Shard},
    window::{Amount, SLOTS},
};

/// Units per retry: the budget counts in ten-thousandths of a retry.
const SCALE: i64 = 10_000;
/// Units each retry takes: one whole retry. A constant, not a field, so
/// that the window's range checks on it fold away.
const WITHDRAW: i64 = SCALE;

/// A Finagle-style retry budget. See the [module docs](self).
pub struct Budget {
    config: BudgetConfig,
    /// Units each original request adds.
    deposit: Amount,
    /// The windows, each with its share of the units that are always
    /// available (the reserve).
    shards: [Shard; SHARDS],
    origin: Instant,
    /// The width of one of the ten slots, in nanoseconds.
    slot_nanos: u64,
}

impl Budget {
    /// A budget with `config`'s parameters, starting from its reserve.
    pub fn new(config: BudgetConfig) -> Self {
        // The ratio is at most 1000, so the product fits an i64 exactly,
        // and an `Amount`: at most 10^7 units.
        let deposit = Amount::new((config.retry_ratio() * SCALE as f64).round() as i64);
        let slot = config.ttl() / SLOTS as u32;
        Self {
            config,
            deposit,
            shards: shards::new(config.reserve_units(SCALE)),
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
    /// another thread has moved that slot on since. A withdrawal at such a
    /// reading counts in the latest slot of the shards it takes from, so
    /// that it lasts as long as what it spends, and sees everything counted
    /// there since, so that it cannot spend what a later one took.
    pub fn deposit_at(&self, now: Instant) {
        if self.deposit.units() != 0 {
            let shard = &self.shards[shards::current()];
            shard.window.add(self.generation(now), self.deposit);
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
        let own = shards::current();
        let shard = &self.shards[own];
        // A reading older than the latest slot of the shard counts in that
        // slot, where the withdrawal lasts as long as what it spends.
        let generation = self.generation(now).max(shard.window.latest());
        let mark = shard.window.add(generation, Amount::new(-WITHDRAW));
        if shard.available(generation) >= 0 {
            return Some(Withdrawal {
                taken: Taken::One(Part::new(own, mark, WITHDRAW)),
            });
        }
        // More than this thread's shard has: put it back where it was
        // counted, and take what is missing from the others.
        shard.window.take_back(mark, -WITHDRAW);
        self.gather(generation, own)
    }

    /// A withdrawal paid for by several shards, starting with `own`: from
    /// each, what it has, until the retry is paid for. The slow path, taken
    /// only when a thread's shard runs dry: it reads every shard, and
    /// writes to those that pay.
    ///
    /// During an outage nearly every retry is refused, while each shard
    /// holds a fraction of one. So the shards are first only read: if
    /// together they have less than a retry, it is refused without taking
    /// fractions from other threads' shards (their cache lines) to give
    /// them back, and without allocating. Should other threads take in
    /// between, what was taken goes back and the retry is refused.
    #[cold]
    fn gather(&self, generation: u64, own: usize) -> Option<Withdrawal> {
        if self.spendable(generation) < WITHDRAW {
            return None;
        }
        let mut parts = Vec::new();
        let mut missing = WITHDRAW;
        for index in (own..SHARDS).chain(0..own) {
            let shard = &self.shards[index];
            let generation = generation.max(shard.window.latest());
            let take = shard.available(generation).min(missing);
            if take <= 0 {
                continue;
            }
            let mark = shard.window.add(generation, Amount::new(-take));
            if shard.available(generation) < 0 {
                // Another thread took from this shard in between.
                shard.window.take_back(mark, -take);
                continue;
            }
            parts.push(Part::new(index, mark, take));
            missing -= take;
            if missing == 0 {
                return Some(Withdrawal {
                    taken: Taken::Gathered(parts.into_boxed_slice()),
                });
            }
        }
        parts.iter().for_each(|part| self.give_back(part));
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
        match &withdrawal.taken {
            Taken::One(part) => self.give_back(part),
            Taken::Gathered(parts) => parts.iter().for_each(|part| self.give_back(part)),
        }
    }

    fn give_back(&self, part: &Part) {
        // A part names a shard below SHARDS; `get` keeps a foreign
        // withdrawal from panicking all the same.
        if let Some(shard) = self.shards.get(usize::from(part.shard)) {
            shard.window.take_back(part.mark, -part.units);
        }
    }

    /// The retries the budget allows right now, in whole and fractional
    /// retries: what its shards can give, each its share of the reserve
    /// plus its deposits less its withdrawals. A shard whose withdrawals
    /// outlived the deposits that paid for them gives nothing; its deficit
    /// does not hold back the others (see the [module docs](self)), so it
    /// does not count against their retries here either. Never negative.
    pub fn balance(&self) -> f64 {
        self.spendable(self.generation(Instant::now())) as f64 / SCALE as f64
    }

    /// The units the shards together can give at `generation`, each at
    /// its own latest slot if that is later: a shard below zero gives
    /// nothing, and holds back none of the others.
    fn spendable(&self, generation: u64) -> i64 {
        self.shards.iter().fold(0_i64, |sum, shard| {
            let generation = generation.max(shard.window.latest());
            sum.saturating_add(shard.available(generation).max(0))
        })
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
/// It names where the retry was taken from: the slot of a shard's window
/// and the generation that slot counted then, or several such, when the
/// thread's own shard could not pay for the whole retry.
#[derive(Debug)]
pub struct Withdrawal {
    taken: Taken,
}

#[derive(Debug)]
enum Taken {
    /// The common case: all of it from the thread's own shard.
    One(Part),
    Gathered(Box<[Part]>),
}

/// The units a withdrawal took from one shard, and where they were counted.
#[derive(Debug)]
struct Part {
    shard: u8,
    mark: window::Mark,
    units: i64,
}

impl Part {
    fn new(shard: usize, mark: window::Mark, units: i64) -> Self {
        // Shard indexes are below SHARDS, far below 256.
        Self {
            shard: shard as u8,
            mark,
            units,
        }
    }
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
