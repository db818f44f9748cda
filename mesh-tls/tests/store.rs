//! The credential store's push API: what it accepts, what it refuses, and
//! what readiness and metrics say about it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::reissued;
use crate::support;

use std::time::{Duration, SystemTime};

use mesh_core::admin::Readiness;
use mesh_tls::{
    CredentialError, CredentialStore, Credentials, StoreConfig,
    ca::{CertificateAuthority, IssueRequest},
    creds::RejectReason,
};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

fn issued(ca: &CertificateAuthority, request: &IssueRequest) -> Credentials {
    ca.issue_with(request).unwrap().credentials().unwrap()
}

#[test]
fn bad_updates_are_refused_and_the_credentials_in_service_stay() {
    let ca = ca();
    let store = store(&ca, WEB);
    let before = store.credentials().unwrap().chain()[0].clone();
    let now = SystemTime::now();

    let other_domain = CertificateAuthority::generate("other.org".parse().unwrap()).unwrap();
    let other_domain = other_domain
        .issue(&id("spiffe://other.org/ns/shop/sa/web"), HOUR)
        .unwrap()
        .credentials()
        .unwrap();
    let expired = issued(
        &ca,
        &IssueRequest::new(id(WEB))
            .with_not_before(now - 2 * HOUR)
            .with_ttl(HOUR),
    );
    let not_yet_valid = issued(
        &ca,
        &IssueRequest::new(id(WEB))
            .with_not_before(now + HOUR)
            .with_ttl(HOUR),
    );
    let stranger = support::ca().issue(&id(WEB), HOUR).unwrap();
    let untrusted = Credentials::from_pem(
        stranger.chain_pem().as_bytes(),
        stranger.key_pem().as_bytes(),
        ca.bundle_pem().as_bytes(),
    )
    .unwrap();

    let cases = [
        (other_domain, RejectReason::WrongTrustDomain),
        (expired, RejectReason::Expired),
        (not_yet_valid, RejectReason::NotYetValid),
        (untrusted, RejectReason::Untrusted),
    ];
    for (creds, reason) in cases {
        let error = store.update(creds).unwrap_err();
        assert_eq!(error.reason(), reason, "{error}");
        assert_eq!(store.credentials().unwrap().chain()[0], before);
    }
    let metrics = encode(&store);
    for reason in [
        "wrong_trust_domain",
        "expired",
        "not_yet_valid",
        "untrusted",
    ] {
        let line = format!("identity_cert_rejected_updates_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "missing {line}\n{metrics}");
    }
    assert_eq!(store.subscribe().borrow().rejected, 4);
}

#[test]
fn a_store_configured_with_an_identity_refuses_certificates_for_another() {
    let ca = ca();
    let config = StoreConfig {
        identity: Some(id(WEB)),
        ..StoreConfig::default()
    };
    let store = CredentialStore::new(config);
    let error = store
        .update(creds(&ca, "spiffe://example.org/ns/shop/sa/api"))
        .unwrap_err();
    assert!(
        matches!(&error, CredentialError::WrongIdentity { expected, .. } if *expected == id(WEB)),
        "{error:?}"
    );
    assert!(!store.is_ready());
    store.update(creds(&ca, WEB)).unwrap();
    assert_eq!(store.identity(), Some(id(WEB)));
}

#[test]
fn the_trust_domain_of_the_first_credentials_binds_later_updates() {
    let ca = ca();
    let store = CredentialStore::default();
    assert_eq!(store.trust_domain(), None);
    store.update(creds(&ca, WEB)).unwrap();
    assert_eq!(store.trust_domain().unwrap().as_str(), "example.org");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_when_parsed() {
    let ca = ca();
    let one = ca.issue(&id(WEB), HOUR).unwrap();
    let two = ca.issue(&id(WEB), HOUR).unwrap();
    let error = Credentials::from_pem(
        one.chain_pem().as_bytes(),
        two.key_pem().as_bytes(),
        one.bundle_pem().as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(error, CredentialError::KeyMismatch), "{error:?}");
    assert_eq!(error.reason(), RejectReason::KeyMismatch);
    let error = Credentials::from_pem(one.chain_pem().as_bytes(), b"", one.bundle_pem().as_bytes())
        .unwrap_err();
    assert!(matches!(error, CredentialError::NoPrivateKey), "{error:?}");
    let error = Credentials::from_pem(one.chain_pem().as_bytes(), one.key_pem().as_bytes(), b"")
        .unwrap_err();
    assert!(matches!(error, CredentialError::EmptyBundle), "{error:?}");
}

#[test]
fn readiness_opens_once_valid_credentials_load() {
    let ca = ca();
    let readiness = Readiness::new();
    let store = CredentialStore::default();
    store.set_readiness(readiness.gate("identity"));
    assert!(!readiness.is_ready());
    assert_eq!(readiness.pending(), vec!["identity".into()]);

    let expired = issued(
        &ca,
        &IssueRequest::new(id(WEB))
            .with_not_before(SystemTime::now() - 2 * HOUR)
            .with_ttl(HOUR),
    );
    assert!(store.update(expired).is_err());
    assert!(!readiness.is_ready(), "refused credentials leave it closed");

    store.update(creds(&ca, WEB)).unwrap();
    assert!(readiness.is_ready());

    // A gate registered after the load opens at once.
    let late = Readiness::new();
    store.set_readiness(late.gate("identity"));
    assert!(late.is_ready());
}

#[test]
fn rotations_and_expiry_are_exposed_and_identical_updates_change_nothing() {
    let ca = ca();
    let first = creds(&ca, WEB);
    let store = CredentialStore::with_credentials(StoreConfig::default(), first.clone()).unwrap();
    store.update(first).unwrap();
    assert_eq!(
        store.subscribe().borrow().loaded,
        1,
        "the same credentials again are no update"
    );

    let second = creds(&ca, WEB);
    let expires = second
        .not_after()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    store.update(second).unwrap();
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rotations_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "identity_cert_expiration_timestamp_seconds {expires}"
        )),
        "{metrics}"
    );
}

