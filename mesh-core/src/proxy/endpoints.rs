//! A set of endpoints that changes while requests flow.
//!
//! # Why
//!
//! In Kubernetes a service's pods come and go, and their addresses with
//! them. A balancer fixed at start keeps sending requests to addresses
//! that no longer serve, and never to the new ones. An [`EndpointSet`] is
//! a handle on the endpoints of one [`Forward`](super::Forward) (and its
//! clones): whoever learns the new addresses, a DNS
//! [resolver](super::resolve) say, [updates](EndpointSet::update) the set,
//! and the next request is balanced over it.
//!
//! # How
//!
//! The set holds the current [balancer](super::balance) behind an
//! `arc-swap`. An update builds a new balancer and swaps it in; the
//! writer pays. Each `Forward` keeps the balancer it last saw and, per
//! request, compares it with the current one: one relaxed atomic load
//! while nothing changes.
//!
//! A `Forward` keeps a client for each endpoint, made when the endpoint
//! joins and dropped after it leaves, and checks with one more atomic load
//! that its clients are those of the set's balancer (the `clients` module).
//!
//! An endpoint that stays across an update keeps its latency estimate,
//! its requests in flight, its [failure accrual](super::accrual)
//! state and its [connect backoff](super::balance::reconnect): it is the
//! same endpoint. A new one starts fresh, as at start.
//! One that left gets no new request; those already sent to it finish.
//!
//! An update to no endpoints at all is refused, and the set keeps the
//! ones it has: an empty DNS answer is far more often a hiccup than a
//! service that is gone, and routing nowhere would turn the hiccup into
//! an outage. A set can start empty, though, when its first endpoints are
//! not known yet; until they are, requests wait for them, as when
//! failure accrual has taken every endpoint out, and after the fail-fast
//! timeout (3 s by default) get the mesh's `503` (`mesh-error: service in
//! fail-fast`), and the requests after them `service unavailable` at
//! once, until endpoints come ([`queue`](super::queue)).
//! The connections of a [`ForwardTcp`](super::ForwardTcp) over the set
//! wait the same way, and are closed where a request would get the
//! `503`. An update wakes the requests and connections waiting.

use std::{net::SocketAddr, sync::Arc};

use arc_swap::{ArcSwap, cache::Cache};

use super::{
    accrual::FailureAccrual,
    balance::{Balancer, BalancerView, ConnectBackoff},
    forward::NoEndpoints,
    queue::Queue,
};

/// The endpoints a [`Forward`](super::Forward) balances over, replaceable
/// while it runs. Clones share the set. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct EndpointSet {
    current: Arc<ArcSwap<Balancer>>,
}

impl EndpointSet {
    /// A set of `endpoints` (each once, in the order given).
    ///
    /// # Errors
    ///
    /// [`NoEndpoints`] when `endpoints` is empty.
    pub fn new(endpoints: impl IntoIterator<Item = SocketAddr>) -> Result<Self, NoEndpoints> {
        Ok(Self::from_balancer(Balancer::non_empty(endpoints)?))
    }

    /// A set whose endpoints are not known yet. Requests and connections
    /// wait for the first [`update`](Self::update), then fail fast (see
    /// [`queue`](super::queue)).
    pub fn empty() -> Self {
        Self::from_balancer(Balancer::new([], None))
    }

