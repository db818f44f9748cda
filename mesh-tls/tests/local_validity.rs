//! Neither end of the mesh presents a local certificate outside its
//! validity: a certificate that expired before a renewal replaced it (or
//! that is not valid yet, after the clock stepped back) would be refused by
//! a careful peer with an error about the peer's view of it, and accepted
//! by a lax one. The store's clock is injected, so that the certificates
//! expire without waiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity;

use mesh_core::Tls;
use mesh_tls::{
    AcceptConfig, ConnectError, CredentialStore, InboundMode, StoreConfig, TlsAccept,
    accept::AcceptError, creds::OutsideValidity,
};
use rustls::AlertDescription;
use support::*;
use validity::*;

#[tokio::test]
async fn the_same_certificate_serves_while_the_clock_is_inside_its_validity() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let store = pki.store(&clock, API);
    let accept = TlsAccept::new(store.clone(), AcceptConfig::default());

    // One second before the notAfter, it serves; at the notAfter, not.
    clock.set(JAN_1 + DAY - 1);
    assert!(store.is_ready());
    let (verdict, client) = handshake(&accept).await;
    client.unwrap();
    assert_eq!(verdict.unwrap().tls, Tls::NoClientCert);

    clock.set(JAN_1 + DAY);
    let (verdict, client) = handshake(&accept).await;
    assert_alerted(client);
    refusal(verdict);

    // The clock corrected back inside the validity: served again.
    clock.set(JAN_1 + DAY / 2);
    assert!(store.is_ready());
    let (verdict, client) = handshake(&accept).await;
    client.unwrap();
    assert_eq!(verdict.unwrap().tls, Tls::NoClientCert);
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_valid_yet_refuses_the_handshake() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let store = pki.store(&clock, API);
    let accept = TlsAccept::new(store.clone(), AcceptConfig::default());

    // The clock stepped back an hour before the certificate's notBefore.
    clock.set(JAN_1 - 3600);
    assert!(!store.is_ready());
    let (verdict, client) = handshake(&accept).await;
    assert_alerted(client);
    let unusable = refusal(verdict);
    assert_eq!(
        unusable.validity,
        OutsideValidity::NotYetValid {
            not_before: at(JAN_1)
        }
    );
    assert_eq!(
        unusable.to_string(),
        "local identity certificate of spiffe://example.org/ns/shop/sa/api is not valid until \
         2030-01-01T00:00:00Z (notBefore; it is now 2029-12-31T23:00:00Z)"
    );
}

#[tokio::test]
async fn a_rotation_to_a_fresh_certificate_serves_again_without_a_restart() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let store = pki.store(&clock, API);
    let accept = TlsAccept::new(store.clone(), AcceptConfig::default());

    clock.set(JAN_1 + DAY + 60);
    let (verdict, client) = handshake(&accept).await;
    assert_alerted(client);
    refusal(verdict);

    // Renewal succeeds at last: the same acceptor serves the new one.
    store
        .update(pki.creds(API, JAN_1 + DAY, JAN_1 + 2 * DAY))
        .unwrap();
    assert!(store.is_ready());
    let (verdict, client) = handshake(&accept).await;
    client.unwrap();
    assert_eq!(verdict.unwrap().tls, Tls::NoClientCert);
}

/// End to end, strict mutual TLS between two mesh workloads on one clock:
/// the server's expired certificate fails the client's request with the
/// server's alert, and a rotation on the server brings it back.
#[tokio::test]
async fn a_mesh_client_sees_the_handshake_fail_until_the_server_rotates() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let server_store = pki.store(&clock, API);
    let client_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    let server = serve(server_store.clone(), InboundMode::Strict).await;

    // The client's own certificate runs a day longer than the server's.
    clock.set(JAN_1 + DAY + 60);
    client_store
        .update(pki.creds(WEB, JAN_1, JAN_1 + 2 * DAY))
        .unwrap();
    let mut client = client(connector(client_store, server.addr, API));
    let error = get(&mut client, server.addr).await.err().unwrap();
    assert_eq!(
        find::<rustls::Error>(&*error),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::AccessDenied
        )),
        "{error:?}"
    );

    server_store
        .update(pki.creds(API, JAN_1 + DAY, JAN_1 + 2 * DAY))
        .unwrap();
    let reply = get(&mut client, server.addr).await.unwrap();
    assert_eq!(reply.body, format!("mutual {WEB}"));
    server.stop().await;
}