/// The expiry the metric reports is when the chain stops verifying, which
/// is when connections are retired: an issuer that expires before the
/// workload certificate ends the identity first.
#[test]
fn the_expiry_exposed_is_the_chains_when_an_intermediate_ends_first() {
    let hour = Duration::from_secs(3600);
    let (short_ca, chain, key) = leaf_outliving_its_issuer(WEB, 2 * hour, 12 * hour);
    let creds = Credentials::from_pem(
        chain.as_bytes(),
        key.as_bytes(),
        short_ca.bundle_pem().as_bytes(),
    )
    .unwrap();
    let issuer_ends = short_ca
        .issuer_not_after()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(creds.not_after() > short_ca.issuer_not_after());
    let store = CredentialStore::with_credentials(Default::default(), creds).unwrap();
    let metrics = encode(&store);
    assert!(
        metrics.contains(&format!(
            "identity_cert_expiration_timestamp_seconds {issuer_ends}"
        )),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ca_keeps_a_store_supplied_renewing_at_seventy_percent() {
    let ca = ca();
    let store = CredentialStore::default();
    let renew = tokio::spawn(ca.renew(store.clone(), id(WEB), Duration::from_secs(100)));
    wait_for(&store, 1, 0).await;
    let first = store.credentials().unwrap().chain()[0].clone();

    tokio::time::advance(Duration::from_secs(69)).await;
    tokio::task::yield_now().await;
    assert_eq!(store.subscribe().borrow().loaded, 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    wait_for(&store, 2, 0).await;
    assert_ne!(store.credentials().unwrap().chain()[0], first);
    renew.abort();
}

/// In the issuer's last `ttl`, a certificate living `ttl` would outlive
/// it: the CA issues one that ends with the issuer instead, as Linkerd's
/// does, rather than leave the workload to expire.
#[tokio::test(start_paused = true)]
async fn a_ca_near_its_issuers_end_issues_certificates_that_end_with_the_issuer() {
    let ca = CertificateAuthority::generate_with_lifetime("example.org".parse().unwrap(), 2 * HOUR)
        .unwrap();
    let issuer_not_after = ca.issuer_not_after();
    let store = CredentialStore::default();
    let renew = tokio::spawn(ca.renew(store.clone(), id(WEB), 24 * HOUR));
    wait_for(&store, 1, 0).await;
    let not_after = store.credentials().unwrap().not_after();
    assert!(not_after <= issuer_not_after);
    assert!(not_after > SystemTime::now() + HOUR);

    // Renewed at 70 % of the shorter lifetime, not of the day asked for.
    tokio::time::advance(90 * Duration::from_secs(60)).await;
    wait_for(&store, 2, 0).await;
    renew.abort();
}

#[tokio::test]
async fn a_files_source_waits_for_files_that_are_not_there_yet() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let store = CredentialStore::default();
    let source = mesh_tls::CredentialSource::Files {
        files: mesh_tls::CredentialFiles::in_dir(dir.path()),
        interval: Duration::from_millis(10),
    };
    let task = tokio::spawn(store.start(source).unwrap());
    assert!(!store.is_ready());
    assert_eq!(
        store.subscribe().borrow().rejected,
        1,
        "the missing files were counted"
    );

    ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    wait_for(&store, 1, 1).await;
    assert_eq!(store.identity(), Some(id(WEB)));
    task.abort();
}

#[tokio::test]
async fn a_ca_source_issues_at_once_and_refuses_identities_it_cannot_issue() {
    let dir = tempfile::tempdir().unwrap();
    mesh_tls::ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let store = CredentialStore::default();
    let source = |identity: &str| mesh_tls::CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(identity),
        ttl: HOUR,
    };
    let error = store
        .start(source("spiffe://other.org/ns/shop/sa/web"))
        .err()
        .unwrap();
    assert!(
        matches!(error, mesh_tls::ca::CaError::OutsideTrustDomain { .. }),
        "{error:?}"
    );
    assert!(!store.is_ready());

    let task = tokio::spawn(store.start(source(WEB)).unwrap());
    assert_eq!(store.identity(), Some(id(WEB)));
    task.abort();
}

/// Files to overwrite, and what with.
type Writes<'a> = Vec<(&'a std::path::PathBuf, Vec<u8>)>;

