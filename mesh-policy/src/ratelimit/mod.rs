//! Rate limits on the requests a Server admits: Linkerd's
//! `HTTPLocalRateLimitPolicy`.
//!
//! Authorization says who may call a Server; a rate limit says how often,
//! so that one busy or misbehaving client cannot take all of a workload's
//! capacity. A Server's limit is checked after its request is allowed, as
//! linkerd2-proxy does (`check_rate_limit` in its inbound HTTP policy):
//!
//! 1. the `total` limit, shared by every request to the Server;
//! 2. then, for a client with an identity that an `overrides` entry names,
//!    that override's limit (one limit shared by the clients the entry
//!    names, as in linkerd2-proxy) and nothing else. A client named by
//!    several entries meets the last of them: linkerd2-proxy collects the
//!    entries, in order, into a map from identity to limit, so a later
//!    entry replaces an earlier one;
//! 3. otherwise the `identity` limit, one per client identity, with every
//!    client without an identity sharing one.
//!
//! A request over a limit is answered by
//! [`Authorize`](crate::Authorize) with 429 (gRPC: `grpc-status: 8`,
//! `RESOURCE_EXHAUSTED`), Linkerd's `rate_limited` response, and never
//! reaches the service. A request refused by a client's limit has already
//! used a share of the total, as with linkerd2-proxy's limiters.
//!
//! Finding a client's override must not cost a walk over the entries: a
//! policy may name many service accounts, and every request of every
//! client would pay for the walk, the clients no entry names most of all,
//! since each entry has to be looked at to learn that. So when a policy is
//! compiled, the entries' identities go into one map, from identity to the
//! entry that applies, and a request does one hash lookup, without
//! allocating, as linkerd2-proxy does with its map of overrides. Entries
//! name service accounts, so their identities are exact, never patterns
//! that a map could not hold.
//!
//! A refusal is counted in `inbound_http_local_ratelimit_total`, with
//! linkerd2-proxy's labels that a policy fixes (the Server's group, kind,
//! name and port, the policy's, the scope, `tls`); the counters are
//! resolved when the policy is compiled. Its labels of the connection
//! (`target_addr`, `target_ip`, `target_port`, `client_id`,
//! `no_tls_reason`) are not given: see
//! [`PolicyMetrics::register`](crate::PolicyMetrics::register) for why.
//!
//! Each limit admits a burst of one second's requests and then one request
//! per `1/rps` seconds (see `gcra.rs`). Time is
//! [`tokio::time::Instant`], so tests can pause it. Limits start full when
//! a policy is compiled.
//!
//! A reload must not refill them. Policies reload whenever any policy file
//! changes, so a limit that started afresh at each reload would let every
//! client burst again after an unrelated edit, and a client could time its
//! requests to reloads. Each limiter therefore lives in an `Arc`, and when
//! the store puts a new policy in force (see `carry.rs`) a limit whose
//! settings did not change takes over the old policy's limiter itself: the
//! same Server (by name), the same scope and the same rate, and for an
//! override the same set of client identities. Old and new policy then
//! share one state, so requests still deciding on the old policy count
//! against the same limit. Limits whose settings changed, and new ones,
//! start full. This happens once per reload; checking a request does the
//! same work as ever, reaching each limiter through its `Arc`.

mod carry;
mod gcra;
mod identities;

use std::{collections::HashMap, error::Error, fmt, num::NonZeroU32, sync::Arc};

use mesh_core::Identity;
use tokio::time::Instant;

pub(crate) use self::{
    gcra::{Gcra, Rate},
    identities::{DEFAULT_CAPACITY, PerIdentity},
};
use crate::{evaluate::Client, metrics::ByTls, policy::IdentitySet};

/// A request was over a rate limit of its Server. Authorization answers it
/// with 429, or gRPC `RESOURCE_EXHAUSTED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    scope: RateLimitScope,
    requests_per_second: u32,
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitScope {
    /// `spec.total`: every client of the Server together.
    Total,
    /// `spec.identity`: the client's own limit (or, without an identity,
    /// the one unauthenticated clients share).
    Identity,
    /// An `spec.overrides` entry that names the client.
    Override,
}

impl RateLimited {
    /// Which limit refused the request.
    pub fn scope(&self) -> RateLimitScope {
        self.scope
    }

    /// That limit's rate.
    pub fn requests_per_second(&self) -> u32 {
        self.requests_per_second
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            RateLimitScope::Total => "total",
            RateLimitScope::Identity => "per-identity",
            RateLimitScope::Override => "override",
        };
        write!(
            f,
            "{scope} rate limit exceeded: {}rps",
            self.requests_per_second
        )
    }
}

impl Error for RateLimited {}

/// The compiled `HTTPLocalRateLimitPolicy` of one Server, with its state.
#[derive(Debug)]
pub(crate) struct LocalRateLimit {
    pub(crate) name: Arc<str>,
    /// The zero of the limits' clocks.
    start: Instant,
    /// The limiters are shared with the policies before and after this
    /// one while their settings stay the same (see `carry.rs`).
    total: Option<Arc<Gcra>>,
    identity: Option<Arc<PerIdentity>>,
    /// In document order.
    overrides: Vec<Override>,
    /// Each identity an override names, with the index in `overrides` of
    /// the last entry naming it: the one that applies, as in
    /// linkerd2-proxy, which collects the entries into a map from identity
    /// to limit in order, so a later entry replaces an earlier one. Built
    /// once, so a request finds its override in one lookup.
    by_client: HashMap<Arc<str>, usize>,
    pub(crate) counters: Counters,
    /// Override entries looked at to find a client's, for tests of its
    /// cost.
    #[cfg(test)]
    probes: std::sync::atomic::AtomicU64,
}

