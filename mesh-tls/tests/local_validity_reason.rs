//! How a handshake refused because the local certificate is outside its
//! validity is counted: `credentials_expired` past its `notAfter`,
//! `credentials_not_yet_valid` before its `notBefore` (a clock stepped
//! back), on both ends of a connection. Neither is `no_credentials`, which
//! says that none were ever loaded: the remedies differ (renew the
//! certificate, fix the clock, deliver the secret).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity;

use mesh_tls::{AcceptConfig, CredentialStore, InboundMode, StoreConfig, TlsAccept};
use support::*;
use validity::*;

fn count(store: &CredentialStore, direction: &str, reason: &str) -> u64 {
    let prefix =
        format!("tls_handshake_failures_total{{direction=\"{direction}\",reason=\"{reason}\"}} ");
    encode(store)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|n| n.parse().unwrap()))
        .unwrap_or(0)
}

#[tokio::test]
async fn a_server_certificate_not_valid_yet_counts_as_credentials_not_yet_valid() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let store = pki.store(&clock, API);
    let accept = TlsAccept::new(store.clone(), AcceptConfig::default());

    clock.set(JAN_1 - 3600);
    let (verdict, client) = handshake(&accept).await;
    assert_alerted(client);
    refusal(verdict);
    clock.set(JAN_1 + DAY);
    let (verdict, client) = handshake(&accept).await;
    assert_alerted(client);
    refusal(verdict);

    assert_eq!(count(&store, "inbound", "credentials_not_yet_valid"), 1);
    assert_eq!(count(&store, "inbound", "credentials_expired"), 1);
    assert_eq!(count(&store, "inbound", "no_credentials"), 0);
}

#[tokio::test]
async fn a_client_certificate_not_valid_yet_counts_as_credentials_not_yet_valid() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let server = serve(pki.store(&clock, API), InboundMode::Strict).await;
    let client_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    client_store
        .update(pki.creds(WEB, JAN_1, JAN_1 + DAY))
        .unwrap();
    let mut client = client(connector(client_store.clone(), server.addr, API));

    clock.set(JAN_1 - 60);
    get(&mut client, server.addr).await.err().unwrap();
    assert_eq!(
        count(&client_store, "outbound", "credentials_not_yet_valid"),
        1
    );
    assert_eq!(count(&client_store, "outbound", "no_credentials"), 0);
    server.stop().await;
}
