//! The CA's renewal loop when a renewal fails, and when the CA directory
//! it was loaded from changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{CredentialSource, CredentialStore, StoreConfig, ca};
use support::*;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const API: &str = "spiffe://example.org/ns/emojivoto/sa/api";

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    // A renewal reads the CA directory on the blocking pool; the paused
    // clock does not move on while that read runs, so this waits for it.
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
}

fn rejected(store: &CredentialStore) -> u64 {
    store.subscribe().borrow().rejected
}

/// A renewal that fails leaves the certificate in service, and is tried
/// again at 70 % of the time that certificate has left, as Linkerd's proxy
/// schedules its next attempt from the expiry of the certificate it holds
/// (linkerd2-proxy, `identity-client` `refresh_in`): not every 10 seconds
/// for the hours a day-long certificate still has, and ever sooner as its
/// end nears.
#[tokio::test(start_paused = true)]
async fn a_failed_renewal_is_retried_at_seventy_percent_of_what_the_certificate_has_left() {
    let ca = ca();
    let config = StoreConfig {
        identity: Some(id(WEB)),
        ..StoreConfig::default()
    };
    let store = CredentialStore::with_credentials(config, creds(&ca, WEB)).unwrap();
    let served = store.credentials().unwrap();
    let left = served
        .not_after()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    // Every certificate for `API` is refused by a store that serves `WEB`.
    let renew = tokio::spawn(ca.renew(store.clone(), id(API), HOUR));
    settle().await;
    assert_eq!(rejected(&store), 1);

    tokio::time::advance(left.mul_f64(0.7) - Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(rejected(&store), 1, "retried before 70 % of what was left");
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(rejected(&store), 2, "not retried at 70 % of what was left");
    assert_eq!(
        store.credentials().unwrap().chain(),
        served.chain(),
        "the last good certificate stays"
    );
    renew.abort();
}

/// With no certificate in service (or only an expired one), a failed
/// renewal is retried after the shortest wait, 10 seconds.
#[tokio::test(start_paused = true)]
async fn without_a_certificate_a_failed_renewal_is_retried_every_ten_seconds() {
    let config = StoreConfig {
        identity: Some(id(WEB)),
        ..StoreConfig::default()
    };
    let store = CredentialStore::new(config);
    let renew = tokio::spawn(ca().renew(store.clone(), id(API), HOUR));
    settle().await;
    assert_eq!(rejected(&store), 1);
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(rejected(&store), 2);
    renew.abort();
}

/// The issuer in a CA directory is replaced before it expires (Linkerd's
/// identity service reloads its issuer when the files change, keeping the
/// one it has when the new ones do not load). A sidecar issuing its own
/// certificates from the directory signs its next one with the new issuer,
/// and keeps the old issuer while the directory does not load.
#[tokio::test(start_paused = true)]
async fn a_ca_source_renews_with_the_issuer_now_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let first = ca::write_ca(&ca_dir, &"example.org".parse().unwrap()).unwrap();
    let store = CredentialStore::default();
    let source = CredentialSource::Ca {
        dir: ca_dir.clone(),
        identity: id(WEB),
        ttl: HOUR,
    };
    let task = tokio::spawn(store.start(source).unwrap());
    settle().await;
    let issuer = |store: &CredentialStore| store.credentials().unwrap().chain()[1].clone();
    let first_issuer = issuer(&store);

    // A directory that does not load keeps the issuer in use.
    std::fs::write(ca_dir.join(ca::ISSUER_KEY_FILE), "not a key").unwrap();
    tokio::time::advance(HOUR.mul_f64(0.7) + Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 2, "renewed all the same");
    assert_eq!(issuer(&store), first_issuer);

    // A new CA (anchor, issuer and its key) is used from the next renewal.
    let next = ca::write_ca(&dir.path().join("next"), &"example.org".parse().unwrap()).unwrap();
    for file in [ca::CA_CERT_FILE, ca::ISSUER_CERT_FILE, ca::ISSUER_KEY_FILE] {
        std::fs::copy(dir.path().join("next").join(file), ca_dir.join(file)).unwrap();
    }
    tokio::time::advance(HOUR.mul_f64(0.7) + Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(store.subscribe().borrow().loaded, 3);
    let now = store.credentials().unwrap();
    assert_ne!(issuer(&store), first_issuer);
    assert_eq!(
        now.roots()[0].as_ref(),
        next.issue(&id(WEB), HOUR)
            .unwrap()
            .credentials()
            .unwrap()
            .roots()[0]
            .as_ref()
    );
    assert_ne!(
        now.roots()[0].as_ref(),
        first
            .issue(&id(WEB), HOUR)
            .unwrap()
            .credentials()
            .unwrap()
            .roots()[0]
            .as_ref()
    );
    task.abort();
}

/// The renewal loop tells the time by the store's clock
/// ([`CredentialStore::with_time_provider`]), as the store does when it
/// checks what is put in service: each certificate is dated, and its
/// renewal scheduled, by that clock. A test moves the clock past the
/// renewal point and sees the renewal, dated then, without waiting.
#[tokio::test(start_paused = true)]
async fn a_renewal_is_dated_and_scheduled_by_the_stores_clock() {
    use crate::validity::{TestClock, at};
    use std::time::SystemTime;
    // Ten days ahead of the system clock, inside the CA's year.
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 10 * 86_400;
    let clock = TestClock::at(start);
    let config = StoreConfig {
        identity: Some(id(WEB)),
        ..StoreConfig::default()
    };
    let store = CredentialStore::with_time_provider(config, clock.clone());
    let renew = tokio::spawn(ca().renew(store.clone(), id(WEB), HOUR));
    settle().await;
    assert_eq!(
        (store.subscribe().borrow().loaded, rejected(&store)),
        (1, 0),
        "the first certificate is not valid by the store's clock"
    );
    let first = store.credentials().unwrap();
    assert_eq!(first.not_before(), at(start) - ca::BACKDATE);
    assert_eq!(first.not_after(), at(start) + HOUR);

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
    assert_eq!(second.not_after(), at(start + 2_521) + HOUR);
    renew.abort();
}
