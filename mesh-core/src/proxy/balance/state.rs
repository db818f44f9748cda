//! What a balancer thinks of its endpoints, read when asked (a metrics
//! scrape, say) rather than counted as requests flow.
//!
//! The balancer already keeps, per endpoint, what a reader needs: the end
//! of its failure-accrual penalty, if it is out, and whether it backs off
//! a failed connect. A [`BalancerView`] holds
//! a weak reference to the balancer and reads that on demand, so watching
//! a balancer adds nothing to a request, and a view outlives nothing: once
//! every `Forward` and set over the balancer is gone, the view reads
//! `None`.

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, Weak},
};

use arc_swap::ArcSwap;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

use super::Balancer;
use crate::proxy::queue::Gate;

/// Where an endpoint stands with its balancer.
///
/// These are the states [failure accrual](crate::proxy::accrual) moves an
/// endpoint through, and `Pending`, for one backing off a failed HTTP/2
/// connect ([`reconnect`](super::reconnect)); without either, every
/// endpoint is `Ready`. Linkerd's proxy reports two states, `ready` and
/// `pending`: our `Ready` is its `ready`, our `Pending` its `pending` for
/// an endpoint that reconnects, and `Failing` and `Probing` are what its
/// `pending` holds for an endpoint its circuit breaker has shut.
///
/// The order is by how far the endpoint is from taking requests:
/// `Ready < Probing < Pending < Failing`. An endpoint out for both is
/// `Failing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointState {
    /// In rotation: drawn for requests.
    Ready,
    /// Its penalty is over, and the next request to reach it (or the one
    /// in flight) is its probe: a success puts it back, a failure takes
    /// it out again for longer.
    Probing,
    /// Backing off a failed HTTP/2 connect, or past the backoff with its
    /// next connect not known to succeed yet: no request is sent to it
    /// but that connect's.
    Pending,
    /// Out for a failure-accrual penalty: no request is sent to it.
    Failing,
}

impl EndpointState {
    /// Every state, in order.
    pub const ALL: [Self; 4] = [Self::Ready, Self::Probing, Self::Pending, Self::Failing];

    /// The state's name as a metric label value: `ready`, `probing`,
    /// `pending` or `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Probing => "probing",
            Self::Pending => "pending",
            Self::Failing => "failing",
        }
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for EndpointState {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// A read-only, weak view of one balancer's endpoints: the balancer of a
/// [`Forward`](crate::proxy::Forward) with fixed endpoints
/// ([`Forward::balancer_view`](crate::proxy::Forward::balancer_view)), or
/// the latest one of an [`EndpointSet`](crate::proxy::EndpointSet)
/// ([`EndpointSet::view`](crate::proxy::EndpointSet::view)). See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct BalancerView(Source);

#[derive(Clone, Debug)]
enum Source {
    Fixed(Weak<Balancer>),
    Shared(Weak<ArcSwap<Balancer>>),
}

impl BalancerView {
    pub(crate) fn fixed(balancer: &Arc<Balancer>) -> Self {
        Self(Source::Fixed(Arc::downgrade(balancer)))
    }

    pub(crate) fn shared(set: &Arc<ArcSwap<Balancer>>) -> Self {
        Self(Source::Shared(Arc::downgrade(set)))
    }

    /// Each endpoint's address and state now, in the balancer's order;
    /// `None` once nothing balances over it any more.
    pub fn endpoints(&self) -> Option<Vec<(SocketAddr, EndpointState)>> {
        match &self.0 {
            Source::Fixed(balancer) => Some(balancer.upgrade()?.states()),
            Source::Shared(set) => Some(set.upgrade()?.load().states()),
        }
    }

    /// The balancer's queue, shared by every balancer of a set; `None`
    /// once nothing balances over it any more.
    pub(crate) fn gate(&self) -> Option<Arc<Gate>> {
        match &self.0 {
            Source::Fixed(balancer) => Some(balancer.upgrade()?.gate().clone()),
            Source::Shared(set) => Some(set.upgrade()?.load().gate().clone()),
        }
    }

    /// Whether anything still balances over the balancer.
    pub fn is_live(&self) -> bool {
        match &self.0 {
            Source::Fixed(balancer) => balancer.strong_count() > 0,
            Source::Shared(set) => set.strong_count() > 0,
        }
    }
}
