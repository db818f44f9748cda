//! A source asked to read now ([`ReloadHandle`]), on a paused clock: with
//! an interval of an hour, certificate files replaced are in service once
//! asked, without the interval passing, and a bad set asked for is refused
//! (named, counted) while the credentials in service stay; a CA directory
//! whose CA was replaced issues from the new one at once, long before the
//! renewal is due.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{
    CredentialFiles, CredentialSource, CredentialStore, ReloadHandle,
    ca::{self, CertificateAuthority},
};
use rustls_pki_types::CertificateDer;
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// Far longer than any test waits: within a test, only an ask reads the
/// files.
const INTERVAL: Duration = Duration::from_secs(3600);

/// A store supplied from `files` by its watcher, spawned and past its
/// first read at the interval, and the handle that asks it.
async fn watched(
    files: &CredentialFiles,
) -> (CredentialStore, ReloadHandle, tokio::task::JoinHandle<()>) {
    let store = CredentialStore::default();
    let source = CredentialSource::Files {
        files: files.clone(),
        interval: INTERVAL,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    assert_eq!(store.subscribe().borrow().loaded, 1);
    // The watcher's first tick comes at once: let it pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let handle = store.reload_handle();
    (store, handle, task)
}

/// Waits for a line of the capture holding `message`, which the watcher
/// logs at the end of each ask; fails after a minute of the paused clock,
/// far less than the interval.
async fn answered(events: &Logs, message: &str, count: usize) {
    let wait = async {
        while events.find(message).len() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("no {message:?} logged: {:?}", events.all()));
}

#[tokio::test(start_paused = true)]
async fn files_replaced_are_in_service_once_asked_without_the_interval_passing() {
    let (events, _log) = Logs::capture();
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    let (store, handle, task) = watched(&files).await;
    let started = tokio::time::Instant::now();

    // Asked with the files as they are: nothing changes.
    assert!(handle.is_watched());
    assert!(handle.ask());
    answered(&events, "certificate files unchanged, as asked", 1).await;
    assert_eq!(store.subscribe().borrow().loaded, 1);

    let next = ca.issue(&id(WEB), HOUR).unwrap();
    next.write(dir.path()).unwrap();
    assert!(handle.ask());
    wait_for(&store, 2, 0).await;
    answered(&events, "certificate files reloaded, as asked", 1).await;
    assert_eq!(
        leaf_in_service(&store),
        next.credentials().unwrap().chain()[0]
    );
    assert!(started.elapsed() < INTERVAL);
    let version = *store.subscribe().borrow();
    assert_eq!((version.loaded, version.rejected), (2, 0));
    assert!(
        encode(&store).contains("identity_cert_last_update_successful 1"),
        "{}",
        encode(&store)
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_bad_file_asked_for_is_refused_and_named_and_the_credentials_in_service_stay() {
    let (events, _log) = Logs::capture();
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    let (store, handle, task) = watched(&files).await;
    let started = tokio::time::Instant::now();
    let before = leaf_in_service(&store);

    replace_file(
        &files.cert,
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    assert!(handle.ask());
    wait_for(&store, 1, 1).await;
    answered(&events, "certificate files refused, as asked", 1).await;
    assert_eq!(leaf_in_service(&store), before);
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
    let errors = events.find_at(tracing::Level::ERROR, "rejected identity credentials");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let cert = dir.path().join("tls.crt").display().to_string();
    assert!(
        errors[0].contains(&cert),
        "{cert} not named in {}",
        errors[0]
    );

    // Asked again with the same bad file: judged again, and named again
    // for whoever asked.
    assert!(handle.ask());
    wait_for(&store, 1, 2).await;
    answered(&events, "certificate files refused, as asked", 2).await;
    assert_eq!(
        events
            .find_at(tracing::Level::ERROR, "rejected identity credentials")
            .len(),
        2
    );
    assert_eq!(leaf_in_service(&store), before);

    // A good pair written and asked for is in service.
    let next = ca.issue(&id(WEB), HOUR).unwrap();
    next.write(dir.path()).unwrap();
    assert!(handle.ask());
    wait_for(&store, 2, 2).await;
    assert_eq!(
        leaf_in_service(&store),
        next.credentials().unwrap().chain()[0]
    );
    assert!(
        encode(&store).contains("identity_cert_last_update_successful 1"),
        "{}",
        encode(&store)
    );
    assert!(started.elapsed() < INTERVAL);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_file_removed_and_asked_for_is_refused_as_unreadable() {
    let (events, _log) = Logs::capture();
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    let (store, handle, task) = watched(&files).await;
    let before = leaf_in_service(&store);

    std::fs::remove_file(&files.key).unwrap();
    assert!(handle.ask());
    wait_for(&store, 1, 1).await;
    answered(&events, "certificate files unreadable, as asked", 1).await;
    assert_eq!(leaf_in_service(&store), before);
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"unreadable\"} 1"),
        "{metrics}"
    );
    task.abort();
}

/// The trust anchor of `ca`, as the store holds it.
fn anchor(ca: &CertificateAuthority) -> CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(ca.bundle_pem().as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

/// A CA replaced in the directory of a CA source, and asked for, issues
/// the certificate in service at once, rather than at the renewal 42
/// minutes on; asked with the directory unchanged, nothing is issued; a
/// directory that does not load is refused, and the CA loaded before stays.
#[tokio::test(start_paused = true)]
async fn a_ca_replaced_in_its_directory_issues_at_once_when_asked() {
    let (events, _log) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let first = ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let store = CredentialStore::default();
    let source = CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(WEB),
        ttl: HOUR,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    let handle = store.reload_handle();
    let started = tokio::time::Instant::now();
    assert_eq!(store.credentials().unwrap().roots(), [anchor(&first)]);

    assert!(handle.ask());
    answered(&events, "ca directory unchanged, as asked", 1).await;
    assert_eq!(store.subscribe().borrow().loaded, 1);

    let next = CertificateAuthority::generate("example.org".parse().unwrap()).unwrap();
    next.write(dir.path()).unwrap();
    assert!(handle.ask());
    wait_for(&store, 2, 0).await;
    answered(&events, "ca directory reloaded, as asked", 1).await;
    assert_eq!(store.credentials().unwrap().roots(), [anchor(&next)]);

    replace_file(
        &dir.path().join(ca::ISSUER_CERT_FILE),
        b"not a certificate\n",
    );
    let before = leaf_in_service(&store);
    assert!(handle.ask());
    wait_for(&store, 2, 1).await;
    answered(&events, "ca directory refused, as asked", 1).await;
    assert_eq!(leaf_in_service(&store), before);
    let errors = events.find_at(tracing::Level::ERROR, "refused the reloaded ca");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(ca::ISSUER_CERT_FILE), "{}", errors[0]);
    // Well before the renewal, at 70 % of the hour.
    assert!(started.elapsed() < Duration::from_secs(60));
    task.abort();
}

/// Nothing reads the asks of a store no source was started on: the handle
/// says so, for a caller to tell whoever asked.
#[tokio::test(start_paused = true)]
async fn a_store_without_a_source_reads_no_ask() {
    let store = CredentialStore::default();
    let handle = store.reload_handle();
    assert!(!handle.is_watched());
    assert!(!handle.ask());

    let dir = tempfile::tempdir().unwrap();
    let files = ca()
        .issue(&id(WEB), HOUR)
        .unwrap()
        .write(dir.path())
        .unwrap();
    let source = CredentialSource::Files {
        files,
        interval: INTERVAL,
    };
    let task = store.start(source).unwrap();
    assert!(handle.is_watched());
    // The task ends: nothing reads the asks any more.
    drop(task);
    assert!(!handle.ask());
}
