//! Opaque TCP through a server and a `ForwardTcp`, when the endpoint ends
//! its side first: its FIN reaches the client, and the client's bytes
//! after it still reach the endpoint, all of them, until the client ends
//! its side too. A protocol whose server speaks first and then only
//! listens (a banner, then an upload) depends on it.
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
    sync::oneshot,
};

/// An endpoint that writes `banner`, ends its side, and then reads
/// what the client sends until the client ends its side: what it read
/// comes out of the receiver.
async fn speaks_first(banner: &'static [u8]) -> (SocketAddr, oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(banner).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut read = Vec::new();
        tcp.read_to_end(&mut read).await.unwrap();
        let _ = tx.send(read);
    });
    (addr, rx)
}

/// An opaque server forwarding to `endpoint`.
async fn proxy(endpoint: SocketAddr) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    let forward = ForwardTcp::new(connector, [endpoint]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        ..ServerConfig::default()
    };
    let http = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("")))
    });
    tokio::spawn(Server::new(config).serve(listener, http, forward, shutdown));
    (addr, trigger)
}

#[tokio::test]
async fn the_endpoints_end_comes_first_and_the_clients_bytes_still_all_arrive() {
    let (endpoint, uploaded) = speaks_first(b"220 ready\r\n").await;
    let (addr, _trigger) = proxy(endpoint).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();

    // The banner, then the endpoint's end, passed on.
    let mut banner = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut banner))
        .await
        .expect("the endpoint's end never reached the client")
        .unwrap();
    assert_eq!(banner, b"220 ready\r\n");

    // The client's side is still open: a mebibyte goes through after it.
    let sent: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    conn.write_all(&sent).await.unwrap();
    conn.shutdown().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), uploaded)
        .await
        .expect("the client's end never reached the endpoint")
        .unwrap();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the bytes arrived changed");
}
