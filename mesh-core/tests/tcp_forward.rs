//! Opaque TCP through a server and a `ForwardTcp`: the bytes reach an
//! endpoint and come back unchanged, an unreachable endpoint closes the
//! client's connection, and shutdown waits for a connection in flight.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use mesh_core::{
    client::ClientConfig,
    proxy::ForwardTcp,
    serve::{Protocol, Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// An opaque server forwarding to `endpoints`.
async fn proxy(
    endpoints: Vec<SocketAddr>,
) -> (SocketAddr, shutdown::ShutdownTrigger, JoinHandle<()>) {
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    let forward = ForwardTcp::new(connector, endpoints).unwrap();
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
    let server = tokio::spawn(Server::new(config).serve(listener, http, forward, shutdown));
    (addr, trigger, server)
}

#[tokio::test]
async fn bytes_that_look_like_http_cross_unchanged() {
    let (addr, trigger, server) = proxy(vec![echo().await]).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let sent: Vec<u8> = b"GET / HTTP/1.1\r\n\r\n"
        .iter()
        .copied()
        .chain((0..256 * 1024).map(|i| (i % 253) as u8))
        .collect();
    let (mut r, mut w) = conn.split();
    let write = async {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let ((), read) = tokio::join!(write, r.read_to_end(&mut back));
    read.unwrap();
    assert!(back == sent, "{} bytes came back, changed", back.len());
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_endpoint_closes_the_clients_connection() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (addr, trigger, server) = proxy(vec![dead]).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0; 16];
    // Closed, not reset: a byte stream has no way to carry the error.
    let n = conn.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0);
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_a_forwarded_connection_in_flight() {
    let (addr, trigger, server) = proxy(vec![echo().await]).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"ping").await.unwrap();
    let mut back = [0; 4];
    conn.read_exact(&mut back).await.unwrap();
    trigger.trigger();
    conn.write_all(b"pong").await.unwrap();
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"pong");
    tokio::task::yield_now().await;
    assert!(
        !server.is_finished(),
        "the server stopped with a connection open"
    );
    drop(conn);
    server.await.unwrap();
}
