//! A request the inbound side passes to the application over HTTP/1
//! without a host (no `Host`, or an empty one), or in HTTP/1.0, goes over
//! a connection of its own, closed after its response, as Linkerd's
//! HTTP/1 client sends such requests (its one-off client). Every other
//! request shares the pooled connections to the application.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::watch,
};

/// The lines of the body of `answer`, once it is a `200`; an empty last
/// line is one.
fn seen(answer: &str) -> Vec<String> {
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    body.split('\n').map(str::to_owned).collect()
}

/// An HTTP/1 application that keeps every connection open, whatever the
/// version of the request (as many servers answer HTTP/1.0 in HTTP/1.1),
/// and answers each request with its request line's version, the number
/// of the request on its connection (1 for the first) and its `Host`
/// (`-` for none); it counts the connections it accepted, and those the
/// sidecar closed. Requests have no body.
async fn lax_app() -> (SocketAddr, Arc<AtomicUsize>, watch::Receiver<usize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (closed_tx, closed) = watch::channel(0);
    let closed_tx = Arc::new(closed_tx);
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut n = 0;
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8(buf.drain(..end + 4).collect()).unwrap();
                        n += 1;
                        let mut lines = head.split("\r\n");
                        let version = lines.next().unwrap().rsplit(' ').next().unwrap();
                        let host = lines
                            .filter_map(|l| l.split_once(':'))
                            .find(|(name, _)| name.eq_ignore_ascii_case("host"))
                            .map_or("-", |(_, value)| value.trim());
                        let body = format!("{version}\n{n}\n{host}");
                        let res = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tcp.write_all(res.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    let mut chunk = [0; 4096];
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            closed_tx.send_modify(|n| *n += 1);
                            return;
                        }
                        Ok(read) => buf.extend_from_slice(&chunk[..read]),
                    }
                }
            });
        }
    });
    (addr, accepted, closed)
}

/// Two requests naming no host, one without `Host` and one with an empty
/// one, open a connection each, closed once answered, and reach the
/// application without a `Host` made up for them; two that name their
/// host share one.
#[tokio::test]
async fn a_request_naming_no_host_is_not_pooled() {
    let (app, accepted, mut closed) = lax_app().await;
    let sidecar = plain_inbound(app);
    let inbound = sidecar.inbound[0];
    for (request, host) in [
        ("GET / HTTP/1.1\r\nconnection: close\r\n\r\n", "-"),
        ("GET / HTTP/1.1\r\nhost:\r\nconnection: close\r\n\r\n", ""),
    ] {
        let answer = raw_exchange(inbound, request).await;
        assert_eq!(seen(&answer), ["HTTP/1.1", "1", host], "{request:?}");
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    // A guard against a hang, not a measure: the sidecar closes them at
    // once.
    let both_closed = closed.wait_for(|n| *n == 2);
    tokio::time::timeout(Duration::from_secs(10), both_closed)
        .await
        .expect("a one-off connection to the application was left open")
        .unwrap();
    for n in ["1", "2"] {
        let answer = raw_exchange(
            inbound,
            "GET / HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(seen(&answer), ["HTTP/1.1", n, "emoji"], "{answer}");
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 3);
    stop(sidecar).await;
}

/// An HTTP/1.0 request goes over a connection of its own even when it
/// names its host, and even when the application would keep the
/// connection open: Linkerd pools no HTTP/1.0 request.
#[tokio::test]
async fn an_http_1_0_request_is_not_pooled() {
    let (app, accepted, _) = lax_app().await;
    let sidecar = plain_inbound(app);
    for _ in 0..2 {
        let answer =
            raw_exchange(sidecar.inbound[0], "GET / HTTP/1.0\r\nhost: emoji\r\n\r\n").await;
        assert_eq!(seen(&answer), ["HTTP/1.0", "1", "emoji"], "{answer}");
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    stop(sidecar).await;
}

/// HTTP/2 requests, which the application is sent with an `:authority`
/// and no `Host`, still share one connection.
#[tokio::test]
async fn http_2_requests_share_a_connection() {
    let (app, accepted) = per_connection_app().await;
    let sidecar = plain_inbound(app);
    for n in ["1", "2"] {
        let req = http::Request::get("http://emoji/").body(full("")).unwrap();
        let res = h2_via(sidecar.inbound[0], req).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = body_bytes(res).await;
        assert_eq!(body, format!("HTTP/2.0\n{n}"));
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
    stop(sidecar).await;
}
