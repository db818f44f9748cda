//! The CA's renewal loop when a renewal fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use mesh_tls::{CredentialStore, StoreConfig};
use support::*;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const API: &str = "spiffe://example.org/ns/emojivoto/sa/api";

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
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
