//! The sidecar's own identity: a credential store, filled from the
//! configured source and kept current.

use mesh_core::admin::Readiness;
use mesh_tls::{CredentialStore, StoreConfig, store::SourceTask};
use prometheus_client::registry::Registry;

use super::config::IdentityConfig;
use super::start_error::StartError;

/// The store every acceptor and connector reads, and the task that keeps
/// it current (to spawn once, on one runtime).
pub(super) struct Identity {
    pub(super) store: CredentialStore,
    pub(super) task: Option<SourceTask>,
}

impl Identity {
    /// Starts the configured source, or an empty store when there is none
    /// (plaintext services never read it).
    ///
    /// With a source, `/ready` answers 503 (naming `identity`) while no
    /// credentials that can be presented are in the store: until the first
    /// valid ones load, and again from the moment the certificate in
    /// service expires (or the clock is before its `notBefore`) until
    /// valid ones replace it, since the sidecar then refuses every mTLS
    /// connection. The task returned keeps the credentials current and
    /// closes and reopens the gate on time. The TLS metrics are
    /// registered.
    pub(super) fn start(
        config: Option<&IdentityConfig>,
        readiness: &Readiness,
        registry: &mut Registry,
    ) -> Result<Self, StartError> {
        let Some(config) = config else {
            return Ok(Self {
                store: CredentialStore::new(StoreConfig::default()),
                task: None,
            });
        };
        let store = CredentialStore::new(config.store.clone());
        store.set_readiness(readiness.gate("identity"));
        store.metrics().register(registry);
        let source = store
            .start(config.source.clone())
            .map_err(|error| StartError::Identity(Box::new(error)))?;
        let readiness = store.readiness_task();
        Ok(Self {
            store,
            task: Some(Box::pin(async move {
                tokio::join!(source, readiness);
            })),
        })
    }
}
