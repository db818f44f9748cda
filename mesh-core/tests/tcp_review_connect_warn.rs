//! A forwarded connection, or a `CONNECT` tunnel, whose endpoint cannot
//! be reached is an operator's business at the default log level, as a
//! request's is: the first connect an endpoint fails since it last took
//! one is a warning naming the client, the endpoint and why, and the rest
//! of the streak stays at debug.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{log_capture::Logs, refused::refused_addr};

use std::{net::SocketAddr, time::Duration};

use mesh_core::{
    client::ClientConfig,
    proxy::{ConnectTunnel, ForwardTcp},
    serve::{Protocol, Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tracing::Level;

const FAILED: &str = "cannot connect to the endpoint";

/// A port on 127.0.0.1 that nothing listens on.
async fn refusing() -> SocketAddr {
    refused_addr()
}

fn forward(endpoint: SocketAddr) -> ForwardTcp<hyper_util::client::legacy::connect::HttpConnector> {
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    ForwardTcp::new(connector, [endpoint]).unwrap()
}

/// An opaque server forwarding to `endpoint`.
async fn opaque_proxy(
    endpoint: SocketAddr,
) -> (SocketAddr, shutdown::ShutdownTrigger, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        shutdown_grace: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let http = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("")))
    });
    let server =
        tokio::spawn(Server::new(config).serve(listener, http, forward(endpoint), shutdown));
    (addr, trigger, server)
}

/// Connects to `proxy` and waits for it to close the connection; the
/// client's address, which the logs name.
async fn closed_at_once(proxy: SocketAddr) -> SocketAddr {
    let mut conn = TcpStream::connect(proxy).await.unwrap();
    let peer = conn.local_addr().unwrap();
    let mut buf = [0; 8];
    assert_eq!(conn.read(&mut buf).await.unwrap(), 0);
    peer
}

/// Takes one connection on `listener`, says `hi`, and closes it.
async fn greet_once(listener: TcpListener) {
    let (mut stream, _) = listener.accept().await.unwrap();
    stream.write_all(b"hi").await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_refusing_endpoint_of_forwarded_connections_is_warned_of_once_per_streak() {
    let (logs, _guard) = Logs::capture();
    let endpoint = refusing().await;
    let (proxy, trigger, server) = opaque_proxy(endpoint).await;

    let first = closed_at_once(proxy).await;
    for _ in 0..2 {
        closed_at_once(proxy).await;
    }
    let warned = logs.find_at(Level::WARN, FAILED);
    let [line] = warned.as_slice() else {
        panic!("one warning expected for the streak: {warned:?}");
    };
    assert!(line.contains(&format!("peer={first}")), "{line}");
    assert!(line.contains(&format!("endpoint={endpoint}")), "{line}");
    assert!(line.contains("refused"), "{line}");
    assert_eq!(logs.find_at(Level::DEBUG, FAILED).len(), 2);

    // The endpoint takes a connection: the streak is over.
    let listener = TcpListener::bind(endpoint).await.unwrap();
    let upstream = tokio::spawn(greet_once(listener));
    let mut conn = TcpStream::connect(proxy).await.unwrap();
    let mut hi = [0; 2];
    conn.read_exact(&mut hi).await.unwrap();
    assert_eq!(&hi, b"hi");
    upstream.await.unwrap();
    drop(conn);

    // It refuses again: a new streak, a new warning, then quiet again.
    let again = closed_at_once(proxy).await;
    closed_at_once(proxy).await;
    let warned = logs.find_at(Level::WARN, FAILED);
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned[1].contains(&format!("peer={again}")), "{warned:?}");
    assert_eq!(logs.find_at(Level::DEBUG, FAILED).len(), 3);

    trigger.trigger();
    server.await.unwrap();
}

/// A server tunnelling `CONNECT`s to `db:5432` to `endpoint`.
async fn connect_proxy(
    endpoint: SocketAddr,
) -> (SocketAddr, shutdown::ShutdownTrigger, JoinHandle<()>) {
    let forward = forward(endpoint);
    let targets =
        move |authority: &http::uri::Authority| (authority.host() == "db").then(|| forward.clone());
    let not_found = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        let mut res = http::Response::new(mesh_core::body::BoxBody::default());
        *res.status_mut() = http::StatusCode::NOT_FOUND;
        Ok::<_, std::convert::Infallible>(res)
    });
    let stack = ConnectTunnel::new(not_found, targets);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, shutdown));
    (addr, trigger, server)
}

/// Sends `CONNECT db:5432` to `proxy`; the client's address and the
/// status line.
async fn tunnel(proxy: SocketAddr) -> (SocketAddr, String) {
    let mut conn = TcpStream::connect(proxy).await.unwrap();
    let peer = conn.local_addr().unwrap();
    conn.write_all(b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (peer, String::from_utf8(head).unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn a_refusing_endpoint_of_connect_tunnels_is_warned_of_once_per_streak() {
    let (logs, _guard) = Logs::capture();
    let endpoint = refusing().await;
    let (proxy, trigger, server) = connect_proxy(endpoint).await;

    let (first, status) = tunnel(proxy).await;
    assert!(status.starts_with("HTTP/1.1 502 "), "{status}");
    for _ in 0..2 {
        let (_, status) = tunnel(proxy).await;
        assert!(status.starts_with("HTTP/1.1 502 "), "{status}");
    }
    let warned = logs.find_at(Level::WARN, FAILED);
    let [line] = warned.as_slice() else {
        panic!("one warning expected for the streak: {warned:?}");
    };
    assert!(line.contains(&format!("peer={first}")), "{line}");
    assert!(line.contains(&format!("endpoint={endpoint}")), "{line}");
    assert!(line.contains("refused"), "{line}");

    // A tunnel connected ends the streak.
    let listener = TcpListener::bind(endpoint).await.unwrap();
    let upstream = tokio::spawn(greet_once(listener));
    let (_, status) = tunnel(proxy).await;
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
    upstream.await.unwrap();
    let (_, status) = tunnel(proxy).await;
    assert!(status.starts_with("HTTP/1.1 502 "), "{status}");
    assert_eq!(logs.find_at(Level::WARN, FAILED).len(), 2);

    trigger.trigger();
    server.await.unwrap();
}
