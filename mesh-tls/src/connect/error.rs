use std::{fmt, io, net::SocketAddr, time::Duration};

use http::uri::Authority;
use mesh_core::{BoxError, Identity};

use crate::{
    creds::UnusableCredentials,
    verify::{IdentityMismatch, NoAnchorOfTrustDomain},
};

/// Why the connector could not open a connection.
///
/// An `mtls` target never falls back to plaintext: every one of these
/// fails the connection. The ones met in the handshake name the server
/// ([`ExpectedServer`]: its address and the identity it was to prove), and
/// a connect that failed, that had no usable local credentials to
/// present, whose host is no TLS server name, or that would have sent an
/// `https` URI in plaintext, names its target
/// ([`ConnectTarget`]: the authority dialled, and the identity expected of
/// an `mtls` target), so
/// that a log line or a caller can tell which upstream failed; what went
/// wrong is the error's [`source`](std::error::Error::source), kept out of
/// its message so that a line joining the chain says it once:
/// `tls handshake with 10.0.0.7:8080 (expecting
/// spiffe://cluster.local/ns/emojivoto/sa/voting) failed: <cause>`,
/// `connect to 10.0.0.7:8080 (expecting
/// spiffe://cluster.local/ns/emojivoto/sa/voting) failed: tcp connect
/// error: <cause>`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The underlying connector failed (DNS, TCP connect, its timeout).
    /// Its error is the error's source.
    Connect {
        /// What the connection was for.
        target: ConnectTarget,
        /// Why the underlying connector failed.
        error: BoxError,
    },
    /// No local credentials are loaded yet, to present to an `mtls`
    /// target's server.
    NoCredentials {
        /// What the connection was for.
        target: ConnectTarget,
    },
    /// The local certificate is outside its validity by the store's clock:
    /// it has expired and no newer one was loaded, or it is not valid yet.
    /// Its source names the local identity and the `notAfter` (or
    /// `notBefore`).
    CredentialsUnusable {
        /// What the connection was for.
        target: ConnectTarget,
        /// Why the local credentials cannot be presented.
        unusable: UnusableCredentials,
    },
    /// The target's host cannot be sent as a TLS server name. Only a
    /// target whose identity is a SPIFFE ID sends its host: a DNS-style
    /// identity is sent itself. The connection fails before it is made;
    /// the parse error is the error's source.
    InvalidServerName {
        /// What the connection was for: the authority whose host is no
        /// server name, and the identity expected.
        target: ConnectTarget,
        /// Why the host is no server name.
        error: rustls_pki_types::InvalidDnsNameError,
    },
    /// The URI's scheme is `https` but its target is reached in plaintext
    /// (an [`OutboundTls::Plaintext`](crate::OutboundTls::Plaintext)
    /// target, not reached at an `mtls` target's address). An `https` URI
    /// asks for an encrypted connection, and its request may carry
    /// credentials its sender means to keep off the wire; sent in
    /// plaintext, they would travel in the clear to whoever holds the
    /// port. So the connection fails before a byte of the request is
    /// written. hyper-util's own `HttpConnector` refuses an `https` URI
    /// too, unless told to pass it on to a TLS layer above, which this
    /// connector is.
    HttpsInPlaintext {
        /// What the connection was for: the authority of the `https` URI.
        target: ConnectTarget,
    },
    /// The server's certificate chains to the trust bundle but names
    /// another identity than the one configured for the target. The
    /// mismatch is the error's source.
    IdentityMismatch {
        /// The server the handshake was with.
        server: ExpectedServer,
        /// What the certificate named instead.
        mismatch: IdentityMismatch,
    },
    /// The server's certificate names a SPIFFE ID, but its chain leads
    /// only to trust anchors of other trust domains, which do not vouch
    /// for it (see [what a certificate
    /// proves](crate::connect#what-a-certificate-proves)). The refusal,
    /// naming the identity, is the error's source.
    NoAnchorOfTrustDomain {
        /// The server the handshake was with.
        server: ExpectedServer,
        /// The identity no anchor of its trust domain vouched for.
        refusal: NoAnchorOfTrustDomain,
    },
    /// The TLS handshake failed otherwise (a server that speaks no TLS, a
    /// certificate that does not chain to the trust bundle, a connection
    /// closed). The I/O error, which wraps rustls's when rustls failed the
    /// handshake, is the error's source.
    Handshake {
        /// The server the handshake was with.
        server: ExpectedServer,
        /// Why the handshake failed.
        error: io::Error,
    },
    /// The TLS handshake took longer than the handshake timeout.
    Timeout {
        /// The server the handshake was with.
        server: ExpectedServer,
        /// The handshake timeout.
        after: Duration,
    },
}

/// The server a TLS handshake was with, as a [`ConnectError`] names it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpectedServer {
    /// The address the connection reached, when known: read from the
    /// connection (hyper-util's `HttpConnector` records it, while the
    /// connection is not reset) when the handshake failed, or, for a URI
    /// naming a host, when it started; else the address the request URI
    /// names. `None` for a URI naming a host whose connection says
    /// nothing.
    pub addr: Option<SocketAddr>,
    /// The identity the server was expected to prove.
    pub identity: Identity,
}