/// The connector refuses to present its certificate outside its validity
/// at either end, naming the identity and the time.
#[tokio::test]
async fn a_client_presents_no_certificate_outside_its_validity() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let server = serve(pki.store(&clock, API), InboundMode::Strict).await;
    let client_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    client_store
        .update(pki.creds(WEB, JAN_1, JAN_1 + DAY))
        .unwrap();
    let mut client = client(connector(client_store.clone(), server.addr, API));

    for (now, validity) in [
        (
            JAN_1 - 60,
            OutsideValidity::NotYetValid {
                not_before: at(JAN_1),
            },
        ),
        (
            JAN_1 + DAY,
            OutsideValidity::Expired {
                not_after: at(JAN_1 + DAY),
            },
        ),
    ] {
        clock.set(now);
        let error = get(&mut client, server.addr).await.err().unwrap();
        match find::<ConnectError>(&*error) {
            Some(ConnectError::CredentialsUnusable { unusable, .. }) => {
                assert_eq!(unusable.validity, validity);
                assert_eq!(unusable.identity, id(WEB));
                assert_eq!(unusable.now, at(now));
            }
            _ => panic!("{error:?}"),
        }
    }
    server.stop().await;
}

/// A chain that sends its issuer's old certificate beside the reissued one
/// verifies through the reissued one once the old one expires, as webpki
/// builds the path: the local certificate is still valid then, and is
/// served, and the identity ends at the leaf's notAfter, not the old
/// copy's.
#[tokio::test]
async fn a_chain_outliving_an_old_copy_of_its_issuer_is_served_past_that_copys_expiry() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1 + DAY);
    let server_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    server_store
        .update(pki.creds_with_a_reissued_issuer(API))
        .unwrap();
    let expiration = format!(
        "identity_cert_expiration_timestamp_seconds {}",
        JAN_1 + 10 * DAY
    );
    assert!(
        encode(&server_store).lines().any(|l| l == expiration),
        "{}",
        encode(&server_store)
    );

    // The old copy has expired; the reissued one carries the chain.
    clock.set(JAN_1 + 3 * DAY);
    assert!(server_store.is_ready());
    let accept = TlsAccept::new(server_store.clone(), AcceptConfig::default());
    let (verdict, lax) = handshake(&accept).await;
    lax.unwrap();
    assert_eq!(verdict.unwrap().tls, Tls::NoClientCert);

    // A mesh client verifying the chain at that time accepts it.
    let client_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    client_store
        .update(pki.creds(WEB, JAN_1, JAN_1 + 10 * DAY))
        .unwrap();
    let server = serve(server_store.clone(), InboundMode::Strict).await;
    let mut mesh = client(connector(client_store, server.addr, API));
    let reply = get(&mut mesh, server.addr).await.unwrap();
    assert_eq!(reply.body, format!("mutual {WEB}"));
    server.stop().await;

    // At the leaf's notAfter, it is refused.
    clock.set(JAN_1 + 10 * DAY);
    let (verdict, lax) = handshake(&accept).await;
    assert_alerted(lax);
    assert_eq!(
        refusal(verdict).validity,
        OutsideValidity::Expired {
            not_after: at(JAN_1 + 10 * DAY)
        }
    );
}

/// A connection is closed when the certificates that authenticated it
/// expire by the store's clock, the one that decided they were valid: a
/// certificate with a minute left is not served for longer than that
/// minute by another clock's reckoning.
#[tokio::test]
async fn a_connection_is_closed_when_the_certificate_expires_by_the_stores_clock() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let store = pki.store(&clock, API);
    let accept = TlsAccept::new(store, AcceptConfig::default());
    clock.set(JAN_1 + DAY - 60);

    let before = tokio::time::Instant::now();
    let (verdict, lax) = handshake(&accept).await;
    let after = tokio::time::Instant::now();
    lax.unwrap();
    let close_at = verdict.unwrap().retire.close_at().unwrap();
    let minute = std::time::Duration::from_secs(60);
    assert!(
        before + minute <= close_at && close_at <= after + minute,
        "closed {:?} after the handshake instead of a minute",
        close_at - after
    );
}

/// A second certificate of the issuer's name that did not sign the
/// workload certificate (another key) opens no path: once the issuer's
/// certificate that did expires, the chain has expired, as peers would
/// find, and it is not served.
#[tokio::test]
async fn a_second_issuer_certificate_that_signed_nothing_does_not_extend_the_chain() {
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1 + DAY);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    store
        .update(pki.creds_with_a_second_issuer(API, false))
        .unwrap();
    let accept = TlsAccept::new(store.clone(), AcceptConfig::default());

    clock.set(JAN_1 + 3 * DAY);
    assert!(!store.is_ready());
    let (verdict, lax) = handshake(&accept).await;
    assert_alerted(lax);
    assert_eq!(
        refusal(verdict).validity,
        OutsideValidity::Expired {
            not_after: at(JAN_1 + 2 * DAY)
        }
    );
}

/// Before any credentials load, a TLS client is told so with the same
/// alert, rather than seeing the connection close mid-handshake.
#[tokio::test]
async fn a_server_with_no_credentials_yet_answers_with_an_alert() {
    let accept = TlsAccept::new(
        CredentialStore::new(StoreConfig::default()),
        AcceptConfig::default(),
    );
    let (verdict, lax) = handshake(&accept).await;
    assert_alerted(lax);
    let error = verdict.err().unwrap();
    assert!(
        matches!(
            error.downcast_ref::<AcceptError>(),
            Some(AcceptError::NoCredentials)
        ),
        "{error:?}"
    );
}
