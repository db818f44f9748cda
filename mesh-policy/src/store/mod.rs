//! The policy in force, swapped whole when it changes.
//!
//! Every request reads the current policy, so reads must be cheap and
//! never wait: the store keeps it in an [`ArcSwap`], which a reader loads
//! without a lock. A change (an embedder's [`swap`](PolicyStore::swap), or
//! a [`reload`](PolicyStore::reload) from text) replaces it whole, so a
//! request sees either the old policy or the new one, never a mix, and the
//! next request sees the new one. A `watch` channel tells long-lived
//! connections about each change, so an opaque connection that a change no
//! longer allows can be closed.
//!
//! A reload that fails changes nothing: the last good policy stays in
//! force, the `inbound_policy_reloads_total{result="error"}` counter goes
//! up, and a warning says why.
//!
//! A change must not refill rate limits it leaves alone, or every edit
//! would let each client burst again. So a swap hands the new policy the
//! state of each limit whose Server and settings did not change (see the
//! crate docs), at swap time, once. Swaps take a lock among themselves,
//! so each new policy takes over from the one it replaces; readers never
//! wait for it. The swap also makes, in the new policy, the default
//! server of each port the old one had made one for (and that no Server
//! of the new one covers), so that the first request on such a port after
//! a change does not resolve its counters.
//!
//! Reloads may overlap (a file watcher's and an embedder's, each on a
//! thread of its own), and a large text compiles slower than a small one,
//! so they may finish in another order than they started. The last one
//! called must win, as if they had run one after the other: each reload
//! takes a number when it is called, and a reload that finishes after a
//! later-numbered one (or a [`swap`](PolicyStore::swap)) was put in force
//! is not put in force, since it is older than what is. Compiles are not
//! held under the lock: one slow reload never makes another wait. A reload
//! that fails takes nothing away: an older one that finishes after it is
//! still put in force, as it would have been in order.

mod files;

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use arc_swap::ArcSwap;
use mesh_core::resource::ResourceError;
use tokio::sync::watch;

pub use self::files::{PolicyFiles, PolicyTexts, PolicyWatcher};
use crate::{
    Compiled, Policy, PolicyConfig, PolicyMetrics, PolicySource, PolicyWarnings, Workload,
};

/// The policy in force for one workload. Cloning shares it.
#[derive(Clone, Debug)]
pub struct PolicyStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: ArcSwap<Policy>,
    /// Held by a swap from reading the policy in force to replacing it;
    /// holds the number of the change in force.
    swapping: Mutex<u64>,
    /// The last number given to a reload or a swap, in the order they
    /// were called.
    numbered: AtomicU64,
    changes: watch::Sender<u64>,
    workload: Workload,
    config: PolicyConfig,
    metrics: PolicyMetrics,
}

