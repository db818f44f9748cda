//! The connector's handshake timeout, on tokio's paused clock: a server
//! that accepts the TCP connection and then says nothing holds an `mtls`
//! connection for the timeout, not forever. Real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{ConnectConfig, ConnectError, OutboundTls, TlsConnector, TlsTargets};
use support::*;
use tokio::net::TcpListener;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_the_client_hello_times_the_handshake_out() {
    let ca = ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, then holds the connection without reading or writing.
    let silent = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(tcp);
    });
    let store = store(&ca, WEB);
    let config = ConnectConfig {
        handshake_timeout: Duration::from_secs(3),
        ..ConnectConfig::default()
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let targets = TlsTargets::new(OutboundTls::Mtls(id(API)));
    let connector = TlsConnector::with_connector(http, store.clone(), targets, config).unwrap();

    let started = tokio::time::Instant::now();
    let uri = format!("http://{addr}/").parse().unwrap();
    // Bounded, so that a connector that never times out fails the test
    // rather than hanging it.
    let error = tokio::time::timeout(HOUR, tower::ServiceExt::oneshot(connector, uri))
        .await
        .expect("the handshake never timed out")
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::Timeout(after) if after == Duration::from_secs(3)),
        "{error:?}"
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
