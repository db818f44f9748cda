//! A CA source's renewals: a directory replaced by a CA that cannot issue
//! the identity the source renews is refused, the CA loaded before going on
//! renewing, as for any other bad reload; and a renewal falls due by the
//! store's clock, not only by the timer armed for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity::TestClock;

use std::time::{Duration, SystemTime};

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

/// A certificate living an hour is renewed after 70 % of it.
const RENEWAL: u64 = 2_521;

/// A CA directory for another trust domain, copied over the one a CA
/// source renews from, can sign nothing for the source's identity: every
/// renewal would fail until the certificate in service expired, though
/// the CA loaded before could still sign. It is refused at the renewal
/// that reloads it, counted once as `wrong_trust_domain` and logged as an
/// error naming `issuer.crt` and both trust domains; the renewals go on
/// with the CA loaded before.
#[tokio::test(start_paused = true)]
async fn a_reloaded_ca_of_another_trust_domain_is_refused_and_the_last_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    ca::write_ca(&ca_dir, &"example.org".parse().unwrap()).unwrap();
    let mut now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = TestClock::at(now);
    let config = StoreConfig {
        identity: Some(id(WEB)),
        ..StoreConfig::default()
    };
    let store = CredentialStore::with_time_provider(config, clock.clone());
    let source = CredentialSource::Ca {
        dir: ca_dir.clone(),
        identity: id(WEB),
        ttl: HOUR,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    settle().await;
    let issuer = |store: &CredentialStore| store.credentials().unwrap().chain()[1].clone();
    let first_issuer = issuer(&store);

    std::fs::remove_dir_all(&ca_dir).unwrap();
    ca::write_ca(&ca_dir, &"other.org".parse().unwrap()).unwrap();

    let (events, guard) = Logs::capture();
    for _ in 0..3 {
        now += RENEWAL;
        clock.set(now);
        tokio::time::advance(Duration::from_secs(RENEWAL)).await;
        settle().await;
    }
    drop(guard);

    let version = *store.subscribe().borrow();
    assert_eq!(
        (version.loaded, version.rejected),
        (4, 1),
        "renewed three times with the last good ca, the refused one counted once"
    );
    assert_eq!(issuer(&store), first_issuer);
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"wrong_trust_domain\"} 1"),
        "{metrics}"
    );
    let errors = events.find_at(tracing::Level::ERROR, "");
    assert_eq!(errors.len(), 1, "{:#?}", events.all());
    let issuer_file = ca_dir.join(ca::ISSUER_CERT_FILE);
    for said in [&*issuer_file.to_string_lossy(), "other.org", WEB, "kept"] {
        assert!(errors[0].contains(said), "{said:?} not in {}", errors[0]);
    }
    task.abort();
}

/// The renewal is due at a time by the store's clock, but waited for on
/// tokio's, which stands still while the machine sleeps (a suspended
/// laptop, a paused VM) and knows nothing of a wall clock stepped forward.
/// When the store's clock passes the renewal point ahead of the timer,
/// the renewal comes within a minute, as the readiness task looks again
/// at least every minute: otherwise the certificate in service expires
/// and the workload has no identity until the timer fires, hours later.
#[tokio::test(start_paused = true)]
async fn a_renewal_passed_by_the_stores_clock_comes_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = TestClock::at(start);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    let source = CredentialSource::Ca {
        dir: dir.path().to_owned(),
        identity: id(WEB),
        ttl: HOUR,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 1);

    // Two hours pass by the store's clock, one minute by tokio's: the
    // certificate in service has expired.
    clock.set(start + 2 * 3_600);
    assert!(!store.is_ready());
    tokio::time::advance(Duration::from_secs(61)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 2, "not renewed");
    assert!(store.is_ready());
    let renewed = store.credentials().unwrap();
    assert_eq!(
        renewed.not_after(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(start + 2 * 3_600) + HOUR
    );
    task.abort();
}