/// Refusals of credentials read from files name the file at fault (or the
/// two files whose combination is at fault), with the problem as the
/// cause, whether the file fails to parse or a later check refuses it.
#[test]
fn an_encrypted_key_is_refused_as_encrypted_naming_the_key_file() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    std::fs::write(
        &files.key,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let error = CredentialStore::default().load_files(&files).unwrap_err();
    assert!(
        matches!(&error, CredentialError::InFiles { paths, source }
            if paths == std::slice::from_ref(&files.key) && matches!(**source, CredentialError::EncryptedKey)),
        "{error:?}"
    );
}

#[test]
fn a_refusal_of_files_names_the_files_at_fault() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let good = ca.issue(&id(WEB), HOUR).unwrap();
    let files = good.write(dir.path()).unwrap();
    let store = CredentialStore::default();
    store.load_files(&files).unwrap();
    let before = store.credentials().unwrap().chain()[0].clone();

    let expired = ca
        .issue_with(
            &IssueRequest::new(id(WEB))
                .with_not_before(SystemTime::now() - 2 * HOUR)
                .with_ttl(HOUR),
        )
        .unwrap();
    let other_ca = support::ca();
    let (cert, key, bundle) = (&files.cert, &files.key, &files.bundle);
    let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
    let garbage_key = b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n";
    // Valid PEM and base64, but no certificate, between the workload
    // certificate and its issuer.
    let end = "-----END CERTIFICATE-----\n";
    let (leaf, issuer) = good
        .chain_pem()
        .split_at(good.chain_pem().find(end).unwrap() + end.len());
    let bad_intermediate =
        format!("{leaf}-----BEGIN CERTIFICATE-----\nMAMCAQA=\n{end}{issuer}").into_bytes();
    // A second subject alternative name extension: x509-parser reads the
    // first, webpki (and so every peer) refuses the certificate.
    let raw = RawIssuer::new();
    let mut params = RawIssuer::params(vec![uri_san(WEB)]);
    let admin = b"spiffe://example.org/ns/emojivoto/sa/admin";
    let mut san = vec![0x30, admin.len() as u8 + 2, 0x86, admin.len() as u8];
    san.extend_from_slice(admin);
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 17],
            san,
        ));
    let (two_sans, two_sans_key) = raw.sign(&params);
    let cases: Vec<(&str, Writes<'_>, Vec<_>, RejectReason)> = vec![
        (
            "a certificate with two san extensions",
            vec![
                (cert, two_sans.into_bytes()),
                (key, two_sans_key.into_bytes()),
                (bundle, raw.bundle_pem().into()),
            ],
            vec![cert],
            RejectReason::Malformed,
        ),
        (
            "an intermediate is not x.509",
            vec![(cert, bad_intermediate)],
            vec![cert],
            RejectReason::Malformed,
        ),
        (
            "certificate is not pem",
            vec![(cert, garbage.to_vec())],
            vec![cert],
            RejectReason::Malformed,
        ),
        (
            "key is not pem",
            vec![(key, garbage_key.to_vec())],
            vec![key],
            RejectReason::Malformed,
        ),
        (
            "bundle is empty",
            vec![(bundle, Vec::new())],
            vec![bundle],
            RejectReason::Malformed,
        ),
        (
            "key from another issue",
            vec![(key, ca.issue(&id(WEB), HOUR).unwrap().key_pem().into())],
            vec![cert, key],
            RejectReason::KeyMismatch,
        ),
        (
            "expired certificate",
            vec![
                (cert, expired.chain_pem().into()),
                (key, expired.key_pem().into()),
            ],
            vec![cert],
            RejectReason::Expired,
        ),
        (
            "bundle of another ca",
            vec![(bundle, other_ca.bundle_pem().into())],
            vec![cert, bundle],
            RejectReason::Untrusted,
        ),
    ];
    for (case, writes, at_fault, reason) in cases {
        for (path, contents) in &writes {
            std::fs::write(path, contents).unwrap();
        }
        let error = store.load_files(&files).unwrap_err();
        match &error {
            CredentialError::InFiles { paths, source } => {
                let expected: Vec<_> = at_fault.iter().map(|p| (*p).clone()).collect();
                assert_eq!(paths, &expected, "{case}");
                assert_eq!(source.reason(), reason, "{case}");
            }
            other => panic!("{case}: the files are not named: {other:?}"),
        }
        assert_eq!(error.reason(), reason, "{case}");
        assert_eq!(store.credentials().unwrap().chain()[0], before, "{case}");
        good.write(dir.path()).unwrap();
    }
}

