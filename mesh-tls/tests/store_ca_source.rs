//! A credential store supplied by a CA directory
//! ([`CredentialSource::Ca`]) on the store's own clock
//! ([`CredentialStore::with_time_provider`]): the first certificate is dated
//! and scheduled by it, and a reloaded CA whose issuer is outside its
//! validity by it is refused, the CA loaded before going on issuing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity::{TestClock, at};

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use mesh_tls::{CredentialSource, CredentialStore, StoreConfig, ca};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    // A renewal reads the CA directory on the blocking pool; the paused
    // clock does not move on while that read runs, so this waits for it.
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
}

/// Seconds since the epoch, `days` ahead of the system clock: inside the
/// year of a CA written now.
fn days_ahead(days: u64) -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + days * 86_400
}

fn store_at(clock: &Arc<TestClock>) -> CredentialStore {
    let config = StoreConfig {
        identity: Some(id(WEB)),
        ..StoreConfig::default()
    };
    CredentialStore::with_time_provider(config, clock.clone())
}

fn source(dir: &std::path::Path) -> CredentialSource {
    CredentialSource::Ca {
        dir: dir.to_owned(),
        identity: id(WEB),
        ttl: HOUR,
    }
}

/// The first certificate a CA source issues is dated by the store's clock,
/// which checks it when it is put in service, and renewed at 70 % of the
/// time it has left by that clock: issued by the system clock ten days
/// behind, it would be refused as expired and the source would not start.
#[tokio::test(start_paused = true)]
async fn a_ca_source_issues_its_first_certificate_by_the_stores_clock() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let start = days_ahead(10);
    let clock = TestClock::at(start);
    let store = store_at(&clock);
    let task = tokio::spawn(store.start(source(dir.path())).unwrap());
    settle().await;
    let first = store.credentials().unwrap();
    assert_eq!(first.not_before(), at(start) - ca::BACKDATE);
    assert_eq!(first.not_after(), at(start) + HOUR);
    assert!(store.is_ready());

    // 70 % of the hour, 2520 s, is the renewal point.
    clock.set(start + 2_519);
    tokio::time::advance(Duration::from_secs(2_519)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 1, "renewed early");
    clock.set(start + 2_521);
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 2, "not renewed at 70 %");
    let second = store.credentials().unwrap();
    assert_eq!(second.not_before(), at(start + 2_521) - ca::BACKDATE);
    task.abort();
}

