//! A `ConnectionLimit` shared by two servers: their connections together
//! stay within it, and a connection to one waits while the other holds
//! the last place.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{ConnectionLimit, Protocol, Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A server answering `ok` under `limit`.
async fn server(limit: &ConnectionLimit, shutdown: shutdown::Shutdown) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let config = ServerConfig {
        protocol: Protocol::Http,
        // Ignored: the shared limit decides.
        max_connections: 100,
        shared_limit: Some(limit.clone()),
        ..ServerConfig::default()
    };
    tokio::spawn(Server::new(config).serve_http(listener, http, shutdown));
    addr
}

/// Sends a keep-alive GET on `conn` and reads until the `ok` body.
async fn get(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 512];
    while !got.ends_with(b"ok") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn two_servers_under_one_limit_serve_its_number_of_connections_together() {
    let limit = ConnectionLimit::new(1);
    let (trigger, shutdown) = shutdown::channel();
    let a = server(&limit, shutdown.clone()).await;
    let b = server(&limit, shutdown).await;

    let mut to_a = TcpStream::connect(a).await.unwrap();
    assert!(get(&mut to_a).await.starts_with("HTTP/1.1 200"));
    assert_eq!(limit.available(), 0, "the connection to a holds the place");

    // The kernel takes the connection to b, but b may not serve it while
    // a's connection holds the only place.
    let waiting = tokio::spawn(async move {
        let mut to_b = TcpStream::connect(b).await.unwrap();
        get(&mut to_b).await
    });
    let early = tokio::time::timeout(Duration::from_millis(300), async {
        while !waiting.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        early.is_err(),
        "b served a connection past the shared limit"
    );

    // Closing a's connection gives b the place.
    drop(to_a);
    assert!(waiting.await.unwrap().starts_with("HTTP/1.1 200"));
    trigger.trigger();
}

#[test]
fn a_limit_is_at_least_one() {
    assert_eq!(ConnectionLimit::new(0).available(), 1);
    assert_eq!(ConnectionLimit::new(7).available(), 7);
}

#[tokio::test]
async fn a_connect_tunnel_keeps_its_place_under_the_limit() {
    // Once a CONNECT is answered, hyper hands the socket to the tunnel and
    // the connection task ends. The place must go with the tunnel, as it
    // does for an `Upgrade`: a service that keeps the request's extensions
    // for as long as its tunnel runs keeps the place.
    let limit = ConnectionLimit::new(1);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnel = tower::service_fn(|mut req: Request<Incoming>| async move {
        let extensions = std::mem::take(req.extensions_mut());
        let mut req = Request::new(());
        *req.extensions_mut() = extensions;
        tokio::spawn(async move {
            let upgraded = hyper::upgrade::on(&mut req).await.unwrap();
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            let (mut read, mut write) = tokio::io::split(&mut io);
            let _ = tokio::io::copy(&mut read, &mut write).await;
            drop(req);
        });
        Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
    });
    let config = ServerConfig {
        shared_limit: Some(limit.clone()),
        ..ServerConfig::default()
    };
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(Server::new(config).serve_http(listener, tunnel, shutdown));

    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"CONNECT b:443 HTTP/1.1\r\nhost: b:443\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    conn.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    conn.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");
    assert_eq!(limit.available(), 0, "the tunnel gave up its place");

    drop(conn);
    while limit.available() == 0 {
        tokio::task::yield_now().await;
    }
    trigger.trigger();
}

/// Lets the servers take what the kernel has for them.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_freed_place_goes_to_the_connection_that_waited_longest() {
    // a's second connection waits for the place before b's does, so it
    // gets the place a's first connection gives up: a listener whose own
    // connection ends must not lose its turn to the listeners it shares
    // the limit with.
    let limit = ConnectionLimit::new(1);
    let (trigger, shutdown) = shutdown::channel();
    let a = server(&limit, shutdown.clone()).await;
    let b = server(&limit, shutdown).await;
    let mut first = TcpStream::connect(a).await.unwrap();
    assert!(get(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = TcpStream::connect(a).await.unwrap();
    settle().await;
    let mut third = TcpStream::connect(b).await.unwrap();
    settle().await;
    third
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();

    drop(first);
    // By the paused clock: the place is given at once; were it given to
    // b, a's connection would wait for b's to close when idle, a minute
    // later (the header read timeout).
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    assert!(get(&mut second).await.starts_with("HTTP/1.1 200"));
    assert_eq!(start.elapsed(), Duration::ZERO);
    let mut buf = [0; 64];
    assert!(
        matches!(third.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "b served a connection that came later"
    );
    tokio::time::resume();
    trigger.trigger();
}
