use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use hyper_util::client::legacy::connect::CaptureConnection;
use mesh_core::Identity;
use rustls_pki_types::CertificateDer;

use crate::metrics::{Direction, RetireReason, TlsMetrics};

/// What a connector shares with the [`RetireLayer`](super::RetireLayer)
/// over its client.
#[derive(Debug)]
pub(crate) struct RetireShared {
    /// Whether the connector opens any mutual TLS connections at all; a
    /// plaintext-only connector has nothing to retire.
    enabled: bool,
    /// Connections no response has come back on yet.
    unclaimed: AtomicUsize,
    /// Claimed connections that are not retired.
    usable: AtomicUsize,
    metrics: TlsMetrics,
}

impl RetireShared {
    pub(crate) fn new(enabled: bool, metrics: TlsMetrics) -> Self {
        Self {
            enabled,
            unclaimed: AtomicUsize::new(0),
            usable: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Whether the layer should capture the next request's connection:
    /// while some connection is unclaimed, or while none is usable (so the
    /// request about to open one will claim it).
    pub(crate) fn wants_capture(&self) -> bool {
        self.enabled
            && (self.unclaimed.load(Ordering::Relaxed) > 0
                || self.usable.load(Ordering::Relaxed) == 0)
    }
}

/// The retirement state of one client connection.
///
/// The pool's handle to the connection is only reachable through a request
/// that ran on it, so the first response on a connection *claims* it: the
/// layer hands over that request's [`CaptureConnection`], which holds the
/// pool's handle. From then on the connection can be poisoned at any time.
/// A connection retired before it is claimed is poisoned when claimed.
#[derive(Debug)]
pub(crate) struct ConnState {
    inner: Mutex<Inner>,
    shared: Arc<RetireShared>,
    authenticated: Authenticated,
}

/// What the handshake of a client connection proved, which a credential
/// update checks again to tell whether the connection may stay in the
/// pool (see [`carry_over`](super::carry_over)).
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The local identity the connection was made with: the one the server
    /// authenticated, and authorized requests for.
    pub(crate) local: Identity,
    /// The server's chain, leaf first, as the handshake verified it.
    /// Shared, so that a check of the connections to one server, which
    /// present the same chain, can be made once.
    pub(crate) server_chain: Arc<[CertificateDer<'static>]>,
    /// The `notAfter` of the server's path to the anchor it verified to,
    /// which the connection's retirement is timed by: a bundle that
    /// trusts the chain only through a certificate that expires sooner
    /// does not keep the connection.
    pub(crate) server_not_after: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Inner {
    claimed: bool,
    retired: bool,
    capture: Option<CaptureConnection>,
}

impl ConnState {
    pub(crate) fn new(shared: Arc<RetireShared>, authenticated: Authenticated) -> Arc<Self> {
        shared.unclaimed.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            shared,
            authenticated,
        })
    }

    pub(crate) fn authenticated(&self) -> &Authenticated {
        &self.authenticated
    }

    /// Stops the pool from handing the connection out again. Requests in
    /// flight on it finish; the pool then drops it.
    pub(crate) fn retire(&self, reason: RetireReason) {
        let mut inner = lock(&self.inner);
        if inner.retired {
            return;
        }
        inner.retired = true;
        if inner.claimed {
            self.shared.usable.fetch_sub(1, Ordering::Relaxed);
            poison(inner.capture.as_ref());
        }
        drop(inner);
        tracing::debug!(reason = reason.as_label(), "retiring a client connection");
        self.shared.metrics.retired(Direction::Outbound, reason);
    }

    pub(crate) fn is_retired(&self) -> bool {
        lock(&self.inner).retired
    }

    pub(crate) fn claim(&self, capture: CaptureConnection) {
        let mut inner = lock(&self.inner);
        if inner.claimed {
            return;
        }
        inner.claimed = true;
        self.shared.unclaimed.fetch_sub(1, Ordering::Relaxed);
        if inner.retired {
            poison(Some(&capture));
        } else {
            self.shared.usable.fetch_add(1, Ordering::Relaxed);
        }
        inner.capture = Some(capture);
    }
}

fn poison(capture: Option<&CaptureConnection>) {
    if let Some(capture) = capture
        && let Some(connected) = capture.connection_metadata().as_ref()
    {
        connected.poison();
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        if !inner.claimed {
            self.shared.unclaimed.fetch_sub(1, Ordering::Relaxed);
        } else if !inner.retired {
            self.shared.usable.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The client connections that the credentials in service vouch for:
/// those opened while they were current, and those an update to them kept.
///
/// An update closes the list of the credentials it replaces and hands its
/// connections over to the new ones' list, or retires them
/// ([`carry_over`](super::carry_over)).
#[derive(Debug, Default)]
pub(crate) struct RetireList {
    inner: Mutex<ListState>,
}

#[derive(Debug, Default)]
struct ListState {
    closed: bool,
    conns: Vec<Weak<ConnState>>,
}

impl RetireList {
    /// Adds a connection; false, adding nothing, once the list is closed
    /// (the connection raced an update, and is for the newer credentials
    /// to keep or retire).
    pub(crate) fn register(&self, conn: &Arc<ConnState>) -> bool {
        let mut state = lock(&self.inner);
        if state.closed {
            return false;
        }
        if state.conns.len() == state.conns.capacity() {
            // Closed connections leave dead entries; sweeping them when the
            // vector is full keeps it proportional to the live ones.
            state.conns.retain(|c| c.strong_count() > 0);
        }
        state.conns.push(Arc::downgrade(conn));
        true
    }

    /// Adds connections kept across an update; gives them back once the
    /// list is closed.
    pub(crate) fn adopt(&self, conns: Vec<Arc<ConnState>>) -> Result<(), Vec<Arc<ConnState>>> {
        let mut state = lock(&self.inner);
        if state.closed {
            return Err(conns);
        }
        state.conns.retain(|c| c.strong_count() > 0);
        state.conns.extend(conns.iter().map(Arc::downgrade));
        Ok(())
    }

    /// Closes the list, for good, and returns the connections still open.
    pub(crate) fn close(&self) -> Vec<Arc<ConnState>> {
        let conns = {
            let mut state = lock(&self.inner);
            state.closed = true;
            std::mem::take(&mut state.conns)
        };
        conns.iter().filter_map(Weak::upgrade).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the value consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
