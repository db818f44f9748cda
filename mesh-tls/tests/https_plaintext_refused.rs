//! An `https` request URI asks for an encrypted connection. A target the
//! connector reaches in plaintext cannot give it one, so the connect fails
//! and nothing of the request (its `Authorization`, say) leaves the client
//! in the clear; a target reached over mutual TLS serves it as before.
//! Real sockets on 127.0.0.1, through hyper-util's client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy, rt::TokioExecutor};
use mesh_core::client::ClientConfig;
use mesh_tls::{
    ConnectError, CredentialStore, InboundMode, OutboundTls, ServerTls, TlsConnector, TlsTargets,
};
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

type HyperClient = legacy::Client<TlsConnector, Empty<Bytes>>;

fn hyper_client(connector: TlsConnector) -> HyperClient {
    legacy::Client::builder(TokioExecutor::new()).build(connector)
}

/// A GET to `uri` carrying a bearer token, which must never travel in the
/// clear.
fn secret_get(uri: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(uri)
        .header(http::header::AUTHORIZATION, "Bearer secret")
        .body(Empty::new())
        .unwrap()
}

/// The connector's error in `error`'s chain, checked to be the refusal of
/// an `https` URI to `authority` in plaintext, whose message names the URI
/// and why.
fn assert_refused(error: &legacy::Error, authority: &str) {
    assert!(error.is_connect(), "not a connect failure: {error:?}");
    let refused = find::<ConnectError>(error).expect("a ConnectError in the chain");
    assert!(
        matches!(refused, ConnectError::HttpsInPlaintext { .. }),
        "{refused:?}"
    );
    let target = refused.target().expect("the refusal names its target");
    assert_eq!(target.authority.as_ref().unwrap().as_str(), authority);
    assert_eq!(target.identity, None);
    let message = refused.to_string();
    assert!(
        message.contains(&format!("https://{authority}")) && message.contains("plaintext"),
        "{message}"
    );
}

/// Accepts the first connection to `listener` and gives back the bytes it
/// carried: up to the end of a request head, which is answered `200` so
/// that a client that sent one in the clear gets its answer (and its test
/// fails rather than waits), or to the client's close.
fn first_connection(listener: TcpListener) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut bytes = Vec::new();
        let mut buf = [0; 1024];
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            bytes.extend_from_slice(&buf[..n]);
            if n == 0 {
                return bytes;
            }
            if bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                tcp.write_all(ok).await.unwrap();
                return bytes;
            }
        }
    })
}

/// The target is plaintext and no target is `mtls`: the connector refuses
/// before it dials, so the server sees no connection at all. That is shown
/// by a marker connection made after the failure: the listener accepts it
/// first, as it would have accepted the client's had there been one.
#[tokio::test]
async fn an_https_request_to_a_plaintext_target_is_refused_before_it_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connector = TlsConnector::new(
        &ClientConfig::default(),
        CredentialStore::default(),
        TlsTargets::new(OutboundTls::Plaintext),
    )
    .unwrap();
    let client = hyper_client(connector);
    let server = first_connection(listener);

    let error = client
        .request(secret_get(&format!("https://{addr}/")))
        .await
        .expect_err("an https request must not go out in plaintext");
    assert_refused(&error, &addr.to_string());

    let mut marker = TcpStream::connect(addr).await.unwrap();
    marker.write_all(b"marker").await.unwrap();
    marker.shutdown().await.unwrap();
    let first = server.await.unwrap();
    assert_eq!(String::from_utf8_lossy(&first), "marker");
}

/// With `mtls` targets configured, a plaintext URI is dialled first and
/// checked against them by the address it reached. One that reached no
/// `mtls` target is closed before a byte of the request is written.
#[tokio::test]
async fn an_https_request_that_reaches_no_mtls_target_is_closed_before_a_byte() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let elsewhere = support::refused::refused_addr();
    let targets = TlsTargets::new(OutboundTls::Plaintext)
        .with_endpoint(elsewhere, OutboundTls::Mtls(id(API)));
    let connector =
        TlsConnector::new(&ClientConfig::default(), store(&ca(), WEB), targets).unwrap();
    let client = hyper_client(connector);
    let server = first_connection(listener);

    let error = client
        .request(secret_get(&format!("https://{addr}/")))
        .await
        .expect_err("an https request must not go out in plaintext");
    assert_refused(&error, &addr.to_string());
    let received = server.await.unwrap();
    assert_eq!(String::from_utf8_lossy(&received), "", "sent in the clear");
}

/// An `https` URI to an `mtls` target, matched by its address or reached
/// through a name, gets mutual TLS as before.
#[tokio::test]
async fn an_https_request_to_an_mtls_target_is_served_over_mutual_tls() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;
    let client = hyper_client(connector(store(&ca, WEB), server.addr, API));

    let port = server.addr.port();
    for uri in [
        format!("https://{}/", server.addr),
        format!("https://localhost:{port}/"),
    ] {
        let res = client.request(secret_get(&uri)).await.unwrap();
        let tls = res.extensions().get::<ServerTls>().cloned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("mutual {WEB}"), "{uri}");
        assert_eq!(tls.unwrap().server_identity().as_str(), API, "{uri}");
    }
    server.stop().await;
}

/// An `http` URI to a plaintext target still goes in plaintext: it asked
/// for nothing else.
#[tokio::test]
async fn an_http_request_to_a_plaintext_target_still_goes_in_plaintext() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Permissive).await;
    let connector = TlsConnector::new(
        &ClientConfig::default(),
        CredentialStore::default(),
        TlsTargets::new(OutboundTls::Plaintext),
    )
    .unwrap();
    let client = hyper_client(connector);

    let res = client
        .request(secret_get(&format!("http://{}/", server.addr)))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "plaintext no_tls_from_remote");
    server.stop().await;
}
