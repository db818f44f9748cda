//! The one TLS dialect the mesh speaks, and the rustls configs built from it.
//!
//! Both ends of a mesh connection are ours, so there is nothing to negotiate
//! down to: TLS 1.3 only, three AEAD suites, and key exchange that prefers
//! the post-quantum hybrid X25519MLKEM768, then X25519, P-256 and P-384,
//! the groups Linkerd's proxy offers, so that a peer restricted to one of
//! them (P-384 alone, say) still completes its handshake. The
//! provider is aws-lc-rs, chosen here explicitly rather than through a
//! process-wide default, so that no other crate in the binary can change
//! what the mesh accepts.

use std::sync::Arc;

use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion,
    client::{ResolvesClientCert, Resumption, danger::ServerCertVerifier},
    crypto::{CryptoProvider, aws_lc_rs},
    server::{ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier},
    sign::{CertifiedKey, SingleCertAndKey},
    time_provider::TimeProvider,
};

use crate::{connect::Alpn, verify::AnchorDomains};

/// The ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";

/// The ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The protocol versions the mesh speaks: TLS 1.3 alone.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The mesh's crypto provider: aws-lc-rs restricted to the TLS 1.3 suites
/// AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, and to the key exchange
/// groups X25519MLKEM768, X25519, P-256 and P-384, in that order of
/// preference.
///
/// Benchmarks and tests that compare against plain rustls use this too, so
/// that both sides run the same cryptography.
pub fn provider() -> Arc<CryptoProvider> {
    use aws_lc_rs::{cipher_suite, kx_group};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
        ],
        ..aws_lc_rs::default_provider()
    })
}

/// ALPN ids in the server's order of preference: HTTP/2 first, so that two
/// mesh peers multiplex over one connection.
fn alpn() -> Vec<Vec<u8>> {
    vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
}

/// Builds the server config for one set of credentials: `roots` are the
/// trust anchors, and `domains` the same anchors with the trust domains
/// each vouches for, so that a client of another trust domain is refused
/// in the handshake ([`ClientChain`](crate::verify::ClientChain)).
///
/// Session resumption is off on both sides: a resumed session skips
/// certificate verification, so it would carry a peer's identity past a
/// trust-bundle change or its certificate's expiry.
///
/// The client's chain is verified at the time `time` tells, the store's
/// clock.
pub(crate) fn server_config(
    provider: &Arc<CryptoProvider>,
    time: &Arc<dyn TimeProvider>,
    key: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    domains: Arc<AnchorDomains>,
    require_client_cert: bool,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !require_client_cert {
        verifier = verifier.allow_unauthenticated();
    }
    let verifier = verifier
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let verifier = Arc::new(crate::verify::ClientChain::new(
        verifier,
        domains,
        provider.signature_verification_algorithms,
    ));
    let mut config = ServerConfig::builder_with_details(provider.clone(), time.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = alpn();
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A server config that refuses every handshake: it reads the ClientHello
/// and answers with the fatal alert rustls sends when a server has no
/// certificate to present (`access_denied`), so that the client learns at
/// once that the handshake failed, rather than seeing the connection
/// close. For a ClientHello that arrives while the local credentials are
/// outside their validity.
pub(crate) fn refusing_server_config(
    provider: &Arc<CryptoProvider>,
    time: &Arc<dyn TimeProvider>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_details(provider.clone(), time.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCertificate));
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Resolves no certificate, whatever the client asks.
#[derive(Debug)]
struct NoCertificate;

impl ResolvesServerCert for NoCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// Builds a client config around a server verifier and a client
/// certificate resolver. The server's chain is verified at the time
/// `time` tells, the store's clock.
///
/// rustls files custom verifiers under `dangerous()` because a verifier can
/// weaken verification; the one the mesh plugs in checks the chain exactly
/// as rustls's own does and then checks the peer's identity on top.
pub(crate) fn client_config(
    provider: &Arc<CryptoProvider>,
    time: &Arc<dyn TimeProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
    resolver: Arc<dyn ResolvesClientCert>,
    offer: Alpn,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut config = ClientConfig::builder_with_details(provider.clone(), time.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = match offer {
        Alpn::H2AndHttp1 => alpn(),
        Alpn::Http1 => vec![ALPN_HTTP1.to_vec()],
        // rustls leaves the extension out of the ClientHello when the
        // list is empty.
        Alpn::None => Vec::new(),
    };
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_offers_only_the_mesh_suites_and_groups() {
        let p = provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            [
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            ]
        );
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [
                rustls::NamedGroup::X25519MLKEM768,
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::secp256r1,
                rustls::NamedGroup::secp384r1,
            ]
        );
    }
}
