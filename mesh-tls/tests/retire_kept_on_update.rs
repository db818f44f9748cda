//! A credential update retires a pooled client connection only when the new
//! credentials no longer vouch for it: a new trust bundle that no longer
//! verifies the server's chain, or another local identity. A bundle that
//! still trusts the server, or a renewal of the local certificate, keeps
//! it, as the server side keeps a connection whose client the new bundle
//! still trusts: a bundle rollout reaches every workload at once, and
//! retiring on it would make every client re-handshake at the same moment.
//!
//! The server counts the TLS connections it accepts: one connection across
//! an update and a later request means the pooled connection was kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{CredentialStore, InboundMode};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";
const VOTE: &str = "spiffe://example.org/ns/shop/sa/vote";

fn retired(store: &CredentialStore, reason: &str) -> bool {
    encode(store).lines().any(|line| {
        line.starts_with(&format!(
            "tls_connections_retired_total{{direction=\"outbound\",reason=\"{reason}\"}} "
        )) && !line.ends_with(" 0")
    })
}

#[tokio::test(start_paused = true)]
async fn a_bundle_update_that_still_trusts_the_server_keeps_the_pooled_connection() {
    let (ca, next) = (ca(), ca());
    let accept = RecordingAccept::new(store(&ca, API));
    let server = serve_with(accept.clone()).await;
    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let client_store = loaded(with_bundle(&web, &[&ca]));
    let mut mesh = client(connector(client_store.clone(), server.addr, API));
    let first = get(&mut mesh, server.addr).await.unwrap();
    assert_eq!(first.body, format!("mutual {WEB}"));
    assert_eq!(accept.accepts(), 1);

    // The next CA's anchor added beside the one in service: the first
    // step of a CA rotation, which reaches every workload at once.
    client_store
        .update(with_bundle(&web, &[&ca, &next]))
        .unwrap();
    let first = first.server.unwrap();
    assert!(
        !first.is_retired(),
        "the new bundle still trusts the server"
    );

    let second = get(&mut mesh, server.addr).await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(
        second.server.unwrap().connection_id(),
        first.connection_id(),
        "the request went on the pooled connection"
    );
    assert_eq!(accept.accepts(), 1, "no second handshake");
    assert!(
        !retired(&client_store, "rotation"),
        "{}",
        encode(&client_store)
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_bundle_that_drops_the_servers_ca_retires_the_pooled_connection() {
    let (old, next) = (ca(), ca());
    // Midway through a CA rotation: both trust both anchors; the server
    // holds a certificate of the old CA, the client one of the next.
    let server_store = loaded(creds_trusting(&old, API, HOUR, &[&old, &next]));
    let accept = RecordingAccept::new(server_store.clone());
    let server = serve_with(accept.clone()).await;
    let web = next.issue(&id(WEB), HOUR).unwrap();
    let client_store = loaded(with_bundle(&web, &[&old, &next]));
    let mut mesh = client(connector(client_store.clone(), server.addr, API));
    let first = get(&mut mesh, server.addr).await.unwrap().server.unwrap();
    assert_eq!(accept.accepts(), 1);

    // The server moves to the next CA; then the client drops the old
    // anchor, which the pooled connection's server chain leads to.
    server_store
        .update(creds_trusting(&next, API, HOUR, &[&old, &next]))
        .unwrap();
    client_store.update(with_bundle(&web, &[&next])).unwrap();
    assert!(
        first.is_retired(),
        "the new bundle no longer trusts the server"
    );
    assert!(
        retired(&client_store, "rotation"),
        "{}",
        encode(&client_store)
    );

    let second = get(&mut mesh, server.addr).await.unwrap();
    assert_eq!(second.body, format!("mutual {WEB}"));
    assert_ne!(
        second.server.unwrap().connection_id(),
        first.connection_id()
    );
    assert_eq!(
        accept.accepts(),
        2,
        "a new handshake, with the next CA's chain"
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn another_local_identity_retires_the_pooled_connection() {
    let ca = ca();
    let accept = RecordingAccept::new(store(&ca, API));
    let server = serve_with(accept.clone()).await;
    let client_store = store(&ca, WEB);
    let mut mesh = client(connector(client_store.clone(), server.addr, API));
    let first = get(&mut mesh, server.addr).await.unwrap().server.unwrap();

    // The server authorized the connection for the identity it proved;
    // requests now come from another, so they need a handshake proving it.
    client_store.update(creds(&ca, VOTE)).unwrap();
    assert!(first.is_retired());
    let second = get(&mut mesh, server.addr).await.unwrap();
    assert_eq!(second.body, format!("mutual {VOTE}"));
    assert_eq!(accept.accepts(), 2);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_renewed_local_certificate_keeps_the_pooled_connection() {
    let ca = ca();
    let accept = RecordingAccept::new(store(&ca, API));
    let server = serve_with(accept.clone()).await;
    let client_store = store(&ca, WEB);
    let old_leaf = leaf_in_service(&client_store).to_vec();
    let mut mesh = client(connector(client_store.clone(), server.addr, API));
    let first = get(&mut mesh, server.addr).await.unwrap().server.unwrap();

    // A renewal: a new certificate for the same identity, from the same
    // CA. The server authenticated the old one, valid for the hour yet.
    client_store.update(creds(&ca, WEB)).unwrap();
    assert_ne!(leaf_in_service(&client_store).to_vec(), old_leaf);
    assert!(!first.is_retired(), "a renewal keeps the pooled connection");
    let second = get(&mut mesh, server.addr).await.unwrap().server.unwrap();
    assert_eq!(second.connection_id(), first.connection_id());
    assert_eq!(accept.accepts(), 1);
    assert_eq!(accept.last_client(), old_leaf);
    assert!(
        !retired(&client_store, "rotation"),
        "{}",
        encode(&client_store)
    );
    server.stop().await;
}

/// What a connection kept across a renewal is still held to: its retirement
/// a minute (the connector's `retire_before_expiry`) ahead of the `notAfter`
/// of the certificate it was authenticated with, the old one.
#[tokio::test(start_paused = true)]
async fn a_connection_kept_across_a_renewal_is_retired_before_the_old_certificate_expires() {
    let ca = ca();
    let server_creds = ca.issue(&id(API), 2 * HOUR).unwrap().credentials().unwrap();
    let server = serve(loaded(server_creds), InboundMode::Strict).await;
    let client_store = store(&ca, WEB);
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let connector = connector(client_store.clone(), server.addr, API);
    let io = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
    let mut extras = http::Extensions::new();
    hyper_util::client::legacy::connect::Connection::connected(&io).get_extras(&mut extras);
    let tls = extras.get::<mesh_tls::ServerTls>().cloned().unwrap();

    client_store.update(creds(&ca, WEB)).unwrap();
    assert!(!tls.is_retired());

    // Past the old certificate's `notAfter` less the minute; a read polls
    // the connection's timers.
    tokio::time::advance(HOUR - Duration::from_secs(59)).await;
    let mut io = hyper_util::rt::TokioIo::new(io);
    let _ = tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1]).await;
    assert!(
        tls.is_retired(),
        "retired ahead of the old certificate's expiry"
    );
    assert!(
        retired(&client_store, "expiry"),
        "{}",
        encode(&client_store)
    );
    assert!(
        !retired(&client_store, "rotation"),
        "{}",
        encode(&client_store)
    );
    server.stop().await;
}
