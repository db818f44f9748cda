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

/// A clock that says a time `SystemTime` cannot hold is read as the system
/// clock, as the CA reads it, rather than panicking.
#[test]
fn a_clock_beyond_what_system_time_holds_is_read_as_the_system_clock() {
    let store =
        CredentialStore::with_time_provider(StoreConfig::default(), TestClock::at(u64::MAX));
    store.update(creds(&ca(), WEB)).unwrap();
    assert!(store.is_ready());
}