    fn from_balancer(balancer: Balancer) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(balancer)),
        }
    }

    /// Takes endpoints whose responses keep failing out for a while, as
    /// `accrual` says (see [`accrual`](super::accrual)). Off by default.
    ///
    /// The set returned starts fresh and is not shared with clones of
    /// `self`: set this before handing the set out.
    #[must_use]
    pub fn with_failure_accrual(self, accrual: FailureAccrual) -> Self {
        Self::from_balancer(self.current.load().with_accrual(Some(accrual)))
    }

    /// Backs off an endpoint whose HTTP/2 connect failed as `backoff`
    /// says, rather than Linkerd's 100 ms doubling to 60 s (see
    /// [`reconnect`](super::balance::reconnect)).
    ///
    /// The set returned starts fresh and is not shared with clones of
    /// `self`: set this before handing the set out.
    #[must_use]
    pub fn with_connect_backoff(self, backoff: ConnectBackoff) -> Self {
        Self::from_balancer(self.current.load().with_connect_backoff(backoff))
    }

    /// Has requests (and the connections of a
    /// [`ForwardTcp`](super::ForwardTcp)) that find no endpoint ready wait
    /// for one as `queue` says, then fail fast (see
    /// [`queue`](super::queue)). By default they wait as Linkerd's do: up
    /// to 10 000 of them, for 3 s.
    ///
    /// The set returned starts fresh and is not shared with clones of
    /// `self`: set this before handing the set out.
    #[must_use]
    pub fn with_queue(self, queue: Queue) -> Self {
        Self::from_balancer(self.current.load().with_queue(queue))
    }

    /// Replaces the endpoints with `endpoints`, keeping the state of those
    /// that stay. Returns whether the set changed (the same endpoints in
    /// another order are the same set).
    ///
    /// # Errors
    ///
    /// [`NoEndpoints`] when `endpoints` is empty: the set keeps the
    /// endpoints it has, and a warning is logged.
    pub fn update(
        &self,
        endpoints: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<bool, NoEndpoints> {
        let mut endpoints: Vec<SocketAddr> = endpoints.into_iter().collect();
        if endpoints.is_empty() {
            tracing::warn!(
                kept = self.current.load().len(),
                "an update without endpoints is ignored; the last ones stay"
            );
            return Err(NoEndpoints);
        }
        endpoints.sort_unstable();
        endpoints.dedup();
        let mut changed = false;
        let updated = self.current.rcu(|current| {
            let mut now: Vec<SocketAddr> = current.addrs().collect();
            now.sort_unstable();
            changed = now != endpoints;
            if changed {
                Arc::new(current.update(endpoints.iter().copied()))
            } else {
                current.clone()
            }
        });
        if changed {
            // `rcu` returns the balancer it replaced; the gate is shared.
            let now = self.current.load();
            updated.gate().wake(now.any_ready());
        }
        Ok(changed)
    }

    /// The endpoints now in the set, in order.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.current.load().addrs().collect()
    }

    /// How many endpoints are in the set now.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// Whether the set is still waiting for its first endpoints.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A view of the set's balancer, whichever is current when read, for
    /// metrics: see [`EndpointGauges`](super::balance::EndpointGauges).
    /// It holds the set weakly, and reading it costs requests nothing.
    pub fn view(&self) -> BalancerView {
        BalancerView::shared(&self.current)
    }

    /// A reader of the set for one `ForwardTcp`.
    pub(crate) fn reader(&self) -> Reader {
        Reader::Shared(Cache::new(self.current.clone()))
    }
}

/// How a [`ForwardTcp`](super::ForwardTcp) reads its balancer: one that
/// never changes, or the latest of a shared set. (A `Forward` reads its
/// balancer with its endpoints' clients: [`clients`].)
#[derive(Clone, Debug)]
pub(crate) enum Reader {
    /// Endpoints fixed at construction: nothing to check per request.
    Fixed(Arc<Balancer>),
    /// An [`EndpointSet`], checked for a change with one atomic load.
    Shared(Cache<Arc<ArcSwap<Balancer>>, Arc<Balancer>>),
}

impl Reader {
    /// The balancer to pick this request's endpoint from.
    #[inline]
    pub(crate) fn current(&mut self) -> &Arc<Balancer> {
        match self {
            Self::Fixed(balancer) => balancer,
            Self::Shared(cache) => cache.load(),
        }
    }

    /// The balancer now in force.
    pub(crate) fn peek(&self) -> Arc<Balancer> {
        match self {
            Self::Fixed(balancer) => balancer.clone(),
            Self::Shared(cache) => cache.arc_swap().load_full(),
        }
    }
}

pub(crate) mod clients;
#[cfg(test)]
mod tests;
