//! Tunnels through the proxy, an HTTP/1.1 `Upgrade` and a `CONNECT`, over
//! real sockets: either side may end its half first, and what the other
//! side still sends reaches it.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use hyper::body::Incoming;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::{ConnectTunnel, Forward, ForwardTcp},
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

/// How the endpoint behind a tunnel speaks once it is switched.
#[derive(Clone, Copy)]
enum Endpoint {
    /// Reads until the client's end, then answers with how many bytes
    /// it read and closes.
    CountsToTheEnd,
    /// Says `bye` and ends its half at once, then reads until the
    /// client's end and reports what it read.
    EndsFirst,
}

/// An endpoint speaking as `kind` after an HTTP/1.1 head when `http` (a
/// `101` for an upgrade), at once otherwise (behind a `CONNECT`). What
/// an [`Endpoint::EndsFirst`] reads comes out of the receiver.
async fn endpoint(kind: Endpoint, http: bool) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                if http {
                    let mut head = Vec::new();
                    let mut byte = [0; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        conn.read_exact(&mut byte).await.unwrap();
                        head.push(byte[0]);
                    }
                    conn.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n",
                    )
                    .await
                    .unwrap();
                }
                match kind {
                    Endpoint::CountsToTheEnd => {
                        let mut read = Vec::new();
                        conn.read_to_end(&mut read).await.unwrap();
                        conn.write_all(format!("got {}", read.len()).as_bytes())
                            .await
                            .unwrap();
                        conn.shutdown().await.unwrap();
                    }
                    Endpoint::EndsFirst => {
                        conn.write_all(b"bye").await.unwrap();
                        conn.shutdown().await.unwrap();
                        let mut read = Vec::new();
                        conn.read_to_end(&mut read).await.unwrap();
                        tx.send(read).unwrap();
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// A server whose requests go through a `Forward` to `upstream`, and
/// whose `CONNECT`s to `db:5432` are tunnelled to it.
async fn proxy(upstream: SocketAddr) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    let tcp = ForwardTcp::new(connector, [upstream]).unwrap();
    let targets =
        move |authority: &http::uri::Authority| (authority.host() == "db").then(|| tcp.clone());
    let stack = ConnectTunnel::new(forward, targets);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, stop) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, stop));
    (addr, trigger)
}

/// Opens a tunnel through `addr`: an upgrade, or a `CONNECT` to `db`.
async fn tunnel(addr: SocketAddr, connect: bool) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head: &[u8] = if connect {
        b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n"
    } else {
        b"GET /chat HTTP/1.1\r\nhost: web\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n"
    };
    conn.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        answer.push(byte[0]);
    }
    let want: &[u8] = if connect {
        b"HTTP/1.1 200"
    } else {
        b"HTTP/1.1 101"
    };
    assert!(
        answer.starts_with(want),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    conn
}

async fn the_clients_end_first(connect: bool) {
    let (upstream, _) = endpoint(Endpoint::CountsToTheEnd, !connect).await;
    let (addr, _trigger) = proxy(upstream).await;
    let mut conn = tunnel(addr, connect).await;
    conn.write_all(&[7; 100_000]).await.unwrap();
    conn.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut back))
        .await
        .expect("the endpoint's answer and its end come through")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&back), "got 100000");
}

async fn the_endpoints_end_first(connect: bool) {
    let (upstream, mut read) = endpoint(Endpoint::EndsFirst, !connect).await;
    let (addr, _trigger) = proxy(upstream).await;
    let mut conn = tunnel(addr, connect).await;
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut back))
        .await
        .expect("the endpoint's end comes through")
        .unwrap();
    assert_eq!(back, b"bye");
    // Its half is over; the client's is not.
    conn.write_all(b"after the end").await.unwrap();
    conn.shutdown().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), read.recv())
        .await
        .expect("the endpoint reads to the client's end")
        .unwrap();
    assert_eq!(got, b"after the end");
}

#[tokio::test]
async fn an_upgrade_tunnel_carries_the_answer_after_the_clients_end() {
    the_clients_end_first(false).await;
}

#[tokio::test]
async fn a_connect_tunnel_carries_the_answer_after_the_clients_end() {
    the_clients_end_first(true).await;
}

#[tokio::test]
async fn an_upgrade_tunnel_carries_the_clients_bytes_after_the_endpoints_end() {
    the_endpoints_end_first(false).await;
}

#[tokio::test]
async fn a_connect_tunnel_carries_the_clients_bytes_after_the_endpoints_end() {
    the_endpoints_end_first(true).await;
}

/// Opens a `CONNECT db:5432` tunnel through `addr` as a stream of an
/// HTTP/2 connection (RFC 9113 §8.5).
async fn h2_tunnel(addr: SocketAddr) -> hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::connect("db:5432")
        .version(http::Version::HTTP_2)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::OK);
    let upgraded = hyper::upgrade::on(res).await.unwrap();
    hyper_util::rt::TokioIo::new(upgraded)
}

#[tokio::test]
async fn an_http2_connect_tunnel_carries_the_answer_after_the_clients_end() {
    let (upstream, _) = endpoint(Endpoint::CountsToTheEnd, false).await;
    let (addr, _trigger) = proxy(upstream).await;
    let mut conn = h2_tunnel(addr).await;
    conn.write_all(&[7; 100_000]).await.unwrap();
    conn.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut back))
        .await
        .expect("the endpoint's answer and its end come through")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&back), "got 100000");
}

#[tokio::test]
async fn an_http2_connect_tunnel_carries_the_clients_bytes_after_the_endpoints_end() {
    let (upstream, mut read) = endpoint(Endpoint::EndsFirst, false).await;
    let (addr, _trigger) = proxy(upstream).await;
    let mut conn = h2_tunnel(addr).await;
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut back))
        .await
        .expect("the endpoint's end comes through")
        .unwrap();
    assert_eq!(back, b"bye");
    conn.write_all(b"after the end").await.unwrap();
    conn.shutdown().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), read.recv())
        .await
        .expect("the endpoint reads to the client's end")
        .unwrap();
    assert_eq!(got, b"after the end");
}