/// A CA copied into the directory whose issuer is outside its validity by
/// the store's clock is refused at the renewal that reloads it, naming
/// `issuer.crt` and why, and counted as a refused update under `reason`;
/// the CA loaded before signs the renewal, so the workload keeps an
/// identity. Taken, it would have failed every renewal until the
/// certificate in service expired.
async fn a_reloaded_ca_is_refused_and_the_last_one_kept(
    write_bad: impl FnOnce(&std::path::Path, u64),
    reason: &str,
    why: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    ca::write_ca(&ca_dir, &"example.org".parse().unwrap()).unwrap();
    let start = days_ahead(10);
    let clock = TestClock::at(start);
    let store = store_at(&clock);
    let task = tokio::spawn(store.start(source(&ca_dir)).unwrap());
    settle().await;
    let issuer = |store: &CredentialStore| store.credentials().unwrap().chain()[1].clone();
    let first_issuer = issuer(&store);

    std::fs::remove_dir_all(&ca_dir).unwrap();
    write_bad(&ca_dir, start);

    let (events, guard) = Logs::capture();
    clock.set(start + 2_521);
    tokio::time::advance(Duration::from_secs(2_521)).await;
    settle().await;
    drop(guard);

    let version = *store.subscribe().borrow();
    assert_eq!(
        (version.loaded, version.rejected),
        (2, 1),
        "renewed with the last good ca, the refused one counted"
    );
    assert_eq!(issuer(&store), first_issuer);
    let metrics = encode(&store);
    assert!(
        metrics.contains(&format!(
            "identity_cert_rejected_updates_total{{reason=\"{reason}\"}} 1"
        )),
        "{metrics}"
    );
    let events = events.all();
    let issuer_file = ca_dir.join(ca::ISSUER_CERT_FILE);
    assert!(
        events
            .iter()
            .any(|e| e.contains(&*issuer_file.to_string_lossy())
                && e.contains(why)
                && e.contains("kept")),
        "{events:#?}"
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_ca_whose_issuer_expired_by_the_stores_clock_is_refused_and_the_last_one_kept() {
    // Valid for two days from now by the system clock: expired eight days
    // ago by the store's.
    let stale = |dir: &std::path::Path, _| {
        ca::CertificateAuthority::generate_with_lifetime(
            "example.org".parse().unwrap(),
            Duration::from_secs(2 * 86_400),
        )
        .unwrap()
        .write(dir)
        .unwrap();
    };
    a_reloaded_ca_is_refused_and_the_last_one_kept(stale, "expired", "expired").await;
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_ca_whose_issuer_is_not_valid_yet_by_the_stores_clock_is_refused_and_the_last_one_kept()
 {
    // Made on a clock running a further ten days ahead.
    let early = |dir: &std::path::Path, start: u64| {
        write_ca_valid_from(dir, start + 10 * 86_400);
    };
    a_reloaded_ca_is_refused_and_the_last_one_kept(early, "not_yet_valid", "not valid until").await;
}

/// Writes into `dir` a trust anchor and an issuer for example.org, both
/// valid for a year from `not_before` (seconds since the epoch).
fn write_ca_valid_from(dir: &std::path::Path, not_before: u64) {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    };
    let params = |name: &str, path_len| {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} example.org early"));
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = at(not_before).into();
        params.not_after = at(not_before + 365 * 86_400).into();
        params
    };
    let anchor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = params("anchor", 1);
    let anchor = anchor_params.self_signed(&anchor_key).unwrap();
    let anchor = (anchor, Issuer::new(anchor_params, anchor_key));
    let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut issuer_params = params("issuer", 0);
    issuer_params.use_authority_key_identifier_extension = true;
    let issuer = issuer_params.signed_by(&issuer_key, &anchor.1).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(ca::CA_CERT_FILE), anchor.0.pem()).unwrap();
    std::fs::write(dir.join(ca::ISSUER_CERT_FILE), issuer.pem()).unwrap();
    std::fs::write(dir.join(ca::ISSUER_KEY_FILE), issuer_key.serialize_pem()).unwrap();
}

/// A clock that says a time `SystemTime` cannot hold is read as the system
/// clock, as the CA reads it, rather than panicking.
#[test]
fn a_clock_beyond_what_system_time_holds_is_read_as_the_system_clock() {
    let store =
        CredentialStore::with_time_provider(StoreConfig::default(), TestClock::at(u64::MAX));
    store.update(creds(&ca(), WEB)).unwrap();
    assert!(store.is_ready());
}

/// A store started on a good CA in `<tmp>/ca`, the time its clock says,
/// and its task.
async fn started_on_a_good_ca() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Arc<TestClock>,
    u64,
    CredentialStore,
    tokio::task::JoinHandle<()>,
) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    ca::write_ca(&ca_dir, &"example.org".parse().unwrap()).unwrap();
    let start = days_ahead(10);
    let clock = TestClock::at(start);
    let store = store_at(&clock);
    let task = tokio::spawn(store.start(source(&ca_dir)).unwrap());
    settle().await;
    (dir, ca_dir, clock, start, store, task)
}

/// Moves both clocks to the next renewal of a certificate issued at `now`
/// for an hour (70 % of it), and lets the renewal run.
async fn next_renewal(clock: &TestClock, now: &mut u64) {
    *now += 2_521;
    clock.set(*now);
    tokio::time::advance(Duration::from_secs(2_521)).await;
    settle().await;
}

/// Writes a CA into `dir` whose issuer expired by the store's clock,
/// `days_ahead(10)`: valid for two days from now by the system clock.
fn write_expired_ca(dir: &std::path::Path) {
    ca::CertificateAuthority::generate_with_lifetime(
        "example.org".parse().unwrap(),
        Duration::from_secs(2 * 86_400),
    )
    .unwrap()
    .write(dir)
    .unwrap();
}

