use std::{collections::HashMap, net::SocketAddr};

use http::uri::Authority;
use mesh_core::Identity;

/// How the connector reaches one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundTls {
    /// Mutual TLS, and the server must prove this identity. Fails closed.
    Mtls(Identity),
    /// Plaintext, for targets outside the mesh.
    Plaintext,
}

/// Which targets get mutual TLS, and with which expected identity.
///
/// Targets are matched by the request URI's authority (`host:port`, as the
/// proxy's forwarder writes it for an endpoint); anything unmatched gets
/// the default.
#[derive(Clone, Debug)]
pub struct TlsTargets {
    default: OutboundTls,
    targets: HashMap<Authority, OutboundTls>,
}

impl TlsTargets {
    /// Every target gets `default`.
    pub fn new(default: OutboundTls) -> Self {
        Self {
            default,
            targets: HashMap::new(),
        }
    }

    /// Reaches `authority` with `tls`.
    #[must_use]
    pub fn with_target(mut self, authority: Authority, tls: OutboundTls) -> Self {
        self.targets.insert(authority, tls);
        self
    }

    /// Reaches the endpoint `addr` with `tls`: the authority
    /// `http://{addr}/` URIs carry.
    #[must_use]
    pub fn with_endpoint(self, addr: SocketAddr, tls: OutboundTls) -> Self {
        match Authority::try_from(addr.to_string()) {
            Ok(authority) => self.with_target(authority, tls),
            // A socket address always formats as a valid authority.
            Err(_) => self,
        }
    }

    /// The default and the per-authority settings.
    pub(super) fn into_parts(self) -> (OutboundTls, HashMap<Authority, OutboundTls>) {
        (self.default, self.targets)
    }

    /// How `authority` is reached.
    pub fn get(&self, authority: &Authority) -> &OutboundTls {
        self.targets.get(authority).unwrap_or(&self.default)
    }
}