/// What a connection that could not be made was for, as
/// [`ConnectError::Connect`], [`ConnectError::NoCredentials`],
/// [`ConnectError::CredentialsUnusable`],
/// [`ConnectError::InvalidServerName`] and
/// [`ConnectError::HttpsInPlaintext`] name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectTarget {
    /// The authority the connector was asked for (`10.0.0.7:8080`,
    /// `db.shop:5432`): for an endpoint, its address. `None` when the
    /// connector failed before it was asked for one (its readiness).
    pub authority: Option<Authority>,
    /// The identity the server was to prove, for an `mtls` target; `None`
    /// for one reached in plaintext.
    pub identity: Option<Identity>,
}

impl ConnectTarget {
    pub(crate) fn new(authority: Option<Authority>, identity: Option<Identity>) -> Self {
        Self {
            authority,
            identity,
        }
    }
}

impl ConnectError {
    /// The underlying connector failed to connect to `target`.
    pub(crate) fn connect(target: ConnectTarget, error: impl Into<BoxError>) -> Self {
        Self::Connect {
            target,
            error: error.into(),
        }
    }

    /// What a connection that could not be made, had no usable local
    /// credentials, had no server name to send, or was refused for an
    /// `https` URI in plaintext, was for; `None` for an
    /// error met in the handshake ([`server`](Self::server) names its
    /// server).
    pub fn target(&self) -> Option<&ConnectTarget> {
        match self {
            Self::Connect { target, .. }
            | Self::NoCredentials { target }
            | Self::CredentialsUnusable { target, .. }
            | Self::InvalidServerName { target, .. }
            | Self::HttpsInPlaintext { target } => Some(target),
            _ => None,
        }
    }

    /// Whether the server presented another identity than the expected one.
    pub fn is_identity_mismatch(&self) -> bool {
        matches!(self, Self::IdentityMismatch { .. })
    }

    /// The server a failed handshake was with; `None` for an error met
    /// before any handshake.
    pub fn server(&self) -> Option<&ExpectedServer> {
        match self {
            Self::IdentityMismatch { server, .. }
            | Self::NoAnchorOfTrustDomain { server, .. }
            | Self::Handshake { server, .. }
            | Self::Timeout { server, .. } => Some(server),
            _ => None,
        }
    }

    pub(crate) fn handshake(server: ExpectedServer, error: io::Error) -> Self {
        let other = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .and_then(|e| match e {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                    Some(&other.0)
                }
                _ => None,
            });
        if let Some(other) = other {
            if let Some(mismatch) = other.downcast_ref::<IdentityMismatch>() {
                return Self::IdentityMismatch {
                    server,
                    mismatch: mismatch.clone(),
                };
            }
            if let Some(refusal) = other.downcast_ref::<NoAnchorOfTrustDomain>() {
                return Self::NoAnchorOfTrustDomain {
                    server,
                    refusal: refusal.clone(),
                };
            }
        }
        Self::Handshake { server, error }
    }
}

/// `tls handshake with <addr> (expecting <identity>)`, without the address
/// when it is not known.
fn handshake_with(f: &mut fmt::Formatter<'_>, server: &ExpectedServer) -> fmt::Result {
    f.write_str("tls handshake")?;
    if let Some(addr) = server.addr {
        write!(f, " with {addr}")?;
    }
    write!(f, " (expecting {})", server.identity)
}

/// `connect to <authority> (expecting <identity>)`, without what is not
/// known.
fn connect_to(f: &mut fmt::Formatter<'_>, target: &ConnectTarget) -> fmt::Result {
    f.write_str("connect")?;
    if let Some(authority) = &target.authority {
        write!(f, " to {authority}")?;
    }
    if let Some(identity) = &target.identity {
        write!(f, " (expecting {identity})")?;
    }
    Ok(())
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { target, .. } => {
                connect_to(f, target)?;
                f.write_str(" failed")
            }
            Self::NoCredentials { target } => {
                f.write_str("no local identity credentials loaded to ")?;
                connect_to(f, target)
            }
            Self::CredentialsUnusable { target, .. } => {
                f.write_str("local identity credentials unusable to ")?;
                connect_to(f, target)
            }
            Self::InvalidServerName { target, .. } => {
                f.write_str("target host")?;
                if let Some(authority) = &target.authority {
                    write!(f, " {authority}")?;
                }
                f.write_str(" is not a valid tls server name")?;
                if let Some(identity) = &target.identity {
                    write!(f, " (expecting {identity})")?;
                }
                Ok(())
            }
            Self::HttpsInPlaintext { target } => {
                f.write_str("refused to send https://")?;
                if let Some(authority) = &target.authority {
                    f.write_str(authority.as_str())?;
                }
                f.write_str(" in plaintext: the target is not reached over mutual tls")
            }
            Self::IdentityMismatch { server, .. }
            | Self::NoAnchorOfTrustDomain { server, .. }
            | Self::Handshake { server, .. } => {
                handshake_with(f, server)?;
                f.write_str(" failed")
            }
            Self::Timeout { server, after } => {
                handshake_with(f, server)?;
                write!(f, " timed out after {after:?}")
            }
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect { error, .. } => Some(&**error),
            Self::InvalidServerName { error, .. } => Some(error),
            Self::IdentityMismatch { mismatch, .. } => Some(mismatch),
            Self::NoAnchorOfTrustDomain { refusal, .. } => Some(refusal),
            Self::CredentialsUnusable { unusable, .. } => Some(unusable),
            Self::Handshake { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A client connection was closed because a certificate that
/// authenticated it has expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionExpired;

impl fmt::Display for ConnectionExpired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed: a certificate that authenticated it has expired")
    }
}

impl std::error::Error for ConnectionExpired {}
