//! A request that leaves over HTTP/1 naming no host goes over a
//! connection of its own, as Linkerd's HTTP/1 client sends it (its
//! one-off client), not over one pooled for the endpoint's other callers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plaintext sidecar whose one service, `web`, is the endpoint
/// `endpoint`, reached over HTTP/1 (no `http2_upgrade`).
fn outbound_to(endpoint: SocketAddr, ingress: bool) -> mesh_examples::sidecar::Running {
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  ingress_mode: {ingress}\n  services:\n\
         \x20   - name: web\n      endpoints: [{endpoint}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ))
}

/// The lines of the body of `answer`, once it is a `200`.
fn seen(answer: &str) -> Vec<String> {
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    body.lines().map(str::to_owned).collect()
}

/// A request that names no host (only ingress mode routes one, by its
/// destination override) goes over a connection of its own, which is not
/// kept: the next request opens another.
#[tokio::test]
async fn a_request_naming_no_host_is_not_pooled() {
    let (endpoint, accepted) = per_connection_app().await;
    let sidecar = outbound_to(endpoint, true);
    for _ in 0..2 {
        let answer = raw_exchange(
            sidecar.outbound,
            "GET / HTTP/1.1\r\nl5d-dst-override: web:8080\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(seen(&answer), ["HTTP/1.1", "1"], "{answer}");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 2);
    // Requests naming their host still share a pooled connection.
    for n in ["1", "2"] {
        let answer = raw_exchange(
            sidecar.outbound,
            "GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(seen(&answer), ["HTTP/1.1", n], "{answer}");
    }
    stop(sidecar).await;
}

/// An endpoint like [`per_connection`]'s that keeps every connection
/// open, whatever the request's version says: a server that answers an
/// HTTP/1.0 request and does not close is what a pooled connection would
/// be handed back on.
async fn keeps_every_connection() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut n = 0;
                loop {
                    let mut chunk = [0; 1024];
                    let Ok(read) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        n += 1;
                        let version = head.lines().next().unwrap().rsplit(' ').next().unwrap();
                        let body = format!("{version}\n{n}");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tcp.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// An HTTP/1.0 request goes over a connection of its own too, host or
/// not, as Linkerd's HTTP/1 client sends it: HTTP/1.0 keeps a connection
/// only when both ends say so, and one left to the pool by such a request
/// is not one the next caller can count on.
#[tokio::test]
async fn an_http_1_0_request_is_not_pooled() {
    let (endpoint, accepted) = keeps_every_connection().await;
    let sidecar = outbound_to(endpoint, false);
    for _ in 0..2 {
        let answer = raw_exchange(sidecar.outbound, "GET / HTTP/1.0\r\nhost: web\r\n\r\n").await;
        assert_eq!(seen(&answer), ["HTTP/1.0", "1"], "{answer}");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 2);
    stop(sidecar).await;
}
