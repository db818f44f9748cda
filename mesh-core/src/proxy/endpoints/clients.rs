//! The client of each endpoint a [`Forward`](super::super::Forward)
//! balances over.
//!
//! # Why
//!
//! A forwarded request must connect to the endpoint the balancer picked
//! and still name the authority its client asked for: HTTP/2 sends the
//! request URI's authority as `:authority`, and hyper-util's client
//! connects to that same authority. So each endpoint gets a client of its
//! own, whose connections all go to it
//! ([`ForEndpoint`]), and the URI is free to
//! name the authority (the [client docs](crate::client) say more).
//!
//! Making a client costs a few allocations and a pool; a request must not
//! pay that, nor a lookup by address. So the clients are made when their
//! endpoints join, kept in the balancer's order, and a request takes the
//! one at the index the balancer picked.
//!
//! # How
//!
//! [`Clients`] pairs a balancer with its endpoints' clients. A `Forward`
//! with fixed endpoints makes it once. One over an [`EndpointSet`] shares
//! it with its clones behind an `arc-swap`, as the set shares its
//! balancer: per request, one more atomic load tells whether it was made
//! for the set's current balancer. When it was not, the first request to
//! see the update makes it anew, keeping the client of every endpoint
//! that stayed (and with it its pooled connections) and making clients
//! for the new ones, and for any that left and came back since, which
//! the balancer starts afresh too. The client of an endpoint that left
//! is dropped once nothing holds the old pairing (the clones of the
//! `Forward` that have not sent since, and requests in flight); its
//! pool, and the idle connections in it, go with it.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use arc_swap::{ArcSwap, cache::Cache};

use super::{
    super::balance::{Balancer, EndpointConnects},
    EndpointSet,
};
use crate::client::ForEndpoint;

/// A balancer and one client per endpoint, in its order.
#[derive(Debug)]
pub(crate) struct Clients<C> {
    pub(crate) balancer: Arc<Balancer>,
    clients: Box<[C]>,
}

impl<C: ForEndpoint + Clone> Clients<C> {
    /// Clients for `balancer`'s endpoints, made from `client`.
    pub(crate) fn new(balancer: Arc<Balancer>, client: &C) -> Self {
        let clients = balancer
            .connects()
            .map(|e| client.for_endpoint_reporting(&e))
            .collect();
        Self { balancer, clients }
    }

    /// Clients for `balancer`'s endpoints: this pairing's client for each
    /// endpoint it has, one made from `client` for each other.
    ///
    /// An endpoint is the one this pairing has when the balancer kept it,
    /// not merely when its address is the same: one that left and came
    /// back between two requests is a fresh endpoint in the balancer, and
    /// the client made for the one that left would report its connects
    /// to that one, which no request is drawn to.
    fn update(&self, balancer: Arc<Balancer>, client: &C) -> Self {
        let kept: HashMap<SocketAddr, (EndpointConnects, &C)> = self
            .balancer
            .connects()
            .zip(&*self.clients)
            .map(|(e, c)| (e.addr(), (e, c)))
            .collect();
        let clients = balancer
            .connects()
            .map(|e| match kept.get(&e.addr()) {
                Some((was, kept)) if was.is(&e) => (*kept).clone(),
                _ => client.for_endpoint_reporting(&e),
            })
            .collect();
        Self { balancer, clients }
    }
}

impl<C> Clients<C> {
    /// The client of endpoint `i`, in the balancer's order.
    pub(crate) fn get(&self, i: usize) -> Option<&C> {
        self.clients.get(i)
    }
}

/// How a `Forward` reads its balancer and its endpoints' clients.
#[derive(Debug)]
pub(crate) enum Bound<C> {
    /// Endpoints fixed at construction: nothing to check per request.
    Fixed(Arc<Clients<C>>),
    /// An [`EndpointSet`], and the pairing its `Forward` and clones share.
    Shared {
        set: Cache<Arc<ArcSwap<Balancer>>, Arc<Balancer>>,
        clients: Cache<Arc<ArcSwap<Clients<C>>>, Arc<Clients<C>>>,
    },
}

impl<C> Clone for Bound<C> {
    fn clone(&self) -> Self {
        match self {
            Self::Fixed(clients) => Self::Fixed(clients.clone()),
            Self::Shared { set, clients } => Self::Shared {
                set: set.clone(),
                clients: clients.clone(),
            },
        }
    }
}

impl<C: ForEndpoint + Clone> Bound<C> {
    /// The clients of `set`'s endpoints, made from `client` as they join.
    pub(crate) fn shared(set: &EndpointSet, client: &C) -> Self {
        let current = set.current.load_full();
        let clients = Arc::new(ArcSwap::from_pointee(Clients::new(current, client)));
        Self::Shared {
            set: Cache::new(set.current.clone()),
            clients: Cache::new(clients),
        }
    }

    /// The balancer to pick this request's endpoint from, with its
    /// endpoints' clients, made anew from `client` if the set changed
    /// since the last request of this `Forward` or a clone.
    #[inline]
    pub(crate) fn current(&mut self, client: &C) -> &Arc<Clients<C>> {
        match self {
            Self::Fixed(clients) => clients,
            Self::Shared { set, clients } => {
                let balancer = set.load();
                if !Arc::ptr_eq(&clients.load().balancer, balancer) {
                    // Made for the set's latest balancer, read again: a
                    // clone that read an older one must not move the
                    // pairing back to it.
                    let set = set.arc_swap();
                    clients.arc_swap().rcu(|now| {
                        let latest = set.load_full();
                        if Arc::ptr_eq(&now.balancer, &latest) {
                            now.clone()
                        } else {
                            Arc::new(now.update(latest, client))
                        }
                    });
                }
                clients.load()
            }
        }
    }
}

impl<C> Bound<C> {
    /// The balancer now in force.
    pub(crate) fn peek(&self) -> Arc<Balancer> {
        match self {
            Self::Fixed(clients) => clients.balancer.clone(),
            Self::Shared { set, .. } => set.arc_swap().load_full(),
        }
    }
}

/// The stand-ins unit tests forward through: each answers for every
/// endpoint alike, and sees the endpoint in an HTTP/1 request's URI.
#[cfg(test)]
mod for_tests {
    use std::net::SocketAddr;

    use crate::client::ForEndpoint;

    impl<F: Clone> ForEndpoint for tower::util::ServiceFn<F> {
        fn for_endpoint(&self, _: SocketAddr) -> Self {
            self.clone()
        }
    }

    impl ForEndpoint for () {
        fn for_endpoint(&self, _: SocketAddr) -> Self {}
    }
}
