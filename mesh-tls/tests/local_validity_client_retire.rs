//! A client connection is closed when the certificates that authenticated
//! it expire by the store's clock, the one that decided they were valid, as
//! a server connection is (`local_validity`): a certificate with seconds
//! left is not kept in use for longer by another clock's reckoning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity;

use std::time::Duration;

use mesh_tls::{CredentialStore, InboundMode, StoreConfig};
use support::*;
use validity::*;

#[tokio::test]
async fn a_client_connection_is_closed_when_its_certificate_expires_by_the_stores_clock() {
    let pki = Pki::new();
    // The server on a clock of its own, at noon of its certificate's day:
    // the close seen is the client's own.
    let server = serve(pki.store(&TestClock::at(JAN_1), API), InboundMode::Strict).await;
    let clock = TestClock::at(JAN_1);
    let client_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    client_store
        .update(pki.creds(WEB, JAN_1, JAN_1 + DAY))
        .unwrap();

    // Five seconds left by the store's clock (the server waits longer
    // for a first request); years by the system's.
    clock.set(JAN_1 + DAY - 5);
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector(client_store, server.addr, API), uri)
        .await
        .unwrap();
    let mut io = hyper_util::rt::TokioIo::new(io);

    tokio::time::pause();
    let paused = tokio::time::Instant::now();
    let read = tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1]).await;
    let elapsed = paused.elapsed();
    let error = read.expect_err(&format!("{elapsed:?}"));
    assert!(
        find::<mesh_tls::connect::ConnectionExpired>(&error).is_some(),
        "after {elapsed:?}: {error:?}"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "closed after {elapsed:?} instead of the 5 s its certificate had left"
    );
    server.stop().await;
}