impl PolicyStore {
    /// A store for `workload` whose policy has no resources yet: every port
    /// gets `config`'s default policy until the first reload.
    pub fn new(workload: Workload, config: PolicyConfig, metrics: PolicyMetrics) -> Self {
        let policy = Policy::empty(&workload, &config, &metrics);
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(policy),
                swapping: Mutex::new(0),
                numbered: AtomicU64::new(0),
                changes: watch::Sender::new(0),
                workload,
                config,
                metrics,
            }),
        }
    }

    /// The policy in force. Lock-free; hold the guard only briefly.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.inner.current.load()
    }

    /// The policy in force, as an `Arc` to keep.
    pub fn current(&self) -> Arc<Policy> {
        self.inner.current.load_full()
    }

    /// Puts `policy` in force. New requests see it at once; opaque
    /// connections are checked against it.
    ///
    /// Each rate limit of `policy` whose Server and settings are those of
    /// the policy it replaces keeps that limit's state, so the swap does
    /// not refill it; the others start full.
    ///
    /// A swap is the newest change: a reload called before it and still
    /// compiling is not put in force after it.
    pub fn swap(&self, policy: Policy) {
        let mut in_force = self
            .inner
            .swapping
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let number = self.number();
        self.put_in_force_locked(&mut in_force, number, policy);
    }

    /// The next number of a change, in the order of the calls.
    fn number(&self) -> u64 {
        self.inner.numbered.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Puts `policy`, change `number`, in force, with the lock held.
    fn put_in_force_locked(&self, in_force: &mut u64, number: u64, mut policy: Policy) {
        let old = self.inner.current.load();
        policy.carry_rate_limits(&old);
        policy.carry_default_servers(&old);
        drop(old);
        self.inner.current.store(Arc::new(policy));
        *in_force = number;
        self.inner
            .changes
            .send_modify(|generation| *generation += 1);
    }

    /// Compiles `sources` for this store's workload without putting the
    /// result in force: what `sidecar check` runs.
    ///
    /// # Errors
    ///
    /// As [`Policy::compile`].
    pub fn compile(&self, sources: &[PolicySource<'_>]) -> Result<Compiled, ResourceError> {
        Policy::compile(
            sources,
            &self.inner.workload,
            &self.inner.config,
            &self.inner.metrics,
        )
    }

    /// Compiles `sources` and puts the result in force.
    ///
    /// On success the warnings are logged once and returned. On failure
    /// the policy in force does not change; the error is logged, counted
    /// and returned.
    ///
    /// Reloads that overlap take effect in the order they were called:
    /// one that finishes compiling after a reload called later (or a
    /// [`swap`](Self::swap)) has been put in force is counted and returns
    /// its warnings, but is not put in force (see the module docs).
    ///
    /// # Errors
    ///
    /// As [`Policy::compile`].
    pub fn reload(&self, sources: &[PolicySource<'_>]) -> Result<PolicyWarnings, ResourceError> {
        let staged = self.stage(sources)?;
        Ok(self.put_in_force(staged))
    }

    /// Numbers a reload of `sources` and compiles them; a failure is
    /// logged and counted.
    fn stage(&self, sources: &[PolicySource<'_>]) -> Result<Staged, ResourceError> {
        // Numbered before compiling: the order of the calls, not of the
        // compiles' ends, says which is newer.
        let number = self.number();
        match self.compile(sources) {
            Ok(compiled) => Ok(Staged {
                number,
                documents: sources.len(),
                compiled,
            }),
            Err(error) => {
                self.inner.metrics.reload(false);
                tracing::warn!(%error, "policy rejected; the last good policy stays in force");
                Err(error)
            }
        }
    }

    /// Puts a compiled reload in force, unless a newer change already is.
    fn put_in_force(&self, staged: Staged) -> PolicyWarnings {
        let Staged {
            number,
            documents,
            compiled: Compiled { policy, warnings },
        } = staged;
        let mut in_force = self
            .inner
            .swapping
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Counted before it is put in force: whoever the change wakes (a
        // test, an admin view) finds the reload counted.
        self.inner.metrics.reload(true);
        if number < *in_force {
            tracing::info!(
                documents,
                "policy loaded, but a newer one was put in force while it compiled; the newer stays in force"
            );
        } else {
            self.put_in_force_locked(&mut in_force, number, policy);
            tracing::info!(documents, "policy loaded");
        }
        drop(in_force);
        if !warnings.is_empty() {
            tracing::warn!(%warnings, "policy loaded with parts that are not enforced");
        }
        warnings
    }

    /// A receiver that sees a new generation number at every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The workload policies are compiled for.
    pub fn workload(&self) -> &Workload {
        &self.inner.workload
    }

    /// The configuration policies are compiled with.
    pub fn config(&self) -> &PolicyConfig {
        &self.inner.config
    }

    /// The metrics decisions and reloads are counted in.
    pub fn metrics(&self) -> &PolicyMetrics {
        &self.inner.metrics
    }
}

/// A reload compiled and not yet put in force.
struct Staged {
    /// Its number, taken when it was called.
    number: u64,
    documents: usize,
    compiled: Compiled,
}

#[cfg(test)]
mod tests;
