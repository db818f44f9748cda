//! Workload keys of the types other CAs issue: ECDSA P-256 and P-384,
//! Ed25519 and RSA, in the PEM forms they come in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::{CredentialStore, Credentials, InboundMode, StoreConfig};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// A CA written to disk, and its issuer to sign leaves with any key.
struct Issuer {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    issuer_pem: String,
    bundle_pem: String,
}

impl Issuer {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = mesh_tls::ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let issuer_pem = read(mesh_tls::ca::ISSUER_CERT_FILE);
        let key = rcgen::KeyPair::from_pem(&read(mesh_tls::ca::ISSUER_KEY_FILE)).unwrap();
        Self {
            issuer: rcgen::Issuer::from_ca_cert_pem(&issuer_pem, key).unwrap(),
            issuer_pem,
            bundle_pem: ca.bundle_pem().to_owned(),
        }
    }

    /// Credentials for `identity` whose key is of `alg`.
    fn creds(&self, identity: &str, alg: &'static rcgen::SignatureAlgorithm) -> Credentials {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let leaf = RawIssuer::params(vec![uri_san(identity)])
            .signed_by(&key, &self.issuer)
            .unwrap();
        Credentials::from_pem(
            (leaf.pem() + &self.issuer_pem).as_bytes(),
            key.serialize_pem().as_bytes(),
            self.bundle_pem.as_bytes(),
        )
        .unwrap()
    }
}

/// A workload certificate with any of the keys TLS 1.3 signs with loads,
/// and serves mutual TLS both ways with a peer holding a P-256 key.
#[tokio::test]
async fn workload_keys_of_every_tls13_type_serve_mutual_tls() {
    let issuer = Issuer::new();
    for (name, alg) in [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
        ("rsa", &rcgen::PKCS_RSA_SHA256),
    ] {
        let server =
            CredentialStore::with_credentials(StoreConfig::default(), issuer.creds(API, alg))
                .unwrap();
        let client = CredentialStore::with_credentials(
            StoreConfig::default(),
            issuer.creds(WEB, &rcgen::PKCS_ECDSA_P256_SHA256),
        )
        .unwrap();
        let running = serve(server, InboundMode::Strict).await;
        let mut mesh = support::client(connector(client, running.addr, API));
        let reply = get(&mut mesh, running.addr).await.unwrap();
        assert_eq!(reply.body, format!("mutual {WEB}"), "{name} server");
        running.stop().await;

        let server = CredentialStore::with_credentials(
            StoreConfig::default(),
            issuer.creds(API, &rcgen::PKCS_ECDSA_P256_SHA256),
        )
        .unwrap();
        let client =
            CredentialStore::with_credentials(StoreConfig::default(), issuer.creds(WEB, alg))
                .unwrap();
        let running = serve(server, InboundMode::Strict).await;
        let mut mesh = support::client(connector(client, running.addr, API));
        let reply = get(&mut mesh, running.addr).await.unwrap();
        assert_eq!(reply.body, format!("mutual {WEB}"), "{name} client");
        running.stop().await;
    }
}
