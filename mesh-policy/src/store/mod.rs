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
//! wait for it.

mod files;

use std::sync::{Arc, Mutex, PoisonError};

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
    /// Held by a swap from reading the policy in force to replacing it.
    swapping: Mutex<()>,
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
                swapping: Mutex::new(()),
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
    pub fn swap(&self, mut policy: Policy) {
        let _swapping = self
            .inner
            .swapping
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        policy.carry_rate_limits(&self.inner.current.load());
        self.inner.current.store(Arc::new(policy));
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
    /// # Errors
    ///
    /// As [`Policy::compile`].
    pub fn reload(&self, sources: &[PolicySource<'_>]) -> Result<PolicyWarnings, ResourceError> {
        match self.compile(sources) {
            Ok(Compiled { policy, warnings }) => {
                // Counted before it is put in force: whoever the change
                // wakes (a test, an admin view) finds the reload counted.
                self.inner.metrics.reload(true);
                self.swap(policy);
                tracing::info!(documents = sources.len(), "policy loaded");
                if !warnings.is_empty() {
                    tracing::warn!(%warnings, "policy loaded with parts that are not enforced");
                }
                Ok(warnings)
            }
            Err(error) => {
                self.inner.metrics.reload(false);
                tracing::warn!(%error, "policy rejected; the last good policy stays in force");
                Err(error)
            }
        }
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
