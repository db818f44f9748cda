//! The client's errors name where the request was sent, over real
//! sockets: the plaintext connector's own errors name no address.
#![allow(clippy::unwrap_used)]

use crate::support::refused::refused_addr;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use mesh_core::client::{Client, ClientConfig, ForEndpoint};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    refused_addr()
}

#[tokio::test]
async fn a_failed_connect_names_the_requests_authority() {
    let addr = closed_port().await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let req = Request::get(format!("http://{addr}/list"))
        .body(Empty::new())
        .unwrap();
    let error = client.oneshot(req).await.unwrap_err();
    assert!(error.is_connect());
    assert_eq!(
        error.to_string(),
        format!("upstream connect error ({addr})")
    );
}

#[tokio::test]
async fn a_client_for_an_endpoint_names_the_endpoint_not_the_host_asked_for() {
    let addr = closed_port().await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default()).for_endpoint(addr);
    let req = Request::get("http://web.example/list")
        .body(Empty::new())
        .unwrap();
    let error = client.oneshot(req).await.unwrap_err();
    assert!(error.is_connect());
    assert_eq!(
        error.to_string(),
        format!("upstream connect error ({addr})")
    );
}

#[tokio::test]
async fn a_request_failed_after_the_connect_names_its_upstream() {
    // Accepts and closes at once: the request fails once sent.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            drop(conn);
        }
    });
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let req = Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    let error = client.oneshot(req).await.unwrap_err();
    assert!(!error.is_connect());
    assert_eq!(
        error.to_string(),
        format!("upstream request failed ({addr})")
    );
}
