//! The `identity` limit: one GCRA per client identity, in a bounded map.
//!
//! Identities come from certificates the mesh has verified, but a large
//! mesh, or a compromised workload of a wildcard-trusted domain, can still
//! present many. So the map holds at most `capacity` identities (10 000 by
//! default, a few hundred kilobytes). An entry whose TAT has passed is
//! idle: its limit is full, exactly as for an identity never seen, so
//! dropping it changes no decision. When the map is full, idle entries
//! are dropped; if every entry is still active, the new identity shares
//! one overflow limit with the others that did not fit, rather than going
//! unlimited. Clients without an identity share one limit, as in
//! linkerd2-proxy (its keyed limiter's `None` key).
//!
//! The map sits behind a mutex held for one hash lookup and a few
//! arithmetic steps; only the first request of a new identity allocates.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use mesh_core::Identity;

use super::gcra::{Gcra, Rate};

/// How many identities a limit tracks at once by default.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug)]
pub(crate) struct PerIdentity {
    rate: Rate,
    capacity: usize,
    anonymous: Gcra,
    overflow: Gcra,
    clients: Mutex<Clients>,
}

#[derive(Debug, Default)]
struct Clients {
    tats: HashMap<Box<str>, u64>,
    /// No entry can be idle before this time, so a full map is not swept
    /// again until then: the earliest TAT of the entries a sweep kept and
    /// of those added since.
    next_sweep: u64,
}

impl PerIdentity {
    pub(crate) fn new(rate: Rate, capacity: usize) -> Self {
        Self {
            rate,
            capacity,
            anonymous: Gcra::new(rate),
            overflow: Gcra::new(rate),
            clients: Mutex::new(Clients::default()),
        }
    }

    pub(crate) fn rate(&self) -> Rate {
        self.rate
    }

    /// Whether `other` limits at the same rate and tracks as many
    /// identities, so that one could take the other's place.
    pub(crate) fn same_settings(&self, other: &Self) -> bool {
        self.rate == other.rate && self.capacity == other.capacity
    }

    /// Admits a request of `client` at `now`, or says it is over the limit.
    pub(crate) fn check(&self, client: Option<&Identity>, now: u64) -> bool {
        let Some(id) = client else {
            return self.anonymous.check(now);
        };
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = clients.tats.get_mut(id.as_str()) {
            return match self.rate.admit(*tat, now) {
                Some(next) => {
                    *tat = next;
                    true
                }
                None => false,
            };
        }
        if clients.tats.len() >= self.capacity {
            clients.sweep(now);
        }
        if clients.tats.len() >= self.capacity {
            drop(clients);
            return self.overflow.check(now);
        }
        // A new identity starts with a full burst, and this request uses
        // one of it.
        let Some(next) = self.rate.admit(0, now) else {
            return false;
        };
        clients.tats.insert(id.as_str().into(), next);
        // It may go idle before every entry a sweep kept.
        clients.next_sweep = clients.next_sweep.min(next);
        true
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tats
            .len()
    }
}

impl Clients {
    /// Drops idle entries, unless none can be idle yet.
    fn sweep(&mut self, now: u64) {
        if now < self.next_sweep {
            return;
        }
        self.tats.retain(|_, tat| *tat > now);
        self.next_sweep = self.tats.values().copied().min().unwrap_or(0);
    }
}
