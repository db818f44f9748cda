//! A sliding window of ten slots, updated without locks.
//!
//! Each slot is one `AtomicU64` that packs the slot's generation (which
//! tenth of the window it counts) with its balance. Because both live in one
//! word, a writer that finds a slot still holding an old generation resets
//! and adds in a single compare-and-swap: no deposit can land between the
//! reset and the add and be lost, which a pair of separate atomics would
//! allow. Adding to a slot of the current generation is one atomic add.
//!
//! The generation is the number of whole slot widths since the window was
//! created. The slot index comes from the full 64-bit generation; the slot
//! stores its low [`GEN_BITS`] bits, compared modulo 2^28.
//!
//! Readings are not all the latest: a caller passes one it made a moment
//! ago, and another thread may have counted in a later slot since. So a
//! reader at a generation counts the slots less than [`SLOTS`] behind it
//! and, as well, those up to [`LATER`] ahead of it: what has been counted
//! since its reading. Without them a withdrawal at an older reading would
//! not see the withdrawals counted after it, nor its own when its slot had
//! moved on, and would be granted what the later slots had already spent.
//! Writers agree: a slot up to `LATER` ahead of a writer's generation is
//! later, and the writer adds to it; any other is older, and is reset. The
//! window also keeps the latest generation a slot was reset to, which a
//! withdrawal counts at when its reading is older (see
//! [`latest`](Window::latest)).
//!
//! Generations are told apart modulo 2^28 only. A slot idle for 2^28 slot
//! widths, less up to `LATER` (309 days at the shortest ttl of one second,
//! 50 years at the longest), reads as later or current: it counts again,
//! with what is added to it meanwhile, until the present is a window past
//! it, 29 hours at most at the shortest ttl. And a deposit at a reading
//! more than `LATER` slot widths (those 29 hours) behind a slot takes that
//! slot for older and resets it. Nothing else can make a stale slot count
//! or a later one not.
//!
//! Every access is sequentially consistent. A withdrawal writes one slot
//! and then reads the others; two withdrawals at readings a slot apart
//! write different slots, and each must see the other's write when it
//! reads, or both could spend the same balance. Acquire and release
//! orderings do not promise that for a write followed by a read of another
//! location; sequential consistency does. On x86 it compiles to the same
//! instructions (a locked add or compare-and-swap, plain loads), and on
//! ARMv8 to the same acquiring loads.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many slots the window has: Finagle's ten.
pub(super) const SLOTS: u64 = 10;

const GEN_BITS: u32 = 28;
const VALUE_BITS: u32 = 64 - GEN_BITS;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// How many generations a slot may be ahead of a reading and still count
/// as later than it rather than older: 2^20, far more than any reading
/// lags and far less than the 2^28 the stored generations wrap at.
const LATER: u64 = 1 << 20;

/// The largest balance one slot holds; sums past it saturate.
pub(super) const VALUE_MAX: i64 = (1 << (VALUE_BITS - 1)) - 1;
const VALUE_MIN: i64 = -(1 << (VALUE_BITS - 1));
/// Values are stored plus this bias, so that the stored field is never
/// negative and an atomic add within range never borrows from the
/// generation.
const BIAS: i64 = 1 << (VALUE_BITS - 1);
/// Below this magnitude, value and amount are added with one atomic add:
/// their sum stays far inside the field.
const FAST_LIMIT: i64 = 1 << (VALUE_BITS - 3);

/// An amount to [`add`](Window::add): less than 2^33 units in magnitude, as
/// every deposit (at most 10^7 units, at a ratio of 1000), withdrawal and
/// part of one is. Checked once, when it is made, not on every add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Amount(i64);

impl Amount {
    /// `units`, clamped to less than 2^33 in magnitude.
    pub(super) const fn new(units: i64) -> Self {
        let limit = FAST_LIMIT - 1;
        Self(if units > limit {
            limit
        } else if units < -limit {
            -limit
        } else {
            units
        })
    }

    pub(super) const fn units(self) -> i64 {
        self.0
    }
}

/// Where an [`add`](Window::add) was counted: a slot, and the generation
/// (its stored bits) the slot held then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mark {
    slot: u8,
    generation: u32,
}

impl Mark {
    fn new(slot: usize, generation: u64) -> Self {
        // A slot index is below SLOTS, and a stored generation below 2^28.
        Self {
            slot: slot as u8,
            generation: generation as u32,
        }
    }
}

#[derive(Debug)]
pub(super) struct Window {
    slots: [AtomicU64; SLOTS as usize],
    /// The latest generation a slot has been moved on to, in full: how far
    /// the window's clock has come. Written once per slot width, when a
    /// slot is reset, and never by the atomic add of the common case.
    latest: AtomicU64,
}

