//! A `CONNECT` the sidecar's outbound listener could not tunnel is
//! answered by the sidecar itself, outside every metrics layer, and
//! counted in `outbound_http_errors_total`, as Linkerd counts a failed
//! `CONNECT`; a tunnel that opens is not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A sidecar with the services `db` at `db` and `cache` at `cache`.
fn web(db: SocketAddr, cache: SocketAddr) -> String {
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: db\n      endpoints: [{db}]\n\
         \x20   - name: cache\n      endpoints: [{cache}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    )
}

/// Sends `CONNECT authority` on a new connection to `addr`: the
/// connection and the response's status line.
async fn connect(addr: SocketAddr, authority: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (tcp, status)
}

#[tokio::test]
async fn a_connect_the_sidecar_could_not_tunnel_is_counted_as_its_error() {
    let (cache, _) = tcp_echo().await;
    let running = sidecar(&web(refused_addr().await, cache));

    let (_open, status) = connect(running.outbound, "cache:6379").await;
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    let metrics = scrape(running.admin).await;
    assert!(!metrics.contains("outbound_http_errors_total"), "{metrics}");

    for _ in 0..2 {
        let (_conn, status) = connect(running.outbound, "db:5432").await;
        assert!(status.starts_with("HTTP/1.1 502 "), "{status}");
    }
    let metrics = scrape(running.admin).await;
    assert!(
        metrics.contains("outbound_http_errors_total{error=\"i/o\"} 2\n"),
        "{metrics}"
    );
    stop(running).await;
}
