//! Carrying limit state over a reload.
//!
//! A reload that leaves a limit's settings alone must not refill it (see
//! the module docs), so the new policy takes over the old policy's
//! limiter, shared through its `Arc`, rather than copying its state: a
//! copy would miss the requests that the old policy still decides between
//! the copy and the swap. Times in a limiter count from its policy's
//! `start`, so the new policy takes that over too; a fresh limiter is
//! full on any clock.

use std::sync::Arc;

use super::LocalRateLimit;

impl LocalRateLimit {
    /// Takes over `old`'s limiters whose settings are this policy's: the
    /// total at the same rate, the identity limit at the same rate and
    /// capacity, and each override at the same rate for the same set of
    /// identities. `old` must be the same Server's. The others stay fresh.
    pub(crate) fn carry_over(&mut self, old: &Self) {
        self.start = old.start;
        if let (Some(new), Some(old)) = (&mut self.total, &old.total)
            && new.rate() == old.rate()
        {
            *new = Arc::clone(old);
        }
        if let (Some(new), Some(old)) = (&mut self.identity, &old.identity)
            && new.same_settings(old)
        {
            *new = Arc::clone(old);
        }
        for o in &mut self.overrides {
            // Of two old entries alike, the last is the one clients used.
            if let Some(prev) = old.overrides.iter().rev().find(|prev| {
                prev.limit.rate() == o.limit.rate() && prev.clients.same_identities(&o.clients)
            }) {
                o.limit = Arc::clone(&prev.limit);
            }
        }
    }
}
