use std::{fmt, io, time::Duration};

use mesh_core::BoxError;

use crate::{
    creds::UnusableCredentials,
    verify::{IdentityMismatch, NoAnchorOfTrustDomain},
};

/// Why the connector could not open a connection.
///
/// An `mtls` target never falls back to plaintext: every one of these
/// fails the connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The underlying connector failed (DNS, TCP connect, its timeout).
    Connect(BoxError),
    /// No local credentials are loaded yet.
    NoCredentials,
    /// The local certificate is outside its validity by the store's clock:
    /// it has expired and no newer one was loaded, or it is not valid yet.
    /// The error names the identity and the `notAfter` (or `notBefore`).
    CredentialsUnusable(UnusableCredentials),
    /// The target's host cannot be sent as a TLS server name. Only a
    /// target whose identity is a SPIFFE ID sends its host: a DNS-style
    /// identity is sent itself.
    InvalidServerName(rustls_pki_types::InvalidDnsNameError),
    /// The server's certificate chains to the trust bundle but names
    /// another identity than the one configured for the target.
    IdentityMismatch(IdentityMismatch),
    /// The server's certificate names a SPIFFE ID, but its chain leads
    /// only to trust anchors of other trust domains, which do not vouch
    /// for it (see [what a certificate
    /// proves](crate::connect#what-a-certificate-proves)). The refusal,
    /// naming the identity, is also the error's source.
    NoAnchorOfTrustDomain(NoAnchorOfTrustDomain),
    /// The TLS handshake failed.
    Handshake(io::Error),
    /// The TLS handshake took longer than the handshake timeout.
    Timeout(Duration),
}

impl ConnectError {
    /// Whether the server presented another identity than the expected one.
    pub fn is_identity_mismatch(&self) -> bool {
        matches!(self, Self::IdentityMismatch(_))
    }

    pub(crate) fn handshake(err: io::Error) -> Self {
        let other = err
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
                return Self::IdentityMismatch(mismatch.clone());
            }
            if let Some(outside) = other.downcast_ref::<NoAnchorOfTrustDomain>() {
                return Self::NoAnchorOfTrustDomain(outside.clone());
            }
        }
        Self::Handshake(err)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(_) => f.write_str("connect failed"),
            Self::NoCredentials => f.write_str("no local identity credentials loaded"),
            Self::CredentialsUnusable(unusable) => unusable.fmt(f),
            Self::InvalidServerName(_) => f.write_str("target host is not a valid tls server name"),
            Self::IdentityMismatch(_) => f.write_str("server identity mismatch"),
            Self::NoAnchorOfTrustDomain(refusal) => write!(
                f,
                "server identity {} is vouched for by no trust anchor of trust domain {}",
                refusal.identity,
                refusal.identity.trust_domain_name().unwrap_or_default()
            ),
            Self::Handshake(_) => f.write_str("tls handshake failed"),
            Self::Timeout(after) => write!(f, "tls handshake timed out after {after:?}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(&**e),
            Self::InvalidServerName(e) => Some(e),
            Self::IdentityMismatch(e) => Some(e),
            Self::NoAnchorOfTrustDomain(e) => Some(e),
            Self::CredentialsUnusable(e) => Some(e),
            Self::Handshake(e) => Some(e),
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
