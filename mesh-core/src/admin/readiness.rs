use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

/// The set of conditions `/ready` waits for.
///
/// Each layer that must finish something before traffic can flow (loading an
/// identity, reading a policy) registers a [`ReadinessGate`] and opens it when
/// done. `/ready` answers 200 only when every gate is open. A condition that
/// can stop holding (an identity certificate that expires before a renewal
/// replaces it) closes its gate again, and reopens it once it holds again.
/// Checking is one atomic load; gates are registered, opened and closed
/// rarely and may lock.
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
/// called, and again after [`ReadinessGate::close`]; dropping a gate leaves
/// it as it was.
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
    /// Opens the gate. Opening an open gate does nothing.
    pub fn open(&mut self) {
        self.set(true);
    }

    /// Closes the gate again, so that `/ready` answers 503 naming it until
    /// it reopens. Closing a closed gate does nothing.
    pub fn close(&mut self) {
        self.set(false);
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    fn set(&mut self, open: bool) {
        if self.open == open {
            return;
        }
        self.open = open;
        // The count changes under the lock that guards the names, so that
        // `pending` and `is_ready` never disagree for long, and each change
        // is one read-modify-write of the count: a reader sees the latest
        // state of every gate, whatever the order gates move in.
        let mut names = lock(&self.inner.names);
        if let Some(entry) = names.get_mut(self.index) {
            entry.1 = open;
        }
        if open {
            self.inner.closed.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.inner.closed.fetch_add(1, Ordering::AcqRel);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the list inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_closes_and_reopens() {
        let readiness = Readiness::new();
        let mut identity = readiness.gate("identity");
        let mut policy = readiness.gate("policy");
        assert!(!readiness.is_ready());
        identity.open();
        policy.open();
        assert!(readiness.is_ready());
        assert!(readiness.pending().is_empty());

        identity.close();
        assert!(!identity.is_open());
        assert!(!readiness.is_ready());
        assert_eq!(readiness.pending(), vec![Arc::<str>::from("identity")]);
        identity.close();
        policy.open();
        identity.open();
        assert!(readiness.is_ready(), "closing twice counts once");
        assert!(readiness.pending().is_empty());

        identity.open();
        policy.close();
        assert_eq!(readiness.pending(), vec![Arc::<str>::from("policy")]);
        assert!(!readiness.is_ready(), "opening twice counts once");
    }

    #[test]
    fn gates_moved_from_many_threads_leave_the_latest_state() {
        let readiness = Readiness::new();
        let gates: Vec<_> = (0..8).map(|i| readiness.gate(&format!("g{i}"))).collect();
        let threads: Vec<_> = gates
            .into_iter()
            .map(|mut gate| {
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        gate.open();
                        gate.close();
                    }
                    gate.open();
                    gate
                })
            })
            .collect();
        let mut gates: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(readiness.is_ready());
        assert!(readiness.pending().is_empty());
        gates[3].close();
        assert!(!readiness.is_ready());
        assert_eq!(readiness.pending(), vec![Arc::<str>::from("g3")]);
    }
}
