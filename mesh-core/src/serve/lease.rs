//! What an upgraded connection keeps of the server that accepted it.
//!
//! Once hyper hands an upgraded connection (a WebSocket, say) to the
//! proxy's tunnel, the server's connection task is over, though the
//! socket stays open. Were the task's place under the connection limit
//! released then, every tunnel would free a place for another connection
//! and the limit would bound nothing; and shutdown, which waits for the
//! tasks, would return with tunnels still open and never cut them. A
//! [`Lease`] travels with each upgrade request instead: the tunnel holds
//! it, so its place stays taken until the tunnel closes, and it ends the
//! tunnel when the server's grace period runs out.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, watch};

/// A connection's place under the server's limit, and the server's signal
/// that the grace period is over. A request extension on upgrade requests.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    _permit: Arc<OwnedSemaphorePermit>,
    cut: watch::Receiver<bool>,
}

impl Lease {
    pub(super) fn new(permit: OwnedSemaphorePermit, cut: watch::Receiver<bool>) -> Self {
        Self {
            _permit: Arc::new(permit),
            cut,
        }
    }

    /// Completes when the server's grace period is over, or the server is
    /// gone; the place is held until then.
    pub(crate) async fn cut(mut self) {
        // An error means the server is gone, which also means cut.
        let _ = self.cut.wait_for(|cut| *cut).await;
    }
}
