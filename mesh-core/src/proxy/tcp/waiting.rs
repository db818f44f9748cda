//! A connection, or a `CONNECT`, waiting for an endpoint to be ready, as
//! a request does (see [`queue`](crate::proxy::queue)).
//!
//! Linkerd queues opaque connections in front of its TCP balancer as it
//! queues HTTP requests, with a capacity and fail-fast timeout of their
//! own (`LINKERD2_PROXY_OUTBOUND_TCP_QUEUE_CAPACITY` and
//! `LINKERD2_PROXY_OUTBOUND_TCP_FAILFAST_TIMEOUT` in linkerd2-proxy's
//! `linkerd/app/src/env.rs`, 10 000 and 3 s by default): a client that
//! connects while its service's name has not resolved yet, or while
//! failure accrual has every endpoint out, is held a moment rather than
//! cut off. Only a connection that found no endpoint ready gets here; one
//! that did pays nothing for it.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use super::ForwardTcp;
use crate::proxy::{
    balance::{Pending, Picked},
    queue::{Place, Refused, Woken},
};

/// What a waiting connection holds: the forwarder to connect with once an
/// endpoint is ready (its connector already driven to readiness), and its
/// place in the queue, given back when this is dropped.
pub(super) struct Waiting<C> {
    pub(super) forward: ForwardTcp<C>,
    place: Place,
    wait: Option<Pin<Box<dyn Future<Output = Woken> + Send>>>,
}

impl<C> Waiting<C> {
    /// A place in the queue of `forward`'s balancer for a connection that
    /// found no endpoint ready, or why it is refused at once.
    pub(super) fn admit(mut forward: ForwardTcp<C>) -> Result<Self, Refused> {
        let gate = forward.endpoints.current().gate().clone();
        let place = gate.admit()?;
        Ok(Self {
            forward,
            place,
            wait: None,
        })
    }

    /// The endpoint picked once one is ready, with the connect to count
    /// against it, or why the connection is refused: the service went
    /// into fail-fast.
    pub(super) fn poll_pick(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Picked, Option<Pending>), Refused>> {
        loop {
            if let Some(wait) = self.wait.as_mut() {
                let woken = std::task::ready!(wait.as_mut().poll(cx));
                self.wait = None;
                if woken == Woken::FailFast {
                    return Poll::Ready(Err(Refused::FailFast));
                }
            }
            let gate = self.place.gate().clone();
            // Read before trying, so that an endpoint that comes between
            // the try and the wait is not missed.
            let seen = gate.generation();
            let balancer = self.forward.endpoints.current();
            if let Some(picked) = balancer.pick_connection() {
                return Poll::Ready(Ok(picked));
            }
            if gate.in_failfast() {
                return Poll::Ready(Err(Refused::FailFast));
            }
            let retry_at = balancer.next_change();
            self.wait = Some(Box::pin(gate.wait(seen, retry_at)));
        }
    }
}

/// Logs why a connection found no endpoint ready: it waits for one.
pub(super) fn log_none_ready(endpoints: usize, peer: SocketAddr) {
    let why = match endpoints {
        0 => "none yet",
        _ => "every one is out for failing, or probing",
    };
    tracing::debug!(%peer, endpoints, "no endpoint to connect to ({why}); waiting for one");
}

/// Logs why a connection that found no endpoint ready is refused.
pub(super) fn log_refused(refused: Refused, peer: Option<SocketAddr>) {
    let why = match refused {
        Refused::FailFast => {
            "the service went into fail-fast: no endpoint has been ready \
                              for the fail-fast timeout"
        }
        Refused::Unavailable => "shed: the queue is full, or the service is in fail-fast",
    };
    tracing::debug!(?peer, "no endpoint to connect to: {why}; closing");
}
