//! A trust anchor whose `spiffe` URI SAN is no valid SPIFFE ID claims a
//! trust domain that cannot be read. Read as naming none, it vouched for
//! every identity: a CA of any trust domain, its anchor written with an
//! uppercase letter, could name the workloads of every other. Such a
//! bundle is refused, naming the file, the certificate and the rule it
//! breaks; a reload with it keeps the bundle in service; a CA directory
//! whose `ca.crt` holds one is refused naming `ca.crt`. An anchor whose
//! URI SAN is of another scheme claims no trust domain, and loads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{
    CredentialError, CredentialSource, CredentialStore, Credentials,
    ca::{self, CaError, CertificateAuthority},
    creds::{AnchorDomainProblem, RejectReason},
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// A self-signed CA certificate named `name` whose one URI SAN is `uri`,
/// as PEM, and the issuer that signs under it.
fn anchor(name: &str, uri: &str) -> (String, rcgen::Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![uri_san(uri)];
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, rcgen::Issuer::new(params, key))
}

/// A chain (leaf for `identity`, signed by `anchor` directly) and its key.
fn signed_by(anchor: &rcgen::Issuer<'static, KeyPair>, identity: &str) -> (String, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = RawIssuer::params(vec![uri_san(identity)])
        .signed_by(&key, anchor)
        .unwrap();
    (leaf.pem(), key.serialize_pem())
}

/// The fault in full: the other trust domain's CA, its anchor's trust
/// domain spelt in uppercase, signs a certificate naming one of our
/// workloads; with that anchor beside ours in the bundle, the chain was
/// taken, as the anchor was read as vouching for every identity. Now the
/// bundle is refused, saying which certificate of it and why.
#[test]
fn a_bundle_with_an_anchor_whose_spiffe_id_is_malformed_is_refused() {
    let ours = ca();
    let (bad, bad_issuer) = anchor("other anchor", "spiffe://Other.org");
    let (chain, key) = signed_by(&bad_issuer, WEB);
    let bundle = format!("{}{bad}", ours.bundle_pem());
    let error =
        Credentials::from_pem(chain.as_bytes(), key.as_bytes(), bundle.as_bytes()).unwrap_err();
    let CredentialError::AnchorDomainUnreadable(unreadable) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(unreadable.position, 2);
    assert_eq!(unreadable.subject, "CN=other anchor");
    assert!(
        matches!(&unreadable.problem,
            AnchorDomainProblem::MalformedSpiffeId { uri, error }
                if uri == "spiffe://Other.org"
                    && *error == mesh_core::identity::InvalidIdentity::BadTrustDomainChar('O')),
        "{unreadable:?}"
    );
    assert_eq!(error.reason(), RejectReason::Malformed);
    assert_eq!(
        error.to_string(),
        "trust bundle certificate 2 (CN=other anchor) has the uri san \"spiffe://Other.org\", \
         which is no valid spiffe id (trust domain holds 'O'; only lowercase letters, digits, \
         '.', '-' and '_' are allowed): the trust domain it is the anchor of cannot be read, \
         and read as naming none it would vouch for every identity"
    );

    // Our own workload's credentials, beside the same bundle, are refused
    // alike: the bundle is at fault, whoever's chain it comes with.
    let web = ours.issue(&id(WEB), HOUR).unwrap();
    let error = Credentials::from_pem(
        web.chain_pem().as_bytes(),
        web.key_pem().as_bytes(),
        bundle.as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(error, CredentialError::AnchorDomainUnreadable(_)),
        "{error:?}"
    );

    // From files, the bundle file is named, and the log line says it all.
    let (events, _log) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let files = web.write(dir.path()).unwrap();
    std::fs::write(&files.bundle, &bundle).unwrap();
    let error = CredentialStore::default().load_files(&files).unwrap_err();
    assert!(
        matches!(&error, CredentialError::InFiles { paths, source }
            if *paths == [files.bundle.clone()]
                && matches!(**source, CredentialError::AnchorDomainUnreadable(_))),
        "{error:?}"
    );
    let logged = events.find_at(tracing::Level::ERROR, "rejected identity credentials");
    assert_eq!(logged.len(), 1, "{:?}", events.all());
    for part in [
        &files.bundle.display().to_string(),
        "trust bundle certificate 2 (CN=other anchor)",
        "spiffe://Other.org",
    ] {
        assert!(logged[0].contains(part), "{part} not in {}", logged[0]);
    }
}

/// A bundle rolled out with such an anchor is refused at the reload: the
/// bundle in service stays, and with it the trust domain scoping of
/// every anchor.
#[tokio::test(start_paused = true)]
async fn a_reload_with_an_anchor_whose_spiffe_id_is_malformed_keeps_the_bundle_in_service() {
    let ours = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = ours
        .issue(&id(WEB), HOUR)
        .unwrap()
        .write(dir.path())
        .unwrap();
    let store = CredentialStore::default();
    let source = CredentialSource::Files {
        files: files.clone(),
        interval: Duration::from_secs(3600),
    };
    let task = tokio::spawn(store.start(source).unwrap());
    let before = store.credentials().unwrap();
    // The watcher's first tick comes at once: let it pass.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (bad, _) = anchor("other anchor", "spiffe://other.org/x//y");
    replace_file(
        &files.bundle,
        format!("{}{bad}", ours.bundle_pem()).as_bytes(),
    );
    assert!(store.reload_handle().ask());
    wait_for(&store, 1, 1).await;
    let now = store.credentials().unwrap();
    assert_eq!(now.roots(), before.roots());
    assert_eq!(now.chain(), before.chain());
    assert!(store.is_ready());
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("identity_cert_last_update_successful 0"),
        "{metrics}"
    );
    task.abort();
}

/// The CA hands its `ca.crt` out as every workload's bundle: one holding
/// such an anchor is refused when the CA loads, naming `ca.crt`, rather
/// than by each store the bundle reaches.
#[test]
fn a_ca_whose_anchor_file_holds_a_malformed_spiffe_id_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let (bad, _) = anchor("other anchor", "SPIFFE://other.org");
    let anchor_file = dir.path().join(ca::CA_CERT_FILE);
    std::fs::write(&anchor_file, format!("{}{bad}", ours.bundle_pem())).unwrap();
    let error = CertificateAuthority::load(dir.path()).unwrap_err();
    let CaError::InFile { path, source } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*path, anchor_file);
    let CaError::AnchorDomainUnreadable(unreadable) = &**source else {
        panic!("{error:?}");
    };
    assert_eq!(
        (unreadable.position, unreadable.subject.as_str()),
        (2, "CN=other anchor")
    );
    assert_eq!(error.reason(), Some(RejectReason::Malformed));
    assert!(
        joined(&error).contains("\"SPIFFE://other.org\", which is no valid spiffe id"),
        "{}",
        joined(&error)
    );
}

/// An anchor whose URI SAN is of another scheme (an `https` URL of the
/// CA's) claims no trust domain: it names none, as a plain X.509 anchor,
/// loads, and vouches for any identity, as such an anchor does.
#[test]
fn an_anchor_whose_uri_san_is_not_spiffe_names_no_trust_domain_and_loads() {
    let (plain, plain_issuer) = anchor("corporate root", "https://ca.example.com/root");
    let (chain, key) = signed_by(&plain_issuer, WEB);
    let creds = Credentials::from_pem(chain.as_bytes(), key.as_bytes(), plain.as_bytes()).unwrap();
    assert_eq!(creds.identity(), &id(WEB));
    creds.check(std::time::SystemTime::now()).unwrap();
}