/// A refused CA directory is read again at every renewal. As the file
/// watcher does for a refused set of credentials, the same contents are
/// logged as an error and counted once, not at every renewal (which,
/// with nothing valid in service, comes every ten seconds); other refused
/// contents are counted again. The CA loaded before renews throughout.
#[tokio::test(start_paused = true)]
async fn a_reloaded_ca_refused_for_its_dates_is_counted_once_per_content() {
    let (_dir, ca_dir, clock, mut now, store, task) = started_on_a_good_ca().await;
    let issuer = |store: &CredentialStore| store.credentials().unwrap().chain()[1].clone();
    let first_issuer = issuer(&store);
    std::fs::remove_dir_all(&ca_dir).unwrap();
    write_expired_ca(&ca_dir);

    let (events, guard) = Logs::capture();
    for _ in 0..4 {
        next_renewal(&clock, &mut now).await;
    }
    let version = *store.subscribe().borrow();
    assert_eq!(
        (version.loaded, version.rejected),
        (5, 1),
        "renewed four times with the last good ca, the refused one counted once"
    );
    assert_eq!(issuer(&store), first_issuer);
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"expired\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        events.find_at(tracing::Level::ERROR, "").len(),
        1,
        "{:#?}",
        events.all()
    );

    // Another refused CA is another refusal.
    std::fs::remove_dir_all(&ca_dir).unwrap();
    write_expired_ca(&ca_dir);
    next_renewal(&clock, &mut now).await;
    next_renewal(&clock, &mut now).await;
    drop(guard);
    let version = *store.subscribe().borrow();
    assert_eq!((version.loaded, version.rejected), (7, 2));
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"expired\"} 2"),
        "{metrics}"
    );
    assert_eq!(events.find_at(tracing::Level::ERROR, "").len(), 2);
    assert_eq!(issuer(&store), first_issuer);
    task.abort();
}

/// A CA directory that does not load at its reload is a refused update
/// too, counted under the reason the file source gives the same failure
/// (`malformed` for a certificate that does not parse, `unreadable` for a
/// file that cannot be read), logged as an error naming the file, once per
/// content; the CA loaded before renews meanwhile.
#[tokio::test(start_paused = true)]
async fn a_ca_directory_that_does_not_load_is_counted_once_per_content() {
    let (_dir, ca_dir, clock, mut now, store, task) = started_on_a_good_ca().await;
    let issuer = |store: &CredentialStore| store.credentials().unwrap().chain()[1].clone();
    let first_issuer = issuer(&store);
    let issuer_file = ca_dir.join(ca::ISSUER_CERT_FILE);
    std::fs::write(&issuer_file, "not a certificate\n").unwrap();

    let (events, guard) = Logs::capture();
    for _ in 0..3 {
        next_renewal(&clock, &mut now).await;
    }
    let version = *store.subscribe().borrow();
    assert_eq!((version.loaded, version.rejected), (4, 1));
    assert_eq!(issuer(&store), first_issuer);
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    let errors = events.find_at(tracing::Level::ERROR, "");
    assert_eq!(errors.len(), 1, "{:#?}", events.all());
    assert!(
        errors[0].contains(&*issuer_file.to_string_lossy()) && errors[0].contains("kept"),
        "{errors:#?}"
    );

    // The trust anchor removed: the directory cannot be read.
    std::fs::remove_file(ca_dir.join(ca::CA_CERT_FILE)).unwrap();
    next_renewal(&clock, &mut now).await;
    next_renewal(&clock, &mut now).await;
    drop(guard);
    let version = *store.subscribe().borrow();
    assert_eq!((version.loaded, version.rejected), (6, 2));
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"unreadable\"} 1"),
        "{metrics}"
    );
    assert_eq!(events.find_at(tracing::Level::ERROR, "").len(), 2);
    assert_eq!(issuer(&store), first_issuer);
    task.abort();
}
