//! Every accepted connection gives its places back, under the server's
//! limit and under its peer's, whatever ends it: the accept hook failing,
//! the peer resetting in detection, a request served, bytes that are not
//! HTTP, or the server shutting down.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::IpAddr, pin::Pin, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    BoxError, Tls,
    conn::NoTlsReason,
    serve::{
        Accept, Accepted, ConnectionLimit, PerPeerLimit, Retirement, Server, ServerConfig, shutdown,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Plaintext, but fails a connection whose first byte is `x`, as a TLS
/// hook fails a handshake.
#[derive(Clone, Copy, Debug)]
struct FailsOnX;

impl Accept<TcpStream> for FailsOnX {
    type Io = TcpStream;
    type Future = Pin<Box<dyn Future<Output = Result<Accepted<TcpStream>, BoxError>> + Send>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        Box::pin(async move {
            let mut first = [0; 1];
            if io.peek(&mut first).await? == 1 && first[0] == b'x' {
                return Err("handshake failed".into());
            }
            Ok(Accepted {
                io,
                tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
                alpn: None,
                retire: Retirement::never(),
            })
        })
    }
}

const PLACES: usize = 4;

/// Waits until every place is back, under both limits.
async fn all_back(limit: &ConnectionLimit, peers: &PerPeerLimit<FailsOnX>, what: &str) {
    let localhost: IpAddr = [127, 0, 0, 1].into();
    let back = async {
        while limit.available() != PLACES || peers.open(localhost) != 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), back)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{what}: {} of {PLACES} places free, {} held by the peer",
                limit.available(),
                peers.open(localhost)
            )
        });
}

/// Reads until the server closes `conn`, a reset included.
async fn until_closed(mut conn: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got).await;
    got
}

#[tokio::test]
async fn every_connection_gives_its_places_back_whatever_ends_it() {
    let limit = ConnectionLimit::new(PLACES);
    let peers = ConnectionLimit::per_peer(FailsOnX, PLACES);
    let config = ServerConfig {
        shared_limit: Some(limit.clone()),
        ..ServerConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let (trigger, signal) = shutdown::channel();
    let server = tokio::spawn(
        Server::new(config)
            .with_accept(peers.clone())
            .serve_http(listener, http, signal),
    );

    // The hook fails.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"x").await.unwrap();
    assert!(until_closed(conn).await.is_empty());
    all_back(&limit, &peers, "hook failed").await;

    // The peer resets halfway through its request line.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /pa").await.unwrap();
    tokio::task::yield_now().await;
    conn.set_zero_linger().unwrap();
    drop(conn);
    all_back(&limit, &peers, "reset in detection").await;

    // A request is served, and the client closes.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(until_closed(conn).await.ends_with(b"ok"));
    all_back(&limit, &peers, "served").await;

    // Bytes that are not HTTP, on a server that serves HTTP only.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
        .await
        .unwrap();
    assert!(until_closed(conn).await.is_empty());
    all_back(&limit, &peers, "not HTTP").await;

    // Idle connections, one of them still silent, when the server shuts
    // down.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let silent = TcpStream::connect(addr).await.unwrap();
    while limit.available() != PLACES - 2 {
        tokio::task::yield_now().await;
    }
    trigger.trigger();
    server.await.unwrap();
    all_back(&limit, &peers, "shut down").await;
    drop((idle, silent));
}
