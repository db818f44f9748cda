//! The sidecar counts both ends of each direction in the transport
//! families, as Linkerd's proxy does: besides the inbound listener's
//! accepted connections (`direction="inbound",peer="src"`) and the
//! connections to other workloads (`direction="outbound",peer="dst"`), the
//! connections the local application opens to the outbound listeners
//! (`direction="outbound",peer="src"`) and the ones the inbound side opens
//! to the application (`direction="inbound",peer="dst"`). Both are on the
//! local host, and Linkerd labels them `tls="no_identity"`,
//! `no_tls_reason="loopback"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const LOOPBACK: [&str; 2] = ["tls=\"no_identity\"", "no_tls_reason=\"loopback\""];

/// What the application answers, and then closes its connection.
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";

/// An HTTP/1.1 application that answers every connection's first request
/// with [`ANSWER`] and closes it, counting the bytes it read.
async fn closing_app() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let read = Arc::new(AtomicU64::new(0));
    let count = read.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tcp.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    head.extend_from_slice(&buf[..n]);
                }
                tcp.write_all(ANSWER).await.unwrap();
                tcp.shutdown().await.unwrap();
            });
        }
    });
    (addr, read)
}

/// Sends `request` on a connection of its own to `addr`, and reads the
/// answer until the sidecar closes it.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    read_to_close(&mut tcp).await
}

fn labels<'a>(direction: &'a str, peer: &'a str) -> Vec<&'a str> {
    let mut labels = vec![direction, peer];
    labels.extend(LOOPBACK);
    labels
}

/// Scrapes until no connection of `labels` is open any more.
async fn until_closed(admin: SocketAddr, labels: &[&str]) -> String {
    tokio::time::timeout(WAIT_BOUND, async {
        loop {
            let metrics = scrape(admin).await;
            if series(&metrics, "tcp_open_connections", labels) == 0 {
                return metrics;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("connections still counted open")
}

#[tokio::test]
async fn loopback_ends_of_both_directions_are_counted() {
    let (app, app_read) = closing_app().await;
    let (echo, _) = tcp_echo().await;
    let running = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: app\n      endpoints: [{app}]\n\
         \x20   - name: echo\n      endpoints: [{echo}]\n\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: echo\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ));

    // One HTTP request through the outbound listener.
    let request = b"GET / HTTP/1.1\r\nhost: app:8080\r\nconnection: close\r\n\r\n";
    let answer = exchange(running.outbound, request).await;
    assert!(
        answer.ends_with(b"hello"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // One opaque connection through the outbound port.
    let sent = pattern(3000);
    let mut tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
    tcp.write_all(&sent).await.unwrap();
    let mut echoed = vec![0; sent.len()];
    tokio::time::timeout(WAIT_BOUND, tcp.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, sent);
    tcp.shutdown().await.unwrap();
    let _ = read_to_close(&mut tcp).await;
    drop(tcp);

    let outbound_src = labels("direction=\"outbound\"", "peer=\"src\"");
    let metrics = until_closed(running.admin, &outbound_src).await;
    assert_eq!(
        series(&metrics, "tcp_open_total", &outbound_src),
        2,
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "tcp_read_bytes_total", &outbound_src),
        (request.len() + sent.len()) as u64,
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "tcp_write_bytes_total", &outbound_src),
        (answer.len() + sent.len()) as u64,
        "{metrics}"
    );
    let clean = [
        "direction=\"outbound\"",
        "peer=\"src\"",
        "errno=\"\"",
        LOOPBACK[0],
        LOOPBACK[1],
    ];
    assert_eq!(series(&metrics, "tcp_close_total", &clean), 2, "{metrics}");

    // One HTTP request through the inbound listener, to the application.
    let before = app_read.load(Ordering::Relaxed);
    let request = b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n";
    let answer = exchange(running.inbound[0], request).await;
    assert!(
        answer.ends_with(b"hello"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let forwarded = app_read.load(Ordering::Relaxed) - before;

    let inbound_dst = labels("direction=\"inbound\"", "peer=\"dst\"");
    let metrics = until_closed(running.admin, &inbound_dst).await;
    assert_eq!(
        series(&metrics, "tcp_open_total", &inbound_dst),
        1,
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "tcp_write_bytes_total", &inbound_dst),
        forwarded,
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "tcp_read_bytes_total", &inbound_dst),
        ANSWER.len() as u64,
        "{metrics}"
    );
    // The outbound request's connection to the application is the
    // outbound side's own, labelled as such, not a loopback one.
    assert_eq!(
        series(
            &metrics,
            "tcp_open_total",
            &["direction=\"outbound\"", "peer=\"dst\""]
        ),
        2,
        "{metrics}"
    );
    stop(running).await;
}

#[tokio::test]
async fn opaque_inbound_connections_to_the_application_are_counted() {
    let (echo, _) = tcp_echo().await;
    let running = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {echo}\n  protocol: opaque\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ));
    let sent = pattern(2000);
    let mut tcp = TcpStream::connect(running.inbound[0]).await.unwrap();
    tcp.write_all(&sent).await.unwrap();
    let mut echoed = vec![0; sent.len()];
    tokio::time::timeout(WAIT_BOUND, tcp.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, sent);
    tcp.shutdown().await.unwrap();
    let _ = read_to_close(&mut tcp).await;
    drop(tcp);

    let inbound_dst = labels("direction=\"inbound\"", "peer=\"dst\"");
    let metrics = until_closed(running.admin, &inbound_dst).await;
    assert_eq!(
        series(&metrics, "tcp_open_total", &inbound_dst),
        1,
        "{metrics}"
    );
    for family in ["tcp_read_bytes_total", "tcp_write_bytes_total"] {
        assert_eq!(
            series(&metrics, family, &inbound_dst),
            sent.len() as u64,
            "{family}: {metrics}"
        );
    }
    stop(running).await;
}
