//! Authorizing opaque connections, and closing them when a policy change
//! no longer allows them.
//!
//! Opaque traffic has no requests to refuse one by one, so it is decided
//! per connection, before the handler inside sees a byte: a connection
//! that is not allowed is closed at once. An allowed connection is watched
//! for as long as it lives: each time the policy changes, it is checked
//! again, and if the new policy denies it, it is closed (counted in
//! `inbound_tcp_authz_terminate_total`). Only the Server's own
//! authorizations apply: those that target one of its HTTP routes cannot
//! match a byte stream.
//!
//! Closing works by dropping the handler's future, which owns the
//! connection. A handler must therefore do its work inside the future it
//! returns, not in a task it spawns.

mod future;
mod layer;

use std::task::{Context, Poll};

use mesh_core::{BoxError, ConnectionInfo, serve::OpaqueConnection};
use tokio::sync::watch;
use tower_service::Service;

pub use self::{future::ResponseFuture, layer::AuthorizeOpaqueLayer};
use crate::{Client, PolicyStore};

/// Authorizes each opaque connection; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct AuthorizeOpaque<S> {
    inner: S,
    store: PolicyStore,
    port: Option<u16>,
}

impl<S> AuthorizeOpaque<S> {
    /// Authorizes connections to `inner` against the policy in `store`.
    pub fn new(inner: S, store: PolicyStore) -> Self {
        Self {
            inner,
            store,
            port: None,
        }
    }

    /// Authorizes every connection as if it arrived on `port`.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

impl<S> Service<OpaqueConnection> for AuthorizeOpaque<S>
where
    S: Service<OpaqueConnection, Response = ()>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, conn: OpaqueConnection) -> Self::Future {
        let port = self.port.unwrap_or(conn.info.local_addr.port());
        // Subscribe before deciding, so a change right after the decision
        // is not missed.
        let changes = self.store.subscribe();
        let allowed = {
            let client = Client::from_connection(Some(&conn.info));
            let policy = self.store.load();
            let decision = policy.evaluate_connection(port, &client);
            decision.record(client.tls);
            if !decision.is_allowed() {
                // At `info`, as linkerd2-proxy logs "Connection denied".
                tracing::info!(
                    server = decision_server(&decision),
                    peer = %conn.info.remote_addr,
                    client.tls = ?client.tls,
                    "connection denied"
                );
            }
            decision.is_allowed()
        };
        if !allowed {
            drop(conn);
            return ResponseFuture::closed();
        }
        let info = conn.info.clone();
        let serving = self.inner.call(conn);
        let store = self.store.clone();
        ResponseFuture::serving(async move {
            tokio::select! {
                result = serving => result.map_err(Into::into),
                () = revoked(store, changes, port, info) => Ok(()),
            }
        })
    }
}

fn decision_server<'p>(decision: &crate::ConnectionDecision<'p>) -> &'p str {
    match decision {
        crate::ConnectionDecision::Allow(a) => a.server(),
        crate::ConnectionDecision::Deny(d) => d.server(),
    }
}

/// Completes when a policy change denies the connection.
async fn revoked(
    store: PolicyStore,
    mut changes: watch::Receiver<u64>,
    port: u16,
    info: ConnectionInfo,
) {
    loop {
        if changes.changed().await.is_err() {
            // The store is gone: no change can come.
            std::future::pending::<()>().await;
        }
        let client = Client::from_connection(Some(&info));
        let policy = store.load();
        let decision = policy.evaluate_connection(port, &client);
        if !decision.is_allowed() {
            decision.record_terminate(client.tls);
            // At `info`, as linkerd2-proxy logs "Connection terminated due
            // to policy change".
            tracing::info!(
                server = decision_server(&decision),
                peer = %info.remote_addr,
                client.tls = ?client.tls,
                "closing a connection the new policy denies"
            );
            return;
        }
    }
}
