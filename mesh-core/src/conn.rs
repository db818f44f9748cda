//! What a layer knows about the connection a request arrived on.
//!
//! The server inserts a [`ConnectionInfo`] into every request's extensions.
//! Authorization reads the peer's identity and address from it, metrics read
//! the TLS status for their `tls` and `client_id` labels, and the sidecar
//! reads it to tell the application who called.

use std::net::SocketAddr;

use crate::identity::Identity;

/// The connection a request arrived on. A request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The address the connection was accepted on.
    pub local_addr: SocketAddr,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// How the peer was authenticated, if at all.
    pub tls: Tls,
}

impl ConnectionInfo {
    /// A plaintext connection: no TLS was offered.
    pub fn plaintext(local_addr: SocketAddr, remote_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            remote_addr,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
        }
    }

    /// The authenticated peer identity, when the connection is mutual TLS.
    pub fn peer_identity(&self) -> Option<&Identity> {
        match &self.tls {
            Tls::Mutual { peer } => Some(peer),
            _ => None,
        }
    }
}

/// The TLS status of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// No TLS, and why.
    Plaintext(NoTlsReason),
    /// TLS, but the client presented no certificate.
    NoClientCert,
    /// Mutual TLS: the peer presented a certificate the trust bundle vouches
    /// for, naming this identity.
    Mutual {
        /// The peer's identity, from its certificate.
        peer: Identity,
    },
}

impl Tls {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Tls::Plaintext(_))
    }
}

/// Why a connection is not TLS. The label values match Linkerd's
/// `no_tls_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoTlsReason {
    /// The peer did not start a TLS handshake.
    NotProvidedByRemote,
    /// TLS is turned off for this listener or target.
    Disabled,
    /// The connection came from, or goes to, the local host.
    Loopback,
    /// The port is configured to skip the mesh.
    PortSkipped,
    /// No local identity is configured yet.
    NoIdentity,
}

impl NoTlsReason {
    /// The metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::NotProvidedByRemote => "not_provided_by_remote",
            Self::Disabled => "disabled",
            Self::Loopback => "loopback",
            Self::PortSkipped => "port_skipped",
            Self::NoIdentity => "no_identity",
        }
    }
}
