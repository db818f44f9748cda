//! Transport metrics counted over real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mesh_core::{
    client::ClientConfig,
    conn::{NoTlsReason, Tls},
    serve::{PlaintextAccept, Server, ServerConfig, shutdown},
};
use mesh_metrics::{TcpAccept, TcpConnect, TcpMetrics};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Service, ServiceExt, service_fn};

fn value(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The connection `connect` opens to `addr`, as a client's first request
/// would open it.
async fn dial<C>(mut connect: C, addr: SocketAddr) -> C::Response
where
    C: Service<http::Uri>,
    C::Error: std::fmt::Debug,
{
    connect
        .ready()
        .await
        .unwrap()
        .call(format!("http://{addr}").parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn bytes_opens_and_closes_are_counted_on_both_ends_of_a_real_connection() {
    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let echo = service_fn(|req: Request<Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Ok::<_, Infallible>(Response::new(Full::new(body)))
    });
    let server = tokio::spawn(
        Server::new(ServerConfig::default())
            .with_accept(TcpAccept::inbound(&tcp, PlaintextAccept))
            .serve_http(listener, echo, signal),
    );

    let connect = TcpConnect::outbound(
        &tcp,
        &Tls::Plaintext(NoTlsReason::Disabled),
        ClientConfig::default().http_connector(),
    );
    let io = dial(connect, addr).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let driver = tokio::spawn(conn);
    for body in ["hello", "world!"] {
        let req = Request::post(format!("http://{addr}/echo"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), body);
    }

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let inbound = "direction=\"inbound\",peer=\"src\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"";
    let outbound = "direction=\"outbound\",peer=\"dst\",tls=\"disabled\"";
    assert_eq!(value(&text, &format!("tcp_open_total{{{inbound}}}")), 1);
    assert_eq!(value(&text, &format!("tcp_open_total{{{outbound}}}")), 1);
    assert_eq!(
        value(&text, &format!("tcp_open_connections{{{inbound}}}")),
        1
    );
    assert_eq!(
        value(&text, &format!("tcp_open_connections{{{outbound}}}")),
        1
    );
    // Loopback: what one end wrote, the other read.
    let sent = value(&text, &format!("tcp_write_bytes_total{{{outbound}}}"));
    let received = value(&text, &format!("tcp_read_bytes_total{{{inbound}}}"));
    assert!(sent > 11, "two requests with 11 bytes of bodies: {sent}");
    assert_eq!(sent, received);
    assert_eq!(
        value(&text, &format!("tcp_write_bytes_total{{{inbound}}}")),
        value(&text, &format!("tcp_read_bytes_total{{{outbound}}}")),
    );

    // Close the client's side, then drain the server: both closes are clean.
    drop(sender);
    driver.await.unwrap().unwrap();
    trigger.trigger();
    server.await.unwrap();
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        value(&text, &format!("tcp_open_connections{{{inbound}}}")),
        0
    );
    assert_eq!(
        value(&text, &format!("tcp_open_connections{{{outbound}}}")),
        0
    );
    assert_eq!(
        value(&text, &format!("tcp_close_total{{{inbound},errno=\"\"}}")),
        1
    );
    assert_eq!(
        value(&text, &format!("tcp_close_total{{{outbound},errno=\"\"}}")),
        1
    );
}

#[tokio::test]
async fn the_other_end_of_each_direction_is_counted_under_its_direction() {
    // An outbound proxy's listener accepts from its application
    // (direction="outbound", peer="src"); an inbound proxy connects to its
    // application (direction="inbound", peer="dst"), as Linkerd counts both.
    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let ok = service_fn(|_: Request<Incoming>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let server = tokio::spawn(
        Server::new(ServerConfig::default())
            .with_accept(TcpAccept::outbound(&tcp, PlaintextAccept))
            .serve_http(listener, ok, signal),
    );
    let connect = TcpConnect::inbound(
        &tcp,
        &Tls::Plaintext(NoTlsReason::Loopback),
        ClientConfig::default().http_connector(),
    );
    let io = dial(connect, addr).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let driver = tokio::spawn(conn);
    let req = Request::get(format!("http://{addr}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let accepted = "direction=\"outbound\",peer=\"src\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"";
    let opened =
        "direction=\"inbound\",peer=\"dst\",tls=\"no_identity\",no_tls_reason=\"loopback\"";
    for labels in [accepted, opened] {
        assert_eq!(value(&text, &format!("tcp_open_total{{{labels}}}")), 1);
        assert_eq!(
            value(&text, &format!("tcp_open_connections{{{labels}}}")),
            1
        );
    }
    assert_eq!(
        value(&text, &format!("tcp_write_bytes_total{{{opened}}}")),
        value(&text, &format!("tcp_read_bytes_total{{{accepted}}}")),
    );
    assert!(
        !text.contains("direction=\"inbound\",peer=\"src\""),
        "an accepted connection counted as inbound:\n{text}"
    );
    assert!(
        !text.contains("direction=\"outbound\",peer=\"dst\""),
        "a connection opened counted as outbound:\n{text}"
    );

    drop(sender);
    driver.await.unwrap().unwrap();
    trigger.trigger();
    server.await.unwrap();
}