/// A certificate of the chain that is not on the path to the trust
/// anchor (here a copy of the anchor itself, expired, which webpki does not
/// date-check) does not make the chain expired.
#[test]
fn a_chain_sending_its_expired_anchor_along_is_in_service_until_its_leaf_expires() {
    let (chain, key, bundle) = chain_sending_an_expired_anchor(WEB);
    let creds = Credentials::from_pem(chain.as_bytes(), key.as_bytes(), bundle.as_bytes()).unwrap();
    let store = CredentialStore::with_credentials(Default::default(), creds).unwrap();
    assert_eq!(store.identity(), Some(id(WEB)));
}

/// A trust bundle is a list of CAs. webpki takes any certificate it is
/// given as a trust anchor, so a workload certificate in the bundle (pasted
/// in to pin a peer, or a tls.crt copied over ca.crt) would let that
/// workload's key sign a certificate for any identity, which both ends
/// would then accept. Such a bundle is refused, naming the bundle file.
#[test]
fn a_bundle_holding_a_certificate_that_is_no_ca_is_refused() {
    let ca = ca();
    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let web_leaf = &web.chain_pem()[..web.chain_pem().find(end).unwrap() + end.len()];
    let bundle = format!("{}{web_leaf}", ca.bundle_pem());
    let error = Credentials::from_pem(
        web.chain_pem().as_bytes(),
        web.key_pem().as_bytes(),
        bundle.as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(error, CredentialError::AnchorNotCa { position: 2 }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("trust bundle certificate 2 is not a ca's"),
        "{error}"
    );
    assert_eq!(error.reason(), RejectReason::Malformed);

    let dir = tempfile::tempdir().unwrap();
    let files = web.write(dir.path()).unwrap();
    std::fs::write(&files.bundle, &bundle).unwrap();
    let error = CredentialStore::default().load_files(&files).unwrap_err();
    assert!(
        matches!(&error, CredentialError::InFiles { paths, source }
            if *paths == [files.bundle.clone()]
                && matches!(**source, CredentialError::AnchorNotCa { .. })),
        "{error:?}"
    );
}

/// `watch_files` counts a refused set of contents once, not at every read;
/// started through `start`, which reads the files once before spawning it,
/// the same holds: the watcher's first read of contents refused at start is
/// not a second refusal.
#[tokio::test(start_paused = true)]
async fn a_files_source_counts_each_refused_set_of_contents_once() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = mesh_tls::CredentialFiles::in_dir(dir.path());
    let store = CredentialStore::default();
    let source = mesh_tls::CredentialSource::Files {
        files: files.clone(),
        interval: Duration::from_millis(10),
    };
    // Missing files: refused at start, then read again and again.
    let task = tokio::spawn(store.start(source.clone()).unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.subscribe().borrow().rejected, 1);
    task.abort();

    // A key that is not the certificate's, the same way.
    let store = CredentialStore::default();
    ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    let other_key = ca.issue(&id(WEB), HOUR).unwrap();
    std::fs::write(&files.key, other_key.key_pem()).unwrap();
    let task = tokio::spawn(store.start(source).unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.subscribe().borrow().rejected, 1);
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"key_mismatch\"} 1"),
        "{metrics}"
    );
    task.abort();
}

