use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

/// The set of conditions `/ready` waits for.
///
/// Each layer that must finish something before traffic can flow (loading an
/// identity, reading a policy) registers a [`ReadinessGate`] and opens it when
/// done. `/ready` answers 200 only when every gate is open. Checking is one
/// atomic load; gates are registered rarely and may lock.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    closed: AtomicUsize,
    names: Mutex<Vec<(Arc<str>, bool)>>,
}

/// One condition of [`Readiness`]. Closed until [`ReadinessGate::open`] is
/// called; dropping an unopened gate leaves it closed.
#[derive(Debug)]
pub struct ReadinessGate {
    inner: Arc<Inner>,
    index: usize,
    open: bool,
}

impl Readiness {
    /// A readiness with no gates: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a closed gate named `name`.
    pub fn gate(&self, name: &str) -> ReadinessGate {
        let mut names = lock(&self.inner.names);
        names.push((Arc::from(name), false));
        self.inner.closed.fetch_add(1, Ordering::AcqRel);
        ReadinessGate {
            inner: self.inner.clone(),
            index: names.len() - 1,
            open: false,
        }
    }

    /// Whether every gate is open.
    pub fn is_ready(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire) == 0
    }

    /// The names of the gates still closed.
    pub fn pending(&self) -> Vec<Arc<str>> {
        lock(&self.inner.names)
            .iter()
            .filter(|(_, open)| !open)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl ReadinessGate {
    /// Opens the gate. Opening it again does nothing.
    pub fn open(&mut self) {
        if self.open {
            return;
        }
        self.open = true;
        if let Some(entry) = lock(&self.inner.names).get_mut(self.index) {
            entry.1 = true;
        }
        self.inner.closed.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the list inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
