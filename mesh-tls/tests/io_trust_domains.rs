//! A trust bundle holding the anchors of several trust domains: an anchor
//! that names its trust domain (a URI SAN `spiffe://<trust domain>`, as the
//! mesh's CA and SPIRE write it) vouches for that trust domain's SPIFFE IDs
//! alone, on both ends of a connection, as go-spiffe's `x509svid.Verify`
//! validates an SVID against its own trust domain's bundle only. An anchor
//! that names no trust domain vouches for any identity, as before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::Uri;
use mesh_core::{BoxError, Tls};
use mesh_tls::{AcceptConfig, ConnectError, CredentialStore, Credentials, StoreConfig, TlsAccept};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use support::*;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";
const OTHER_API: &str = "spiffe://other.org/ns/shop/sa/api";
const OTHER_WEB: &str = "spiffe://other.org/ns/shop/sa/web";

/// An anchor that names no trust domain (no URI SAN), as a corporate CA's
/// or Linkerd's, with a leaf naming `identity` it signs directly: the
/// leaf's PEM and key, and the anchor's PEM.
fn unnamed_anchor_leaf(identity: &str) -> (String, String, String) {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "an anchor naming no trust domain");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + 24 * HOUR).into();
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_pem = params.self_signed(&anchor_key).unwrap().pem();
    let anchor = rcgen::Issuer::new(params, anchor_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = RawIssuer::params(vec![uri_san(identity)])
        .signed_by(&key, &anchor)
        .unwrap()
        .pem();
    (leaf, key.serialize_pem(), anchor_pem)
}

fn creds_from(chain: &str, key: &str, bundle: &str) -> Credentials {
    Credentials::from_pem(chain.as_bytes(), key.as_bytes(), bundle.as_bytes()).unwrap()
}

fn store_of(creds: Credentials) -> CredentialStore {
    CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap()
}

/// Opens a connection with the mesh's connector to a server presenting
/// `chain` and `key`, expecting `expected`: the handshake's verdict.
async fn connect(
    local: CredentialStore,
    (chain, key): (String, String),
    expected: &str,
) -> Result<(), ConnectError> {
    let addr = serve_raw_tls(&chain, &key).await;
    let mut connector = connector(local, addr, expected);
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    connector.ready().await?.call(uri).await.map(drop)
}

/// Presents `chain` and `key` as a client to a permissive mesh acceptor
/// serving `local`: how it saw the client, or why it refused it.
async fn present(local: CredentialStore, (chain, key): (String, String)) -> Result<Tls, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = accept_one(listener, TlsAccept::new(local, AcceptConfig::default()));
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((&chain, &key)),
    );
    let client = tokio::spawn(raw_get(config, addr));
    let verdict = server.await.unwrap();
    client.abort();
    verdict.map(|accepted| accepted.tls)
}

#[tokio::test]
async fn a_client_takes_a_spiffe_id_only_from_an_anchor_of_its_trust_domain() {
    let (ours, theirs) = (Signer::new("example.org"), Signer::new("other.org"));
    let local = || creds_trusting(&ours.ca, WEB, HOUR, &[&ours.ca, &theirs.ca]);

    // The other trust domain's CA names a workload of ours: refused, and
    // the error says whose anchor was missing.
    let err = connect(store_of(local()), theirs.sign(API), API)
        .await
        .unwrap_err();
    let why = format!("{}", Causes(&err));
    assert!(
        why.contains(&format!(
            "failed: {API} is vouched for by no trust anchor of trust domain example.org"
        )),
        "{why}"
    );
    assert!(!err.is_identity_mismatch(), "{err:?}");

    // Each CA still names its own workloads.
    connect(store_of(local()), ours.sign(API), API)
        .await
        .unwrap();
    connect(store_of(local()), theirs.sign(OTHER_API), OTHER_API)
        .await
        .unwrap();

    // A bundle holding only our anchor: our CA cannot name theirs either.
    let only_ours = creds_trusting(&ours.ca, WEB, HOUR, &[&ours.ca]);
    connect(store_of(only_ours), ours.sign(OTHER_API), OTHER_API)
        .await
        .unwrap_err();
}

#[tokio::test]
async fn a_server_takes_a_spiffe_id_only_from_an_anchor_of_its_trust_domain() {
    let (ours, theirs) = (Signer::new("example.org"), Signer::new("other.org"));
    let local = || store_of(creds_trusting(&ours.ca, API, HOUR, &[&ours.ca, &theirs.ca]));

    let refusing = local();
    let err = present(refusing.clone(), theirs.sign(WEB))
        .await
        .unwrap_err();
    let why = format!("{}", Causes(&*err));
    assert!(
        why.contains(&format!(
            "client identity {WEB} is vouched for by no trust anchor of trust domain example.org"
        )),
        "{why}"
    );
    let metrics = encode(&refusing);
    assert!(
        metrics.contains(
            "tls_handshake_failures_total{direction=\"inbound\",reason=\"unknown_issuer\"} 1"
        ),
        "{metrics}"
    );

    for (signer, identity) in [(&ours, WEB), (&theirs, OTHER_WEB)] {
        match present(local(), signer.sign(identity)).await.unwrap() {
            Tls::Mutual { peer } => assert_eq!(peer.as_str(), identity),
            other => panic!("{other:?}"),
        }
    }

    // Only our anchor in the bundle: a workload of theirs it names is
    // refused too, without a second anchor to try.
    let only_ours = store_of(creds_trusting(&ours.ca, API, HOUR, &[&ours.ca]));
    present(only_ours, ours.sign(OTHER_WEB)).await.unwrap_err();
}

#[tokio::test]
async fn an_anchor_naming_no_trust_domain_vouches_for_any() {
    let (leaf, key, anchor) = unnamed_anchor_leaf(OTHER_API);
    // The local credentials under another unnamed anchor: the bundle
    // holds both.
    let (local_leaf, local_key, local_anchor) = unnamed_anchor_leaf(WEB);
    let bundle = format!("{anchor}{local_anchor}");
    let local = || store_of(creds_from(&local_leaf, &local_key, &bundle));
    connect(local(), (leaf.clone(), key.clone()), OTHER_API)
        .await
        .unwrap();
    match present(local(), (leaf, key)).await.unwrap() {
        Tls::Mutual { peer } => assert_eq!(peer.as_str(), OTHER_API),
        other => panic!("{other:?}"),
    }
}

#[test]
fn local_credentials_under_another_trust_domains_anchor_are_refused() {
    let theirs = Signer::new("other.org");
    let (chain, key) = theirs.sign(WEB);
    let creds = creds_from(&chain, &key, theirs.ca.bundle_pem());
    let err = CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap_err();
    let why = format!("{}", Causes(&err));
    assert!(
        why.contains(&format!(
            "certificate chain verifies only through trust anchors of other trust domains than \
             that of {WEB}, example.org"
        )),
        "{why}"
    );
}

/// `error` and its causes, each after a `: `.
struct Causes<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}
