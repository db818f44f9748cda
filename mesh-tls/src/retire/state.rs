use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, Weak,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use hyper_util::client::legacy::connect::CaptureConnection;

use crate::metrics::{RetireReason, TlsMetrics};

/// What a connector shares with the [`RetireLayer`](super::RetireLayer)
/// over its client.
#[derive(Debug)]
pub(crate) struct RetireShared {
    /// Connections the layer has not yet seen a response from. While any
    /// exist, the layer captures each request's connection so that it can
    /// claim them; once none are left, requests pass untouched.
    unclaimed: AtomicUsize,
    metrics: TlsMetrics,
}

impl RetireShared {
    pub(crate) fn new(metrics: TlsMetrics) -> Self {
        Self {
            unclaimed: AtomicUsize::new(0),
            metrics,
        }
    }

    pub(crate) fn has_unclaimed(&self) -> bool {
        self.unclaimed.load(Ordering::Relaxed) > 0
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
    retired: AtomicBool,
    claimed: AtomicBool,
    capture: Mutex<Option<CaptureConnection>>,
    shared: Arc<RetireShared>,
}

impl ConnState {
    pub(crate) fn new(shared: Arc<RetireShared>) -> Arc<Self> {
        shared.unclaimed.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            retired: AtomicBool::new(false),
            claimed: AtomicBool::new(false),
            capture: Mutex::new(None),
            shared,
        })
    }

    /// Stops the pool from handing the connection out again. Requests in
    /// flight on it finish; the pool then drops it.
    pub(crate) fn retire(&self, reason: RetireReason) {
        if self.retired.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::debug!(reason = reason.as_label(), "retiring a client connection");
        self.shared.metrics.retired(reason);
        self.poison();
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    pub(crate) fn claim(&self, capture: CaptureConnection) {
        if self.claimed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.unclaimed.fetch_sub(1, Ordering::Relaxed);
        *lock(&self.capture) = Some(capture);
        if self.is_retired() {
            self.poison();
        }
    }

    fn poison(&self) {
        if let Some(capture) = lock(&self.capture).as_ref()
            && let Some(connected) = capture.connection_metadata().as_ref()
        {
            connected.poison();
        }
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        if !*self.claimed.get_mut() {
            self.shared.unclaimed.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The client connections opened while one set of credentials was in
/// service, retired together when it is replaced.
#[derive(Debug, Default)]
pub(crate) struct RetireList {
    inner: Mutex<ListState>,
}

#[derive(Debug, Default)]
struct ListState {
    retired: bool,
    conns: Vec<Weak<ConnState>>,
}

impl RetireList {
    /// Adds a connection; one registered after the list was retired (it
    /// raced a rotation) is retired at once.
    pub(crate) fn register(&self, conn: &Arc<ConnState>) {
        let mut state = lock(&self.inner);
        if state.retired {
            drop(state);
            conn.retire(RetireReason::Rotation);
            return;
        }
        if state.conns.len() == state.conns.capacity() {
            // Closed connections leave dead entries; sweeping them when the
            // vector is full keeps it proportional to the live ones.
            state.conns.retain(|c| c.strong_count() > 0);
        }
        state.conns.push(Arc::downgrade(conn));
    }

    /// Retires every connection, now and later.
    pub(crate) fn retire_all(&self) {
        let conns = {
            let mut state = lock(&self.inner);
            state.retired = true;
            std::mem::take(&mut state.conns)
        };
        for conn in conns.iter().filter_map(Weak::upgrade) {
            conn.retire(RetireReason::Rotation);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the value consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
