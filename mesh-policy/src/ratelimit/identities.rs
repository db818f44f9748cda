//! The `identity` limit: one GCRA per client identity, in a bounded map.
//!
//! Identities come from certificates the mesh has verified, but a large
//! mesh, or a compromised workload of a wildcard-trusted domain, can still
//! present many. So the map holds at most `capacity` identities (10 000 by
//! default: about 1.5 MB with identities of the usual length, the map,
//! the heap below and the names together; an identity's name is at most
//! 2 KiB, so never more than about 22 MB). An entry whose TAT has passed is
//! idle: its limit is full, exactly as for an identity never seen, so
//! dropping it changes no decision. When the map is full, idle entries
//! are dropped; if every entry is still active, the new identity shares
//! one overflow limit with the others that did not fit, rather than going
//! unlimited. Clients without an identity share one limit, as in
//! linkerd2-proxy (its keyed limiter's `None` key).
//!
//! Finding the idle entries must not cost a pass over the map: with the
//! map full, every new identity would pay for one under the mutex that
//! every identity's requests take, and a client cycling through a few
//! more identities than the map holds would make each of its requests
//! thousands of steps of work for all of them. So the entries are also
//! kept in a heap by TAT, earliest first, checked lazily: a request
//! moves only its map entry's TAT on, and making room pops the heap while
//! its top is due, dropping entries that are idle and putting back, under
//! their TAT now, those a request has moved on. Each pop is paid for by
//! the request that added or moved the entry, so the work is a few steps
//! per request.
//!
//! The map sits behind a mutex held for one hash lookup and a few
//! arithmetic steps; only the first request of a new identity allocates.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{Arc, Mutex, PoisonError},
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
    tats: HashMap<Arc<str>, u64>,
    /// Each tracked identity once, under the TAT it had when it was put
    /// here, earliest on top. A TAT only moves on, so an identity's TAT is
    /// at or after the one it has here: while the top one is still ahead
    /// of now, no entry is idle.
    by_tat: BinaryHeap<Reverse<(u64, Arc<str>)>>,
    /// Entries looked at to make room, for tests of its cost.
    #[cfg(test)]
    examined: u64,
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
            clients.drop_idle(now);
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
        let id: Arc<str> = Arc::from(id.as_str());
        clients.tats.insert(Arc::clone(&id), next);
        clients.by_tat.push(Reverse((next, id)));
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

    #[cfg(test)]
    pub(crate) fn is_tracked(&self, id: &Identity) -> bool {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tats
            .contains_key(id.as_str())
    }

    #[cfg(test)]
    pub(crate) fn examined(&self) -> u64 {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .examined
    }
}

impl Clients {
    /// Drops every idle entry. Each entry looked at is dropped, or put
    /// back under its TAT now, which a request of its identity moved on
    /// since it was put there; so the work is paid for by the requests
    /// that added and used entries, a few steps each, and is never a pass
    /// over the whole map.
    fn drop_idle(&mut self, now: u64) {
        while let Some(Reverse((tat, _))) = self.by_tat.peek()
            && *tat <= now
        {
            let Some(Reverse((_, id))) = self.by_tat.pop() else {
                break;
            };
            #[cfg(test)]
            {
                self.examined += 1;
            }
            match self.tats.get(&*id) {
                Some(&current) if current > now => self.by_tat.push(Reverse((current, id))),
                _ => {
                    self.tats.remove(&*id);
                }
            }
        }
    }
}
