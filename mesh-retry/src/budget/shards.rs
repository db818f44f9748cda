//! A budget's shards, and which one the current thread counts in.
//!
//! Every request deposits into its budget, so a budget shared by the
//! threads of a runtime is written by all of them at once. Had it one
//! window, every deposit would move that window's cache line from the core
//! that wrote it last: on a two-core virtual machine that transfer alone
//! made a deposit three times dearer, and a withdrawal, which also reads
//! the window, five times. So the budget keeps [`SHARDS`] windows, each on
//! cache lines of its own, and a thread counts in the one its thread number
//! picks. Threads numbered one after another, as a runtime's workers are,
//! get different shards.
//!
//! Each shard also holds an equal share of the reserve, so a shard is a
//! small budget of its own: a withdrawal its thread's shard can pay for
//! touches no other shard. One it cannot pay for gathers the rest from the
//! others (see `Budget::try_withdraw_at`).

use std::{
    cell::Cell,
    hash::{Hash, Hasher},
};

use super::window::Window;

/// How many shards a budget has. Eight keep up to eight threads apart,
/// for 1 KiB per budget.
pub(super) const SHARDS: usize = 8;

/// One shard: a window and its share of the reserve, alone on its cache
/// lines. 128 bytes, not 64, because x86 processors fetch lines in
/// adjacent pairs.
#[derive(Debug)]
#[repr(align(128))]
pub(super) struct Shard {
    pub(super) window: Window,
    /// This shard's share of the reserve, in units.
    pub(super) floor: i64,
}

impl Shard {
    /// The units this shard can give at `generation`: its share of the
    /// reserve plus its window's balance. Negative once deposits that paid
    /// for its withdrawals have expired.
    #[inline]
    pub(super) fn available(&self, generation: u64) -> i64 {
        self.floor.saturating_add(self.window.sum(generation))
    }
}

/// The shards of a budget whose reserve is `reserve` units, shared out so
/// that the floors add up to it exactly.
pub(super) fn new(reserve: i64) -> [Shard; SHARDS] {
    let count = SHARDS as i64;
    let (share, rest) = (reserve / count, reserve % count);
    std::array::from_fn(|index| Shard {
        window: Window::new(),
        // The first `rest` shards take one unit more.
        floor: share + i64::from((index as i64) < rest),
    })
}

thread_local! {
    /// The current thread's shard, once known; `SHARDS` before.
    static CURRENT: Cell<usize> = const { Cell::new(SHARDS) };
}

/// The shard the current thread counts in.
#[inline]
pub(super) fn current() -> usize {
    // A `const` thread-local without a destructor is always accessible;
    // should it not be, shard 0 is as correct, only shared.
    CURRENT
        .try_with(|current| match current.get() {
            known if known < SHARDS => known,
            _ => {
                let shard = of_thread(std::thread::current().id());
                current.set(shard);
                shard
            }
        })
        .unwrap_or(0)
}

/// The shard for thread `id`: its number modulo [`SHARDS`]. Standard
/// Rust numbers threads in the order they are created and gives the number
/// to `Hash` alone; [`Number`] takes it from there.
fn of_thread(id: std::thread::ThreadId) -> usize {
    let mut number = Number(0);
    id.hash(&mut number);
    // The remainder is below SHARDS, so the cast cannot truncate.
    (number.0 % SHARDS as u64) as usize
}

/// A `Hasher` that keeps the integer it is given: a `ThreadId` hashes as
/// its number alone. Anything else it mixes in, so that a `ThreadId` that
/// hashed differently would still spread its threads over the shards.
struct Number(u64);

impl Hasher for Number {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = self.0.wrapping_mul(31).wrapping_add(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_add_up_to_the_reserve() {
        for reserve in [0, 1, 7, 8, 10_000, 1_000_003] {
            let shards = new(reserve);
            assert_eq!(shards.iter().map(|shard| shard.floor).sum::<i64>(), reserve);
            let (low, high) = (shards[SHARDS - 1].floor, shards[0].floor);
            assert!(high - low <= 1, "reserve {reserve}: {low}..{high}");
        }
    }

    #[test]
    fn a_thread_id_hashes_as_the_number_it_prints() {
        let id = std::thread::current().id();
        let printed = format!("{id:?}");
        let number: u64 = printed
            .trim_start_matches("ThreadId(")
            .trim_end_matches(')')
            .parse()
            .unwrap_or_else(|_| panic!("{printed}"));
        let mut hashed = Number(0);
        id.hash(&mut hashed);
        assert_eq!(hashed.finish(), number);
        assert_eq!(of_thread(id), (number % SHARDS as u64) as usize);
    }

    #[test]
    fn a_thread_keeps_its_shard() {
        let first = current();
        assert!(first < SHARDS);
        assert_eq!(current(), first);
        assert_eq!(of_thread(std::thread::current().id()), first);
    }

    #[test]
    fn a_thread_being_torn_down_still_counts_in_its_shard() {
        use std::{cell::RefCell, sync::Arc};

        use crate::{Budget, BudgetConfig};

        /// Deposits when its thread's locals are destroyed.
        struct OnExit(Arc<Budget>);
        impl Drop for OnExit {
            fn drop(&mut self) {
                self.0.deposit_at(tokio::time::Instant::now());
            }
        }
        thread_local! {
            static EXIT: RefCell<Option<OnExit>> = const { RefCell::new(None) };
        }
        let config = BudgetConfig::new(1.0, 0, std::time::Duration::from_secs(60));
        let budget = Arc::new(Budget::new(config.unwrap()));
        let exiting = budget.clone();
        // The thread first asks for its shard while being torn down: a
        // panic there would abort the process.
        std::thread::spawn(move || EXIT.with(|exit| *exit.borrow_mut() = Some(OnExit(exiting))))
            .join()
            .unwrap();
        assert_eq!(budget.balance(), 1.0);
    }

    #[test]
    fn each_shard_is_alone_on_its_cache_lines() {
        assert_eq!(std::mem::align_of::<Shard>(), 128);
        assert_eq!(std::mem::size_of::<Shard>(), 128);
    }
}
