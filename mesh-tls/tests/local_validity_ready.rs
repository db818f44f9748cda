//! `/ready` follows the local certificate's validity: the identity gate
//! closes when the certificate in service expires before a renewal replaces
//! it (or the clock steps back before its `notBefore`), and reopens when a
//! valid one is in service. The store's clock follows tokio's paused clock,
//! so that the certificates expire without waiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::validity;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use mesh_core::admin::Readiness;
use mesh_tls::{CredentialStore, StoreConfig, store::READINESS_RECHECK};
use rustls::time_provider::TimeProvider;
use rustls_pki_types::UnixTime;
use tokio::time::Instant;
use validity::*;

/// The wall clock of a test: `base` seconds since the epoch when the test
/// began, then moving with tokio's clock, plus whatever `step` says (a
/// clock stepped back or forward).
#[derive(Debug)]
struct TokioClock {
    base: u64,
    start: Instant,
    step: AtomicU64,
}

impl TokioClock {
    fn at(base: u64) -> Arc<Self> {
        Arc::new(Self {
            base,
            start: Instant::now(),
            step: AtomicU64::new(0),
        })
    }

    /// Steps the clock back by `secs`.
    fn step_back(&self, secs: u64) {
        self.step.store(secs, Ordering::SeqCst);
    }
}

impl TimeProvider for TokioClock {
    fn current_time(&self) -> Option<UnixTime> {
        let secs = self.base + self.start.elapsed().as_secs() - self.step.load(Ordering::SeqCst);
        Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn the_identity_gate_closes_at_the_not_after_and_reopens_on_rotation() {
    let pki = Pki::new();
    let clock = TokioClock::at(JAN_1);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    let readiness = Readiness::new();
    store.set_readiness(readiness.gate("identity"));
    tokio::spawn(store.readiness_task());
    assert!(!readiness.is_ready(), "nothing loaded yet");

    store
        .update(pki.creds(API, JAN_1 - 60, JAN_1 + DAY))
        .unwrap();
    assert!(readiness.is_ready(), "a load opens the gate at once");

    tokio::time::sleep(secs(DAY - 1)).await;
    assert!(readiness.is_ready(), "a second before the notAfter");
    tokio::time::sleep(secs(2)).await;
    assert!(!store.is_ready());
    assert!(!readiness.is_ready(), "closed once the certificate expired");
    assert_eq!(readiness.pending(), vec![Arc::<str>::from("identity")]);

    // The renewal, late: ready again at once, and the timer follows the
    // new certificate's notAfter.
    store
        .update(pki.creds(API, JAN_1 + DAY, JAN_1 + 3 * DAY))
        .unwrap();
    assert!(readiness.is_ready());
    tokio::time::sleep(secs(DAY)).await;
    assert!(readiness.is_ready(), "the old notAfter closes nothing");
    tokio::time::sleep(secs(DAY)).await;
    assert!(!readiness.is_ready(), "the new notAfter closes it");
}

#[tokio::test(start_paused = true)]
async fn a_renewal_before_the_not_after_keeps_the_gate_open() {
    let pki = Pki::new();
    let clock = TokioClock::at(JAN_1);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    store
        .update(pki.creds(API, JAN_1 - 60, JAN_1 + DAY))
        .unwrap();
    let readiness = Readiness::new();
    store.set_readiness(readiness.gate("identity"));
    assert!(
        readiness.is_ready(),
        "a gate given after the load opens at once"
    );
    tokio::spawn(store.readiness_task());

    tokio::time::sleep(secs(DAY / 2)).await;
    store
        .update(pki.creds(API, JAN_1, JAN_1 + 2 * DAY))
        .unwrap();
    tokio::time::sleep(secs(DAY)).await;
    assert!(readiness.is_ready(), "past the first notAfter, still ready");
    tokio::time::sleep(secs(DAY)).await;
    assert!(!readiness.is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_clock_stepped_back_before_the_not_before_closes_the_gate_until_it_is_valid() {
    let pki = Pki::new();
    let clock = TokioClock::at(JAN_1);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    store.update(pki.creds(API, JAN_1, JAN_1 + DAY)).unwrap();
    let readiness = Readiness::new();
    store.set_readiness(readiness.gate("identity"));
    tokio::spawn(store.readiness_task());
    tokio::time::sleep(secs(1)).await;
    assert!(readiness.is_ready());

    // The wall clock steps back an hour: noticed within a recheck.
    clock.step_back(3600);
    tokio::time::sleep(READINESS_RECHECK).await;
    assert!(!readiness.is_ready(), "not valid yet by the store's clock");

    // The clock catches up with the notBefore: open again.
    tokio::time::sleep(secs(3600)).await;
    assert!(readiness.is_ready());
}