/// A credential file is a few kilobytes, a trust bundle of every public
/// root a few hundred; Kubernetes caps a secret at 1 MiB. A path that names
/// something endless (`/dev/zero`, a log file by mistake) is refused as
/// unreadable, naming the file, after reading a bounded amount, at startup
/// and by the watcher alike, rather than read until memory runs out.
#[tokio::test]
async fn a_credential_file_larger_than_any_credential_is_refused_naming_it() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let mut files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    let huge = dir.path().join("huge.crt");
    let mut contents = std::fs::read(&files.bundle).unwrap();
    contents.resize(5 * 1024 * 1024, b'\n');
    std::fs::write(&huge, contents).unwrap();
    let mut endless = vec![huge];
    if cfg!(unix) {
        endless.push("/dev/zero".into());
    }
    for path in endless {
        files.bundle = path.clone();
        let refused = |error: &CredentialError| {
            matches!(error, CredentialError::Read { path: p, source }
                if *p == path && source.to_string().contains("MiB"))
        };
        let error = CredentialStore::default().load_files(&files).unwrap_err();
        assert!(refused(&error), "{}: {error:?}", path.display());

        let store = CredentialStore::default();
        let source = mesh_tls::CredentialSource::Files {
            files: files.clone(),
            interval: Duration::from_millis(10),
        };
        let task = tokio::spawn(store.start(source).unwrap());
        assert_eq!(store.subscribe().borrow().rejected, 1);
        assert!(!store.is_ready());
        task.abort();
    }
}

/// A chain file holding the issuer's expired old certificate before its
/// current one verifies (webpki builds the path through the current one),
/// so the store puts it in service, and its expiry is the current
/// issuer's or the leaf's, not the old copy's.
#[test]
fn a_chain_sending_an_expired_copy_of_its_issuer_is_in_service_until_the_current_one_expires() {
    let (chain, key, bundle) = reissued::chain_sending_an_expired_copy_of_its_issuer(WEB);
    let creds = Credentials::from_pem(chain.as_bytes(), key.as_bytes(), bundle.as_bytes()).unwrap();
    let store = CredentialStore::default();
    store.update(creds.clone()).unwrap();
    assert_eq!(store.identity(), Some(id(WEB)));
    let expiry = encode(&store)
        .lines()
        .find_map(|line| line.strip_prefix("identity_cert_expiration_timestamp_seconds "))
        .map(|secs| secs.parse::<f64>().unwrap())
        .unwrap();
    let leaf_expiry = creds
        .not_after()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(expiry, leaf_expiry);
}
