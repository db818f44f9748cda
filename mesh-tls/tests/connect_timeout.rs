//! The connector's handshake timeout, on tokio's paused clock: a server
//! that accepts the TCP connection and then says nothing holds an `mtls`
//! connection for the timeout, not forever. Real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use mesh_tls::{
    ConnectConfig, ConnectError, CredentialStore, OutboundTls, TlsConnector, TlsTargets,
};
use support::*;
use tokio::net::TcpListener;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// A server on 127.0.0.1 that accepts, then holds each connection without
/// reading or writing.
async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(tcp);
    });
    (addr, silent)
}

fn connector_over_tcp(store: &CredentialStore, targets: TlsTargets) -> TlsConnector {
    let config = ConnectConfig {
        handshake_timeout: Duration::from_secs(3),
        ..ConnectConfig::default()
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    TlsConnector::with_connector(http, store.clone(), targets, config).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_the_client_hello_times_the_handshake_out() {
    let ca = ca();
    let (addr, silent) = silent_server().await;
    let store = store(&ca, WEB);
    let targets = TlsTargets::new(OutboundTls::Mtls(id(API)));
    let connector = connector_over_tcp(&store, targets);

    let started = tokio::time::Instant::now();
    let uri = format!("http://{addr}/").parse().unwrap();
    // Bounded, so that a connector that never times out fails the test
    // rather than hanging it.
    let error = tokio::time::timeout(HOUR, tower::ServiceExt::oneshot(connector, uri))
        .await
        .expect("the handshake never timed out")
        .unwrap_err();
    let ConnectError::Timeout { server, after } = &error else {
        panic!("not a timeout: {error:?}");
    };
    assert_eq!(*after, Duration::from_secs(3));
    // The error names the server and the identity it was to prove.
    assert_eq!(server.addr, Some(addr));
    assert_eq!(server.identity.as_str(), API);
    assert_eq!(error.server(), Some(server));
    assert_eq!(
        error.to_string(),
        format!("tls handshake with {addr} (expecting {API}) timed out after 3s")
    );
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let metrics = encode(&store);
    assert!(
        metrics
            .contains("tls_handshake_failures_total{direction=\"outbound\",reason=\"timeout\"} 1"),
        "{metrics}"
    );
    silent.abort();
}

/// A URI that reaches an `mtls` endpoint by another address (`0.0.0.0`,
/// which Linux dials as the local host) times out naming the address the
/// connection reached, not the one the URI spelt.
#[tokio::test(start_paused = true)]
async fn a_timeout_names_the_address_the_connection_reached() {
    let ca = ca();
    let (addr, silent) = silent_server().await;
    let targets =
        TlsTargets::new(OutboundTls::Plaintext).with_endpoint(addr, OutboundTls::Mtls(id(API)));
    let connector = connector_over_tcp(&store(&ca, WEB), targets);

    let uri = format!("http://0.0.0.0:{}/", addr.port()).parse().unwrap();
    let error = tokio::time::timeout(HOUR, tower::ServiceExt::oneshot(connector, uri))
        .await
        .expect("the handshake never timed out")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("tls handshake with {addr} (expecting {API}) timed out after 3s"),
        "{error:?}"
    );
    silent.abort();
}
