//! An HTTP connection's own failures in `inbound_tcp_errors_total` and
//! `outbound_tcp_errors_total`, as Linkerd's TCP error layer counts the
//! failures of the HTTP server it wraps: once per connection, under the
//! labels of the direction's other TCP errors, `i/o` for a socket that
//! failed and `unexpected` for a peer that broke the protocol or sent no
//! HTTP to a port that serves HTTP only. A peer that closed before
//! sending anything, or once served, is not counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use tokio::{io::AsyncWriteExt, net::TcpStream};

use support::*;

/// The `target_*` labels of `addr`, as Linkerd writes them.
fn target(addr: SocketAddr) -> String {
    format!(
        "target_addr=\"{addr}\",target_ip=\"{}\",target_port=\"{}\"",
        addr.ip(),
        addr.port()
    )
}

/// Scrapes until `line` is in the metrics: the count is made as the
/// connection ends, and a scrape may come between.
async fn until_counted(admin: SocketAddr, line: &str) -> String {
    let metrics = scrape_until(admin, |metrics| metrics.contains(line)).await;
    assert!(metrics.contains(line), "no {line} in {metrics}");
    metrics
}

#[tokio::test]
async fn no_http_on_an_inbound_http_port_is_an_unexpected_error_once() {
    let app = ok_app(false).await;
    let sidecar = plain_inbound(app);
    let inbound = sidecar.inbound[0];
    // Gone before a byte, and served to its end: neither is counted.
    drop(TcpStream::connect(inbound).await.unwrap());
    let answer = raw_exchange(
        inbound,
        "GET / HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut tcp = TcpStream::connect(inbound).await.unwrap();
    tcp.write_all(b"\x00\x01 this is no http\r\n")
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let expected = format!(
        "inbound_tcp_errors_total{{error=\"unexpected\",{}}} 1\n",
        target(SocketAddr::new(inbound.ip(), app.port()))
    );
    let metrics = until_counted(sidecar.admin, &expected).await;
    assert_eq!(
        series(&metrics, "inbound_tcp_errors_total", &[]),
        1,
        "{metrics}"
    );
    assert!(!metrics.contains("_http_errors_total"), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_request_that_breaks_http_on_the_outbound_listener_is_an_outbound_error() {
    let app = ok_app(false).await;
    let sidecar = plain_inbound(app);
    let outbound = sidecar.outbound;
    // A header line without a colon: hyper answers 400 and closes.
    let answer = raw_exchange(outbound, "GET / HTTP/1.1\r\nhost emoji\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // The address the application connected to, then the error.
    let expected = format!(
        "outbound_tcp_errors_total{{{},error=\"unexpected\"}} 1\n",
        target(outbound)
    );
    let metrics = until_counted(sidecar.admin, &expected).await;
    assert!(!metrics.contains("inbound_tcp_errors_total"), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_client_that_resets_mid_request_is_an_inbound_io_error() {
    let app = ok_app(false).await;
    let sidecar = plain_inbound(app);
    let inbound = sidecar.inbound[0];
    let mut tcp = TcpStream::connect(inbound).await.unwrap();
    // Enough for detection to hand the connection to hyper, which then
    // waits for the rest of the head; the reset ends its read.
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: emoji\r\n")
        .await
        .unwrap();
    // Detection has read the request line once hyper holds the
    // connection: wait for that by a request served on another one.
    let answer = raw_exchange(
        inbound,
        "GET / HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    socket2::SockRef::from(&tcp)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(tcp);
    let expected = format!(
        "inbound_tcp_errors_total{{error=\"i/o\",{}}} 1\n",
        target(SocketAddr::new(inbound.ip(), app.port()))
    );
    until_counted(sidecar.admin, &expected).await;
    stop(sidecar).await;
}

#[tokio::test]
async fn clients_that_close_after_their_answers_are_not_counted() {
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let app = ok_app(false).await;
    let sidecar = plain_inbound(app);
    let inbound = sidecar.inbound[0];
    // HTTP/1, keep-alive: the client closes once answered.
    let mut tcp = TcpStream::connect(inbound).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: emoji\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut answer)
        .await
        .unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    drop(tcp);
    // HTTP/2: the client drops its connection, without a GOAWAY.
    let tcp = TcpStream::connect(inbound).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("http://emoji/").body(full("")).unwrap();
    let res = h2.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    body_bytes(res).await;
    conn.abort();
    let _ = conn.await;

    let labels = ["direction=\"inbound\"", "peer=\"src\""];
    let metrics = scrape_until(sidecar.admin, |metrics| {
        series(metrics, "tcp_open_total", &labels) == 2
            && series(metrics, "tcp_open_connections", &labels) == 0
    })
    .await;
    assert_eq!(
        series(&metrics, "tcp_open_connections", &labels),
        0,
        "{metrics}"
    );
    assert!(!metrics.contains("_tcp_errors_total"), "{metrics}");
    stop(sidecar).await;
}
