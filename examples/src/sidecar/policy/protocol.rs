//! Inbound ports whose protocol a policy reload would change.

use mesh_policy::{Policy, PolicyStore, resource::ProxyProtocol};

use crate::sidecar::config::{InboundPort, PortProtocol};

/// How an inbound port is served under `policy`: as its application
/// port's `Server` says, else as configured.
///
/// A `Server`'s `proxyProtocol` supersedes the port's configured (or
/// default) protocol, as it supersedes Linkerd's
/// `config.linkerd.io/opaque-ports`: `opaque` and `TLS` make the port
/// opaque, and `HTTP/1`, `HTTP/2` and `gRPC` make it HTTP, with no
/// detection. Left to detection, a port the `Server` declares HTTP would
/// forward a client that sends nothing within the detection timeout, or
/// sends bytes that are not HTTP, to the application as opaque bytes:
/// authorized once for the connection, past every route of the `Server`
/// and every authorization that targets one. Linkerd's proxy never
/// detects on such a port (its `ServerPolicy` protocol is `Http1`,
/// `Http2` or `Grpc`, and the inbound stack serves HTTP at once). Only
/// `unknown`, also what a port no `Server` selects has, leaves the port
/// as configured.
pub(in crate::sidecar) fn served_protocol(policy: &Policy, port: &InboundPort) -> PortProtocol {
    match policy.protocol(port.app.port()) {
        ProxyProtocol::Opaque | ProxyProtocol::Tls => PortProtocol::Opaque,
        ProxyProtocol::Http1 | ProxyProtocol::Http2 | ProxyProtocol::Grpc => PortProtocol::Http,
        ProxyProtocol::Unknown => port.protocol,
    }
}

/// Names each inbound port that a reloaded policy would serve otherwise
/// than it is served. A port's protocol is chosen when the sidecar starts
/// (its listeners are built for it), so a `Server` that says
/// `proxyProtocol: opaque` afterwards (the usual fix for a
/// server-speaks-first protocol), or `HTTP/1`, is not in force until a
/// restart: the operator who wrote it is told so, once per change, rather
/// than left to wonder why connections still wait for detection.
#[derive(Debug)]
pub(in crate::sidecar) struct ProtocolWatch {
    store: PolicyStore,
    /// Each port, how it is served, and how the last policy seen would
    /// serve it.
    ports: Vec<(InboundPort, PortProtocol, PortProtocol)>,
}

impl ProtocolWatch {
    /// Watches `ports` as the policy in `store` serves them now.
    pub(in crate::sidecar) fn new(store: PolicyStore, ports: &[InboundPort]) -> Self {
        let policy = store.load();
        let ports = ports
            .iter()
            .map(|port| {
                let served = served_protocol(&policy, port);
                (*port, served, served)
            })
            .collect();
        drop(policy);
        Self { store, ports }
    }

    /// What the policy in force changed since the last call: a line per
    /// port it would now serve otherwise than it is served.
    pub(in crate::sidecar) fn changes(&mut self) -> Vec<String> {
        let policy = self.store.load();
        let mut notes = Vec::new();
        for (port, served, seen) in &mut self.ports {
            let now = served_protocol(&policy, port);
            if now != *seen && now != *served {
                notes.push(format!(
                    "the policy now serves the inbound listener of application {} as {now}, \
                     but it is served as {served} until the sidecar restarts",
                    port.app
                ));
            }
            *seen = now;
        }
        notes
    }

    /// Logs [`changes`](Self::changes) after every policy change, until
    /// the store is dropped.
    pub(in crate::sidecar) async fn run(mut self) {
        let mut updates = self.store.subscribe();
        while updates.changed().await.is_ok() {
            for note in self.changes() {
                tracing::warn!("{note}");
            }
        }
    }
}
