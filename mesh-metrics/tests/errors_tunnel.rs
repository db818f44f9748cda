//! A `CONNECT` a tunnel in front of the metrics layers failed is counted
//! in `outbound_http_errors_total`, as Linkerd counts a `CONNECT` it
//! failed: `i/o` for an endpoint that refused the connection. A `CONNECT`
//! the stack behind the tunnel answers is the stack's to count, and one
//! tunnelled is not counted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, net::SocketAddr};

use http::{Response, uri::Authority};
use hyper_util::client::legacy::connect::HttpConnector;
use mesh_core::{
    body,
    proxy::{ConnectTunnel, ForwardTcp},
    serve::{Server, ServerConfig, shutdown},
};
use mesh_metrics::HttpMetrics;
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::service_fn;

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// Sends `connect` on a connection of its own and reads the answer's
/// head.
async fn answer(proxy: SocketAddr, connect: &str) -> String {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(connect.as_bytes()).await.unwrap();
    let mut head = vec![0; 1024];
    let n = tcp.read(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[..n]).into_owned()
}

#[tokio::test]
async fn a_connect_the_tunnel_could_not_connect_is_an_outbound_io_error() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let (echo, echo_addr) = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    };
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let refused = crate::support::refused::refused_addr();
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    let down = ForwardTcp::new(connector.clone(), [refused]).unwrap();
    let up = ForwardTcp::new(connector, [echo_addr]).unwrap();
    let targets = move |authority: &Authority| match authority.host() {
        "db" => Some(down.clone()),
        "up" => Some(up.clone()),
        _ => None,
    };
    // What the stack behind answers (an unknown target's `CONNECT`
    // included): a `200` of its own, never the tunnel's to count.
    let inner =
        service_fn(|_req| async { Ok::<_, Infallible>(Response::new(body::full("inner"))) });
    let counted = metrics.clone();
    let stack = ConnectTunnel::new(inner, targets).on_error(move |kind, headers, cause| {
        counted.count_outbound_answer(kind, headers, cause);
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let (_trigger, shutdown) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, shutdown));

    let head = answer(proxy, "CONNECT up:80 HTTP/1.1\r\nhost: up:80\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = answer(proxy, "CONNECT other:80 HTTP/1.1\r\nhost: other:80\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!scrape(&registry).contains("_http_errors_total"));

    for _ in 0..2 {
        let head = answer(proxy, "CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    }
    let text = scrape(&registry);
    assert!(
        text.contains("outbound_http_errors_total{error=\"i/o\"} 2\n"),
        "{text}"
    );
    assert!(!text.contains("inbound_http_errors_total"), "{text}");
}