/// One `spec.overrides` entry that names clients.
#[derive(Debug)]
pub(crate) struct Override {
    /// Its place in `spec.overrides`, which names it: entries have no
    /// names of their own.
    pub(crate) index: usize,
    /// The identities it names, which a reload compares.
    pub(crate) clients: IdentitySet,
    /// The same, as the keys of [`LocalRateLimit`]'s map. Entries name
    /// service accounts, so these are exact identities (both forms of
    /// each), never patterns: a hash lookup finds every client an entry
    /// limits.
    names: Box<[Arc<str>]>,
    pub(crate) limit: Arc<Gcra>,
}

impl Override {
    /// Entry `index`, limiting `clients` together to `rps`, full.
    pub(crate) fn new(index: usize, clients: &[Identity], rps: NonZeroU32) -> Self {
        let mut set = IdentitySet::default();
        clients.iter().for_each(|id| set.add(id));
        Self {
            index,
            clients: set,
            names: clients.iter().map(|id| id.as_str().into()).collect(),
            limit: Arc::new(Gcra::new(Rate::per_second(rps))),
        }
    }
}

/// The limits a request would meet, in the order they are checked: what
/// an explanation shows, read without using any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Applicable {
    /// `spec.total`'s rate.
    pub(crate) total: Option<u32>,
    /// The client's own limit.
    pub(crate) client: Option<ClientLimit>,
}

/// The limit of the client's own that a request would meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientLimit {
    /// `spec.overrides[index]`, at `rps`.
    Override { index: usize, rps: u32 },
    /// `spec.identity`, at `rps`: the client's own, or for a client
    /// without an identity the one such clients share.
    Identity { rps: u32 },
}

/// `inbound_http_local_ratelimit_total` by scope, resolved once.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) total: ByTls,
    pub(crate) identity: ByTls,
}

impl LocalRateLimit {
    pub(crate) fn new(
        name: Arc<str>,
        total: Option<NonZeroU32>,
        identity: Option<(NonZeroU32, usize)>,
        overrides: Vec<Override>,
        counters: Counters,
    ) -> Self {
        let mut by_client = HashMap::new();
        for (at, o) in overrides.iter().enumerate() {
            for name in &o.names {
                by_client.insert(Arc::clone(name), at);
            }
        }
        Self {
            name,
            start: Instant::now(),
            total: total.map(|rps| Arc::new(Gcra::new(Rate::per_second(rps)))),
            identity: identity
                .map(|(rps, cap)| Arc::new(PerIdentity::new(Rate::per_second(rps), cap))),
            overrides,
            by_client,
            counters,
            #[cfg(test)]
            probes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Admits a request of `client`, or says which limit it is over and
    /// counts it.
    pub(crate) fn check(&self, client: &Client<'_>) -> Result<(), RateLimited> {
        let now = u64::try_from(
            Instant::now()
                .saturating_duration_since(self.start)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let result = self.decide(client.identity(), now);
        if let Err(limited) = &result {
            let counters = match limited.scope {
                RateLimitScope::Total => &self.counters.total,
                RateLimitScope::Identity | RateLimitScope::Override => &self.counters.identity,
            };
            counters.get(client.tls).inc();
        }
        result
    }

    /// The limits a request of `id` would meet, without checking any: the
    /// choice [`decide`](Self::decide) makes.
    pub(crate) fn applicable(&self, id: Option<&Identity>) -> Applicable {
        let client = match id.and_then(|id| self.override_for(id)) {
            Some(o) => Some(ClientLimit::Override {
                index: o.index,
                rps: o.limit.rate().requests_per_second(),
            }),
            None => self.identity.as_ref().map(|limit| ClientLimit::Identity {
                rps: limit.rate().requests_per_second(),
            }),
        };
        Applicable {
            total: self.total.as_ref().map(|t| t.rate().requests_per_second()),
            client,
        }
    }

    /// The last override that names `id`: one hash lookup.
    #[inline]
    fn override_for(&self, id: &Identity) -> Option<&Override> {
        #[cfg(test)]
        self.probes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let at = *self.by_client.get(id.as_str())?;
        self.overrides.get(at)
    }

    #[cfg(test)]
    pub(crate) fn probes(&self) -> u64 {
        self.probes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn decide(&self, id: Option<&Identity>, now: u64) -> Result<(), RateLimited> {
        let refused = |scope, rate: Rate| RateLimited {
            scope,
            requests_per_second: rate.requests_per_second(),
        };
        if let Some(total) = &self.total
            && !total.check(now)
        {
            return Err(refused(RateLimitScope::Total, total.rate()));
        }
        if let Some(o) = id.and_then(|id| self.override_for(id)) {
            if o.limit.check(now) {
                return Ok(());
            }
            return Err(refused(RateLimitScope::Override, o.limit.rate()));
        }
        match &self.identity {
            Some(limit) if !limit.check(id, now) => {
                Err(refused(RateLimitScope::Identity, limit.rate()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
