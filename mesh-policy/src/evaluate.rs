//! Who is asking: the client half of a decision's input.

use std::net::IpAddr;

use mesh_core::{ConnectionInfo, Identity, Tls, conn::Sni};

/// The client of a request or connection, as authorization sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client<'a> {
    /// How the client authenticated.
    pub tls: ClientTls<'a>,
    /// The client's address, when known. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.5`) is matched as the IPv4 address it carries.
    pub addr: Option<IpAddr>,
}

/// How a client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTls<'a> {
    /// No TLS.
    Plaintext,
    /// TLS without a client certificate: encrypted, but no identity.
    NoClientCert,
    /// Mutual TLS with this identity.
    Mutual(&'a Identity),
    /// TLS the mesh passed through to the application, whose ClientHello
    /// asked for this server name ([`Tls::Passthrough`]). The mesh
    /// authenticated nothing: as in Linkerd, whose proxy grants a
    /// `ServerTls::Passthru` connection only authorizations that need no
    /// authentication (`Authentication::Unauthenticated`, with its
    /// networks), such a client meets neither an identity requirement
    /// nor one for TLS without an identity (`unauthenticatedTLS`), which
    /// asks for TLS the mesh terminated. A network requirement it meets
    /// by its address, as any client.
    Passthrough(&'a Sni),
}

impl<'a> Client<'a> {
    /// The client of a connection. Without [`ConnectionInfo`] (a request
    /// that did not come through the mesh's server) the client is
    /// unauthenticated and has no address, so only rules that need neither
    /// allow it.
    ///
    /// An IPv4 client of a dual-stack (`[::]`) listener is reported as an
    /// IPv4-mapped IPv6 address (`::ffff:10.0.0.5`); it is taken as the
    /// IPv4 address it is, so IPv4 networks match it.
    pub fn from_connection(info: Option<&'a ConnectionInfo>) -> Self {
        match info {
            Some(info) => Self {
                tls: ClientTls::from(&info.tls),
                addr: Some(info.remote_addr.ip().to_canonical()),
            },
            None => Self::unknown(),
        }
    }

    /// An unauthenticated client with no address.
    pub fn unknown() -> Self {
        Self {
            tls: ClientTls::Plaintext,
            addr: None,
        }
    }

    /// The client's identity, when it has one.
    pub fn identity(&self) -> Option<&'a Identity> {
        match self.tls {
            ClientTls::Mutual(id) => Some(id),
            _ => None,
        }
    }
}

impl<'a> From<&'a Tls> for ClientTls<'a> {
    fn from(tls: &'a Tls) -> Self {
        match tls {
            Tls::Plaintext(_) => Self::Plaintext,
            Tls::NoClientCert => Self::NoClientCert,
            Tls::Mutual { peer } => Self::Mutual(peer),
            Tls::Passthrough { sni } => Self::Passthrough(sni),
        }
    }
}
