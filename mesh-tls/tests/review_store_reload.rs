//! A store supplied from files, through its watcher task on a paused
//! clock: a rotation whose writer replaces the key before the certificate,
//! and every kind of bad reload, which must keep the credentials in
//! service and be reported once, naming the file and the problem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{
    CredentialFiles, CredentialSource, CredentialStore, ca::CertificateAuthority, ca::IssueRequest,
};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const INTERVAL: Duration = Duration::from_secs(1);

/// Half an interval, so that the test looks between two of the watcher's
/// reads rather than at the instant of one.
const HALF: Duration = Duration::from_millis(500);

/// A store supplied from `files` by its watcher, spawned.
fn watched(files: &CredentialFiles) -> (CredentialStore, tokio::task::JoinHandle<()>) {
    let store = CredentialStore::default();
    let source = CredentialSource::Files {
        files: files.clone(),
        interval: INTERVAL,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    assert_eq!(store.subscribe().borrow().loaded, 1);
    (store, task)
}

/// `ca::issue` writes the key, then the certificate: a watcher that reads
/// between the two finds a key that is not the certificate's. It must keep
/// the pair in service (never present the new key with the old
/// certificate, nor drop to no credentials), and take the new pair at its
/// next read, without an error logged or a refusal counted.
#[tokio::test(start_paused = true)]
async fn a_key_written_an_interval_before_its_certificate_is_never_served_torn() {
    let (events, _log) = Logs::capture();
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.issue(&id(WEB), HOUR).unwrap();
    let files = first.write(dir.path()).unwrap();
    let (store, task) = watched(&files);
    tokio::time::sleep(HALF).await;
    let before = leaf_in_service(&store);

    let next = ca.issue(&id(WEB), HOUR).unwrap();
    replace_file(&files.key, next.key_pem().as_bytes());
    // One read of the torn pair.
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(leaf_in_service(&store), before);
    assert!(store.is_ready());

    replace_file(&files.cert, next.chain_pem().as_bytes());
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(
        leaf_in_service(&store),
        next.credentials().unwrap().chain()[0]
    );
    tokio::time::sleep(3 * INTERVAL).await;
    let version = *store.subscribe().borrow();
    assert_eq!((version.loaded, version.rejected), (2, 0));
    assert!(
        events.find_at(tracing::Level::ERROR, "").is_empty(),
        "{:?}",
        events.all()
    );
    task.abort();
}

/// What a bad reload does to the files.
type Apply = Box<dyn Fn(&CertificateAuthority, &CredentialFiles)>;

/// One bad reload: what it does to the files, the reason it is counted
/// under, and the files and words its logged error must hold.
struct Bad {
    name: &'static str,
    apply: Apply,
    reason: &'static str,
    files: &'static [&'static str],
    says: &'static str,
}

