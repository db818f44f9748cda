//! What an upgraded connection keeps of the server that accepted it.
//!
//! Once hyper hands an upgraded connection (a WebSocket, say, or the
//! tunnel a `CONNECT` opens) to the proxy's tunnel, the server's
//! connection task is over, though the socket stays open. Were the task's
//! place under the connection limit released then, every tunnel would
//! free a place for another connection and the limit would bound
//! nothing; and shutdown, which waits for the tasks, would return with
//! tunnels still open and never cut them. A [`Lease`] travels with each
//! upgrade and `CONNECT` request instead: the tunnel holds it, so its
//! place stays taken until the tunnel closes, and it ends the tunnel when
//! the server's grace period runs out, or at the connection's
//! [`Retirement`](super::Retirement) close time, whichever comes first: a
//! tunnel, like an opaque connection, cannot be drained, and it must not
//! outlive the credentials that let it in.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    sync::{OwnedSemaphorePermit, watch},
    time::Instant,
};

/// A connection's place under the server's limit, the server's signal
/// that the grace period is over, and the connection's close time. A
/// request extension on upgrade and `CONNECT` requests.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    _permit: Arc<OwnedSemaphorePermit>,
    cut: watch::Receiver<bool>,
    close_at: Option<Instant>,
    /// The connection's peer, once known: for the log.
    peer: Option<SocketAddr>,
}

impl Lease {
    pub(super) fn new(permit: OwnedSemaphorePermit, cut: watch::Receiver<bool>) -> Self {
        Self {
            _permit: Arc::new(permit),
            cut,
            close_at: None,
            peer: None,
        }
    }

    /// The same lease, ending at `close_at` too: the connection's
    /// retirement close time, once the accept hook has given it; `peer`
    /// is whom the connection serves.
    pub(super) fn closing_at(self, close_at: Option<Instant>, peer: SocketAddr) -> Self {
        Self {
            close_at,
            peer: Some(peer),
            ..self
        }
    }

    /// Completes when the server's grace period is over, the server is
    /// gone, or the connection's close time has come; the place is held
    /// until then.
    pub(crate) async fn cut(mut self) {
        tokio::select! {
            // An error means the server is gone, which also means cut.
            _ = self.cut.wait_for(|cut| *cut) => {}
            () = super::accept::until(self.close_at) => {
                tracing::debug!(
                    peer = self.peer.map(tracing::field::display),
                    "upgraded connection closed: its credentials expired"
                );
            }
        }
    }
}
