//! `identity_cert_last_update_successful`: 0 from a refused credential
//! update until the next one loads, so that an alert can see that the
//! files (or the CA directory) are bad now, where the rejection counter
//! only says that they were once. Files read half-written and waited out
//! leave it as it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity::TestClock;

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use mesh_tls::{
    CredentialFiles, CredentialSource, CredentialStore, StoreConfig, ca, ca::CertificateAuthority,
};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const GAUGE: &str = "identity_cert_last_update_successful";
const INTERVAL: Duration = Duration::from_secs(1);

/// Half an interval, so that the test looks between two of the watcher's
/// reads rather than at the instant of one.
const HALF: Duration = Duration::from_millis(500);

/// The gauge's value in the store's exposition.
fn gauge(store: &CredentialStore) -> i64 {
    let text = encode(store);
    let prefix = format!("{GAUGE} ");
    let values: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{text}");
    values[0]
}

fn counts(store: &CredentialStore) -> (u64, u64) {
    let version = *store.subscribe().borrow();
    (version.loaded, version.rejected)
}

/// The exposition describes the family, a gauge, from the start, at 0
/// until credentials load; an update, whether refused, new or the
/// credentials in service again, sets it.
#[test]
fn the_exposition_shows_the_gauge_with_its_help_and_type() {
    let ca = ca();
    let store = CredentialStore::new(StoreConfig::default());
    let text = encode(&store);
    for line in [
        &*format!(
            "# HELP {GAUGE} Whether the last identity credential update loaded (1), or was refused (0)."
        ),
        &*format!("# TYPE {GAUGE} gauge"),
        &*format!("{GAUGE} 0"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }

    let web = creds(&ca, WEB);
    store.update(web.clone()).unwrap();
    assert_eq!(gauge(&store), 1);

    let other = CertificateAuthority::generate("other.org".parse().unwrap()).unwrap();
    store
        .update(creds(&other, "spiffe://other.org/ns/shop/sa/web"))
        .unwrap_err();
    assert_eq!(gauge(&store), 0);

    // The credentials in service, pushed again, load: the source that
    // sent the refused ones is mended.
    store.update(web).unwrap();
    assert_eq!(gauge(&store), 1);
}

/// `load_files` sets the gauge as every other update does.
#[test]
fn loading_files_sets_the_gauge() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    let store = CredentialStore::default();
    store.load_files(&files).unwrap();
    assert_eq!(gauge(&store), 1);

    let key = std::fs::read(&files.key).unwrap();
    replace_file(
        &files.key,
        ca.issue(&id(WEB), HOUR).unwrap().key_pem().as_bytes(),
    );
    store.load_files(&files).unwrap_err();
    assert_eq!(gauge(&store), 0);

    replace_file(&files.key, &key);
    store.load_files(&files).unwrap();
    assert_eq!(gauge(&store), 1);
}

/// A store supplied from `files` by its watcher, spawned.
fn watched(files: &CredentialFiles) -> (CredentialStore, tokio::task::JoinHandle<()>) {
    let store = CredentialStore::default();
    let source = CredentialSource::Files {
        files: files.clone(),
        interval: INTERVAL,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    (store, task)
}

/// Bad files keep the gauge at 0 for as long as they stay, however many
/// reads find them, and files put back as they were before set it to 1
/// again, though they only repeat the credentials in service; so do new
/// good files after unreadable ones. A key written a read before its
/// certificate (a torn pair, waited out) never sets it to 0.
#[tokio::test(start_paused = true)]
async fn bad_files_set_it_to_zero_until_good_ones_load() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let files = ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    let (store, task) = watched(&files);
    tokio::time::sleep(HALF).await;
    assert_eq!(gauge(&store), 1);
    assert_eq!(counts(&store), (1, 0));

    // A key that is not the certificate's, left there.
    let key = std::fs::read(&files.key).unwrap();
    replace_file(
        &files.key,
        ca.issue(&id(WEB), HOUR).unwrap().key_pem().as_bytes(),
    );
    tokio::time::sleep(5 * INTERVAL).await;
    assert_eq!(counts(&store), (1, 1));
    assert_eq!(gauge(&store), 0, "the refused files are still there");
    tokio::time::sleep(5 * INTERVAL).await;
    assert_eq!(gauge(&store), 0, "the refused files are still there");

    // The old key back: the files hold the credentials in service again.
    replace_file(&files.key, &key);
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(gauge(&store), 1, "the files are good again");
    assert_eq!(counts(&store), (1, 1));

    // Unreadable files, then a new pair written whole.
    std::fs::remove_file(&files.cert).unwrap();
    tokio::time::sleep(3 * INTERVAL).await;
    assert_eq!(counts(&store), (1, 2));
    assert_eq!(gauge(&store), 0);
    ca.issue(&id(WEB), HOUR).unwrap().write(dir.path()).unwrap();
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(counts(&store), (2, 2));
    assert_eq!(gauge(&store), 1);

    // A torn pair, read once, then completed: no refusal, and the gauge
    // stays at 1 throughout.
    let next = ca.issue(&id(WEB), HOUR).unwrap();
    replace_file(&files.key, next.key_pem().as_bytes());
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(gauge(&store), 1, "a torn pair is no refusal");
    replace_file(&files.cert, next.chain_pem().as_bytes());
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(counts(&store), (3, 2));
    assert_eq!(gauge(&store), 1);
    task.abort();
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    // A renewal reads the CA directory on the blocking pool; the paused
    // clock does not move on while that read runs, so this waits for it.
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// A certificate living an hour is renewed after 70 % of it.
const RENEWAL: u64 = 2_521;

/// Moves both clocks on to the next renewal, and lets it run.
async fn renew(clock: &TestClock, now: &mut u64) {
    *now += RENEWAL;
    clock.set(*now);
    tokio::time::advance(Duration::from_secs(RENEWAL)).await;
    settle().await;
}

/// Copies the CA files of `from` into `to`, created if missing.
fn copy_ca(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in [ca::CA_CERT_FILE, ca::ISSUER_CERT_FILE, ca::ISSUER_KEY_FILE] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

/// A CA directory replaced by one that cannot issue the identity is
/// refused, and the gauge is 0 from then while it stays there, though the
/// CA loaded before goes on renewing the certificate; the directory put
/// back sets it to 1 at the next renewal.
#[tokio::test(start_paused = true)]
async fn a_refused_ca_directory_sets_it_to_zero_until_the_directory_loads() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let saved = dir.path().join("saved");
    ca::write_ca(&ca_dir, &"example.org".parse().unwrap()).unwrap();
    copy_ca(&ca_dir, &saved);
    let mut now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = TestClock::at(now);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    let source = CredentialSource::Ca {
        dir: ca_dir.clone(),
        identity: id(WEB),
        ttl: HOUR,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    settle().await;
    assert_eq!(gauge(&store), 1);

    std::fs::remove_dir_all(&ca_dir).unwrap();
    ca::write_ca(&ca_dir, &"other.org".parse().unwrap()).unwrap();
    renew(&clock, &mut now).await;
    assert_eq!(counts(&store), (2, 1), "renewed by the ca loaded before");
    assert_eq!(gauge(&store), 0, "the directory is refused");
    renew(&clock, &mut now).await;
    assert_eq!(counts(&store), (3, 1));
    assert_eq!(gauge(&store), 0, "the directory is still refused");

    std::fs::remove_dir_all(&ca_dir).unwrap();
    copy_ca(&saved, &ca_dir);
    renew(&clock, &mut now).await;
    assert_eq!(counts(&store), (4, 1));
    assert_eq!(gauge(&store), 1, "the directory loads again");
    task.abort();
}
