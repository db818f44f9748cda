//! When a TLS connection the acceptor let in is drained and closed. See the
//! [module docs](super#retirement).

use std::{sync::Arc, time::SystemTime};

use mesh_core::serve::Retirement;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use super::AcceptConfig;
use crate::{
    CredentialStore, StoreVersion,
    metrics::{Direction, RetireReason},
    retire,
    store::Snapshot,
};

/// What a TLS connection's retirement is measured against: the local
/// certificate's expiry, the trust bundle the client was verified with, and
/// the store's version when the handshake started.
pub(super) struct HandshakeWith {
    local_not_after: SystemTime,
    /// The credentials the handshake runs with, until it is done.
    snapshot: Arc<Snapshot>,
    version: watch::Receiver<StoreVersion>,
    loaded: u64,
}

impl HandshakeWith {
    /// A handshake with `snapshot`'s credentials, whose chain verifies
    /// until `local_not_after`; `version` was read before the snapshot,
    /// and said `loaded`.
    pub(super) fn new(
        snapshot: &Arc<Snapshot>,
        local_not_after: SystemTime,
        version: watch::Receiver<StoreVersion>,
        loaded: u64,
    ) -> Self {
        Self {
            local_not_after,
            snapshot: snapshot.clone(),
            version,
            loaded,
        }
    }

    /// Drains the connection when the credentials rotate (to a bundle that
    /// no longer trusts the client's chain, or at all when so configured)
    /// or a certificate nears expiry, and closes it at expiry.
    pub(super) fn retirement(
        self,
        store: &CredentialStore,
        config: &AcceptConfig,
        peer_chain: Option<&[CertificateDer<'static>]>,
    ) -> Retirement {
        let Self {
            local_not_after,
            snapshot,
            version,
            loaded,
        } = self;
        let now = store.now();
        let peer_not_after = peer_chain.and_then(|chain| {
            snapshot.peer_path_until(store, chain, webpki::KeyUsage::client_auth())
        });
        // The bundle the client was verified with; the rest of the
        // credentials are not kept for the connection's life.
        let roots = snapshot.creds.shared_roots();
        drop(snapshot);
        let expiry = peer_not_after.map_or(local_not_after, |peer| peer.min(local_not_after));
        let (retire_at, close_at) = retire::deadlines(expiry, config.retire_before_expiry, now);
        let retire_at = retire::Deadline::new(
            store.clone(),
            retire::retire_time(expiry, config.retire_before_expiry),
            retire_at,
        );
        let metrics = store.metrics().clone();
        let rotated = rotated(
            store.clone(),
            config.drain_on_rotation,
            peer_chain.map(<[_]>::to_vec),
            peer_not_after,
            roots,
            version,
            loaded,
        );
        let drain = async move {
            let reason = tokio::select! {
                () = retire_at => RetireReason::Expiry,
                () = rotated => RetireReason::Rotation,
            };
            tracing::debug!(reason = reason.as_label(), "retiring a server connection");
            metrics.retired(Direction::Inbound, reason);
        };
        let retirement = Retirement::new(drain, config.close_at_expiry.then_some(close_at));
        if !config.close_at_expiry {
            return retirement;
        }
        // The close at `notAfter` falls due by the store's clock too: on
        // tokio's alone, a machine resumed from sleep would keep an opaque
        // pipe, which is never drained, open for as long again as it slept.
        retirement.close_when(retire::Deadline::new(store.clone(), expiry, close_at))
    }
}

/// Completes at the first rotation that should drain the connection: any,
/// with `drain_on_rotation`; otherwise one to a trust bundle that no longer
/// verifies `peer_chain`, or verifies it only through a certificate that
/// expires before `peer_not_after`, the end of the path the connection's
/// retirement is timed by ([`Snapshot::still_vouches`]).
async fn rotated(
    store: CredentialStore,
    drain_on_rotation: bool,
    peer_chain: Option<Vec<CertificateDer<'static>>>,
    peer_not_after: Option<SystemTime>,
    mut roots: Arc<[CertificateDer<'static>]>,
    mut version: watch::Receiver<StoreVersion>,
    mut seen: u64,
) {
    if !drain_on_rotation && peer_chain.is_none() {
        // No client certificate: no trust to lose.
        return std::future::pending().await;
    }
    loop {
        let changed = version.wait_for(|v| v.loaded != seen).await;
        match changed.map(|v| v.loaded) {
            Ok(loaded) => seen = loaded,
            // The store is gone: nothing can rotate any more.
            Err(_) => return std::future::pending().await,
        }
        if drain_on_rotation {
            return;
        }
        let Some(snapshot) = store.snapshot() else {
            continue;
        };
        if *snapshot.creds.roots() == *roots {
            continue;
        }
        roots = snapshot.creds.shared_roots();
        if let Some(chain) = &peer_chain
            && !snapshot.still_vouches(
                &store,
                chain,
                webpki::KeyUsage::client_auth(),
                peer_not_after,
            )
        {
            tracing::debug!("the new trust bundle no longer trusts a client");
            return;
        }
    }
}