fn bad_reloads() -> Vec<Bad> {
    let now = std::time::SystemTime::now();
    vec![
        Bad {
            name: "garbage pem in the certificate file",
            apply: Box::new(|_, f| {
                replace_file(
                    &f.cert,
                    b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                )
            }),
            reason: "malformed",
            files: &["tls.crt"],
            says: "invalid pem",
        },
        Bad {
            name: "text that is no pem in the certificate file",
            apply: Box::new(|_, f| replace_file(&f.cert, b"hello\n")),
            reason: "malformed",
            files: &["tls.crt"],
            says: "no certificate",
        },
        Bad {
            name: "a key that is not the certificate's",
            apply: Box::new(|ca, f| {
                let other = ca.issue(&id(WEB), HOUR).unwrap();
                replace_file(&f.key, other.key_pem().as_bytes());
            }),
            reason: "key_mismatch",
            files: &["tls.crt", "tls.key"],
            says: "does not match",
        },
        Bad {
            name: "an expired certificate",
            apply: Box::new(move |ca, f| {
                let expired = ca
                    .issue_with(
                        &IssueRequest::new(id(WEB))
                            .with_not_before(now - 3 * HOUR)
                            .with_ttl(HOUR),
                    )
                    .unwrap();
                expired.write(f.cert.parent().unwrap()).unwrap();
            }),
            reason: "expired",
            files: &["tls.crt"],
            says: "expired",
        },
        Bad {
            name: "a certificate that does not chain to the bundle",
            apply: Box::new(|_, f| {
                let stranger = support::ca().issue(&id(WEB), HOUR).unwrap();
                replace_file(&f.key, stranger.key_pem().as_bytes());
                replace_file(&f.cert, stranger.chain_pem().as_bytes());
            }),
            reason: "untrusted",
            files: &["tls.crt", "ca.crt"],
            says: "does not verify",
        },
        Bad {
            name: "a bundle with no anchor of the trust domain",
            apply: Box::new(|_, f| {
                let other = CertificateAuthority::generate("other.org".parse().unwrap()).unwrap();
                replace_file(&f.bundle, other.bundle_pem().as_bytes());
            }),
            reason: "untrusted",
            files: &["tls.crt", "ca.crt"],
            says: "does not verify",
        },
        Bad {
            name: "an empty certificate file",
            apply: Box::new(|_, f| replace_file(&f.cert, b"")),
            reason: "malformed",
            files: &["tls.crt"],
            says: "no certificate",
        },
        Bad {
            name: "an empty key file",
            apply: Box::new(|_, f| replace_file(&f.key, b"")),
            reason: "malformed",
            files: &["tls.key"],
            says: "no private key",
        },
        Bad {
            name: "an empty bundle",
            apply: Box::new(|_, f| replace_file(&f.bundle, b"")),
            reason: "malformed",
            files: &["ca.crt"],
            says: "trust bundle holds no certificate",
        },
        Bad {
            name: "a removed key file",
            apply: Box::new(|_, f| std::fs::remove_file(&f.key).unwrap()),
            reason: "unreadable",
            files: &["tls.key"],
            says: "cannot read",
        },
    ]
}

/// Each bad reload keeps the credentials in service (and the store ready),
/// is counted once under its reason, however many reads find it, and is
/// logged once as an error naming the file(s) at fault and the problem.
#[tokio::test(start_paused = true)]
async fn every_bad_reload_keeps_the_last_good_credentials_and_is_reported_once() {
    let (events, _log) = Logs::capture();
    for bad in bad_reloads() {
        let ca = ca();
        let dir = tempfile::tempdir().unwrap();
        let files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
        let (store, task) = watched(&files);
        tokio::time::sleep(HALF).await;
        let before = leaf_in_service(&store);
        let errors_before = events.find_at(tracing::Level::ERROR, "").len();

        (bad.apply)(&ca, &files);
        tokio::time::sleep(5 * INTERVAL).await;

        assert_eq!(leaf_in_service(&store), before, "{}", bad.name);
        assert!(store.is_ready(), "{}", bad.name);
        let version = *store.subscribe().borrow();
        assert_eq!((version.loaded, version.rejected), (1, 1), "{}", bad.name);
        let metrics = encode(&store);
        let line = format!(
            "identity_cert_rejected_updates_total{{reason=\"{}\"}} 1",
            bad.reason
        );
        assert!(metrics.contains(&line), "{}: {metrics}", bad.name);
        let errors = events.find_at(tracing::Level::ERROR, "");
        let new: Vec<_> = errors[errors_before..].to_vec();
        assert_eq!(new.len(), 1, "{}: {new:?}", bad.name);
        for file in bad.files {
            let path = dir.path().join(file);
            assert!(
                new[0].contains(&path.display().to_string()),
                "{}: {} not named in {}",
                bad.name,
                path.display(),
                new[0]
            );
        }
        assert!(
            new[0].contains(bad.says),
            "{}: {:?} not said in {}",
            bad.name,
            bad.says,
            new[0]
        );
        task.abort();
    }
}