impl Window {
    pub(super) fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicU64::new(pack(0, 0))),
            latest: AtomicU64::new(0),
        }
    }

    /// Every slot's word and the latest generation, to tell whether the
    /// window was written to.
    #[cfg(test)]
    pub(super) fn words(&self) -> ([u64; SLOTS as usize], u64) {
        let words = self
            .slots
            .each_ref()
            .map(|slot| slot.load(Ordering::SeqCst));
        (words, self.latest())
    }

    /// The latest generation any slot has been moved on to. A withdrawal at
    /// an older reading counts there: in the slot of its reading, which may
    /// already have left the window of the latest, it would count for the
    /// reading's ttl only, and what it spent could be spent again.
    #[inline]
    pub(super) fn latest(&self) -> u64 {
        self.latest.load(Ordering::SeqCst)
    }

    /// Adds `amount` (which may be negative) to the slot of `generation`,
    /// resetting the slot first if it holds an older generation. Returns
    /// where the amount was counted, for [`take_back`](Self::take_back).
    #[inline]
    pub(super) fn add(&self, generation: u64, amount: Amount) -> Mark {
        let amount = amount.units();
        let index = slot_index(generation);
        let slot = &self.slots[index];
        let current = generation & GEN_MASK;
        // The common case, a slot of this generation far from its limits, is
        // one atomic add: the value is stored with a bias, so adding an
        // amount to it cannot carry into the generation bits. Another thread
        // may move the slot to another generation in between; the amount
        // then counts there, which is harmless, and the mark says so.
        // One comparison tells both: the word is at most 2 × FAST_LIMIT - 2
        // above that of this generation with a balance of 1 - FAST_LIMIT
        // exactly when it holds this generation and a balance within
        // ±FAST_LIMIT; any other generation is at least 2^35 away.
        let word = slot.load(Ordering::SeqCst);
        let low = pack(current, 1 - FAST_LIMIT);
        if word.wrapping_sub(low) < (2 * FAST_LIMIT - 1) as u64 {
            let previous = slot.fetch_add(amount as u64, Ordering::SeqCst);
            return Mark::new(index, previous >> VALUE_BITS);
        }
        let (mut counted, mut reset) = (current, false);
        // `fetch_update` retries the closure until its compare-and-swap wins;
        // the closure always returns `Some`, so the result is always `Ok`.
        let _ = slot.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
            let (stored, value) = unpack(word);
            reset = false;
            let word = if stored == current {
                pack(current, value.saturating_add(amount))
            } else if is_later(stored, current) {
                // This thread read the clock before another that has moved
                // the slot on since: count there rather than erase it.
                pack(stored, value.saturating_add(amount))
            } else {
                reset = true;
                pack(current, amount)
            };
            counted = word >> VALUE_BITS;
            Some(word)
        });
        if reset {
            self.latest.fetch_max(generation, Ordering::SeqCst);
        }
        Mark::new(index, counted)
    }

    /// Takes `amount` back out of the slot an [`add`](Self::add) counted it
    /// in, if that slot still counts the same generation. If it has moved
    /// on, the generation has left the window, and the amount with it:
    /// there is nothing left to take back. Either way the sum is then, at
    /// every later instant, what it would have been without the add
    /// (short of a slot that saturated in between).
    ///
    /// A compare-and-swap loop, so that a slot moved on between a read and
    /// a write never gets an amount meant for the generation before.
    pub(super) fn take_back(&self, mark: Mark, amount: i64) {
        let slot = &self.slots[usize::from(mark.slot)];
        let generation = u64::from(mark.generation);
        // `Err` means the slot moved on: nothing to take back.
        let _ = slot.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
            let (stored, value) = unpack(word);
            (stored == generation).then(|| pack(stored, value.saturating_sub(amount)))
        });
    }

    /// The sum of every slot that is less than a window old at `generation`,
    /// or later than it (see the [module docs](self)).
    ///
    /// Each slot holds less than 2^35 in magnitude, so ten of them add up
    /// without overflow, and without the checks of a saturating add.
    #[inline]
    pub(super) fn sum(&self, generation: u64) -> i64 {
        // A slot counts when `generation - stored` is in -LATER..SLOTS,
        // modulo 2^28: shifted by LATER, one comparison, as cheap as the
        // test for 0..SLOTS alone.
        let shifted = generation.wrapping_add(LATER) & GEN_MASK;
        // The bias comes off once per live slot, after the loop: fewer
        // instructions than unpacking each slot.
        let (biased, live) = self.slots.iter().fold((0_u64, 0_i64), |(sum, live), slot| {
            let word = slot.load(Ordering::SeqCst);
            let fresh = shifted.wrapping_sub(word >> VALUE_BITS) & GEN_MASK < SLOTS + LATER;
            let mask = u64::from(fresh).wrapping_neg();
            (sum + (word & VALUE_MASK & mask), live + i64::from(fresh))
        });
        // Ten biased values are below 2^40: the cast is exact.
        biased as i64 - live * BIAS
    }
}

fn slot_index(generation: u64) -> usize {
    // Less than SLOTS, so the cast cannot truncate.
    (generation % SLOTS) as usize
}

/// Whether generation `a` is later than `b`, both stored modulo 2^28: at
/// most [`LATER`] ahead, as [`Window::sum`] counts it.
fn is_later(a: u64, b: u64) -> bool {
    let ahead = a.wrapping_sub(b) & GEN_MASK;
    ahead != 0 && ahead <= LATER
}

fn pack(generation: u64, value: i64) -> u64 {
    // In range after the clamp, the biased value is within 0..2^36.
    let biased = (value.clamp(VALUE_MIN, VALUE_MAX) + BIAS) as u64;
    (generation << VALUE_BITS) | (biased & VALUE_MASK)
}

fn unpack(word: u64) -> (u64, i64) {
    let generation = word >> VALUE_BITS;
    // Within 0..2^36, so the cast is exact.
    let value = (word & VALUE_MASK) as i64 - BIAS;
    (generation, value)
}

#[cfg(test)]
mod tests;
