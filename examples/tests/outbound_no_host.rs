//! A request that names no host leaves the sidecar naming none. Only in
//! ingress mode does such a request reach a service (its destination
//! override names it); carried to a peer sidecar that takes HTTP/1.1 as
//! HTTP/2, it must not be given the endpoint's address as `:authority`
//! (RFC 9113 §8.3.1: an intermediary must not generate an `:authority`
//! the original request did not have), nor reach the application with a
//! `Host` its client never wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plaintext sidecar in ingress mode whose one service is the endpoint
/// `endpoint`, its HTTP/1.1 requests carried as HTTP/2.
fn outbound_to(endpoint: SocketAddr) -> mesh_examples::sidecar::Running {
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  ingress_mode: true\n  services:\n\
         \x20   - name: web.ns.svc\n      endpoints: [{endpoint}]\n      http2_upgrade: true\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ))
}

/// Sends `request` as raw bytes to `addr`; returns the whole answer,
/// read until the sidecar closes the connection.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The lines of the body of `answer`, once it is a `200`.
fn seen(answer: &str) -> Vec<&str> {
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
    answer.split("\r\n\r\n").nth(1).unwrap().lines().collect()
}

#[tokio::test]
async fn an_http11_request_without_host_is_not_given_the_endpoint_as_authority() {
    // The endpoint stands in for the peer sidecar: it shows what reaches
    // it before any downgrade.
    let endpoint = recording().await;
    let sidecar = outbound_to(endpoint);
    let answer = raw(
        sidecar.outbound,
        b"GET /list HTTP/1.1\r\nl5d-dst-override: web.ns.svc:8080\r\nconnection: close\r\n\r\n",
    )
    .await;
    // It goes as it came, HTTP/1.1 without `Host`, unmarked: there is no
    // authority to carry as HTTP/2 but one made up.
    assert_eq!(seen(&answer), ["HTTP/1.1", "-", "-", "-"]);
    stop(sidecar).await;
}

#[tokio::test]
async fn an_http10_request_without_host_reaches_the_endpoint_without_one() {
    let endpoint = recording().await;
    let sidecar = outbound_to(endpoint);
    let answer = raw(
        sidecar.outbound,
        b"GET /list HTTP/1.0\r\nl5d-dst-override: web.ns.svc:8080\r\n\r\n",
    )
    .await;
    assert_eq!(seen(&answer), ["HTTP/1.0", "-", "-", "-"]);
    stop(sidecar).await;
}
