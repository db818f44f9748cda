use std::{fmt, io, time::Duration};

use mesh_core::conn::Sni;

use crate::{
    cert::NoIdentity, creds::UnusableCredentials, metrics::HandshakeFailure,
    verify::NoAnchorOfTrustDomain,
};

/// Why an inbound connection was closed before it was served.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError {
    /// The peer sent too little to detect TLS, or did not finish the
    /// handshake, within the handshake timeout.
    Timeout(Duration),
    /// The peer closed the connection before sending a byte.
    Closed,
    /// Reading the first bytes failed.
    Io(io::Error),
    /// A plaintext client on a strict port.
    PlaintextRefused,
    /// A TLS client without a certificate on a strict port.
    NoClientCertificate,
    /// A ClientHello that names another server than this workload (the
    /// one named here) on a strict port: TLS for the application, which
    /// the port would pass through untouched, and so not mutual TLS with
    /// the mesh, which alone a strict port admits.
    PassthroughRefused(Sni),
    /// A TLS client arrived before any local credentials were loaded. It
    /// was answered with the alert `access_denied`, as for
    /// [`AcceptError::CredentialsUnusable`].
    NoCredentials,
    /// A TLS client arrived while the local credentials in service were
    /// outside their validity: expired with no renewal in their place, or
    /// not valid yet by the store's clock. The handshake was refused with
    /// the alert `access_denied`, what rustls sends for a server with no
    /// certificate to present, rather than served with a certificate the
    /// client would refuse (or, worse, accept). The error names the
    /// identity and the `notAfter` (or `notBefore`).
    CredentialsUnusable(UnusableCredentials),
    /// The client's certificate is trusted but names no identity.
    NoPeerIdentity(NoIdentity),
    /// The client's certificate names a SPIFFE ID, but its chain leads
    /// only to trust anchors of other trust domains, which do not vouch
    /// for it (see [what a certificate
    /// proves](crate::connect#what-a-certificate-proves)). The handshake
    /// refused it, and the client received the alert
    /// `certificate_unknown`.
    NoAnchorOfTrustDomain(NoAnchorOfTrustDomain),
    /// The handshake failed.
    Handshake(io::Error),
}

impl AcceptError {
    /// The handshake failed with `err`: a refusal that the variants here
    /// name is reported as such. A strict port's config requires a client
    /// certificate, so rustls itself ends the handshake of a client that
    /// sends none (with the alert `certificate_required`): that is
    /// [`AcceptError::NoClientCertificate`], not a bare handshake failure.
    pub(crate) fn handshake(err: io::Error) -> Self {
        let refusal = match err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::NoCertificatesPresented) => return Self::NoClientCertificate,
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
                other.0.downcast_ref::<NoAnchorOfTrustDomain>()
            }
            _ => None,
        };
        match refusal {
            Some(refusal) => Self::NoAnchorOfTrustDomain(refusal.clone()),
            None => Self::Handshake(err),
        }
    }

    /// The bounded reason, as counted in `tls_handshake_failures_total`.
    /// `None` for a peer that closed before sending anything, which is not
    /// a failure (health checks do it).
    pub fn failure(&self) -> Option<HandshakeFailure> {
        Some(match self {
            Self::Timeout(_) => HandshakeFailure::Timeout,
            Self::Closed => return None,
            Self::Io(_) => HandshakeFailure::Io,
            Self::PlaintextRefused => HandshakeFailure::PlaintextRefused,
            Self::NoClientCertificate => HandshakeFailure::NoClientCertificate,
            Self::PassthroughRefused(_) => HandshakeFailure::PassthroughRefused,
            Self::NoCredentials => HandshakeFailure::NoCredentials,
            Self::CredentialsUnusable(unusable) => unusable.failure(),
            Self::NoPeerIdentity(_) => HandshakeFailure::NoPeerIdentity,
            // No anchor of the bundle the identity's trust domain has
            // issued the chain: as unknown as no anchor at all.
            Self::NoAnchorOfTrustDomain(_) => HandshakeFailure::UnknownIssuer,
            Self::Handshake(e) => HandshakeFailure::of_io(e),
        })
    }
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(after) => {
                write!(f, "tls detection or handshake timed out after {after:?}")
            }
            Self::Closed => f.write_str("connection closed before sending anything"),
            Self::Io(_) => f.write_str("reading the first bytes failed"),
            Self::PlaintextRefused => f.write_str("plaintext connection refused on a strict port"),
            Self::NoClientCertificate => {
                f.write_str("tls client without a certificate refused on a strict port")
            }
            Self::PassthroughRefused(sni) => write!(
                f,
                "tls client hello for another server ({sni}) refused on a strict port"
            ),
            Self::NoCredentials => f.write_str("no local identity credentials loaded"),
            Self::CredentialsUnusable(unusable) => write!(f, "tls refused: {unusable}"),
            Self::NoPeerIdentity(_) => f.write_str("client certificate names no identity"),
            Self::NoAnchorOfTrustDomain(refusal) => write!(
                f,
                "client identity {} is vouched for by no trust anchor of trust domain {}",
                refusal.identity,
                refusal.identity.trust_domain_name().unwrap_or_default()
            ),
            Self::Handshake(_) => f.write_str("tls handshake failed"),
        }
    }
}

impl std::error::Error for AcceptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) | Self::Handshake(e) => Some(e),
            Self::NoPeerIdentity(e) => Some(e),
            Self::NoAnchorOfTrustDomain(e) => Some(e),
            Self::CredentialsUnusable(e) => Some(e),
            _ => None,
        }
    }
}
