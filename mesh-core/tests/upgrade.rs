//! An HTTP/1.1 upgrade through a server and a `Forward`: the tunnelled
//! connection still counts against the server's connection limit, and
//! shutdown waits for it.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use http::Request;
use hyper::body::Incoming;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::Forward,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// An upstream that switches every connection to an echo.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    conn.read_exact(&mut byte).await.unwrap();
                    head.push(byte[0]);
                }
                conn.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
                )
                .await
                .unwrap();
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    echo(&mut conn, b"ping").await;
    conn
}

async fn echo(conn: &mut TcpStream, bytes: &[u8]) {
    conn.write_all(bytes).await.unwrap();
    let mut back = vec![0; bytes.len()];
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(back, bytes);
}

/// A server forwarding to an echo upstream, with an hour's grace.
async fn proxy() -> (
    SocketAddr,
    mesh_core::serve::shutdown::ShutdownTrigger,
    tokio::task::JoinHandle<()>,
) {
    let upstream = echo_upstream().await;
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let server = tokio::spawn(
        Server::new(config).serve_http(
            listener,
            tower::ServiceBuilder::new()
                .map_request(|req: Request<Incoming>| req)
                .service(forward),
            shutdown,
        ),
    );
    (addr, trigger, server)
}

#[tokio::test]
async fn shutdown_waits_for_an_open_tunnel() {
    let (addr, trigger, server) = proxy().await;
    let mut tunnel = upgraded(addr).await;
    trigger.trigger();
    // The tunnel is a connection like any other: it still works while
    // the server drains, and the server is not done while it is open.
    echo(&mut tunnel, b"still here").await;
    tokio::task::yield_now().await;
    assert!(
        !server.is_finished(),
        "the server stopped with a tunnel open"
    );
    drop(tunnel);
    server.await.unwrap();
}

#[tokio::test]
async fn a_tunnel_still_open_when_the_grace_period_ends_is_cut() {
    let (addr, trigger, server) = proxy().await;
    let mut tunnel = upgraded(addr).await;
    trigger.trigger();
    echo(&mut tunnel, b"still here").await;
    // Traffic has settled: only the grace period's timer is left, and the
    // paused clock jumps to it.
    tokio::time::pause();
    let mut rest = Vec::new();
    tunnel.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    server.await.unwrap();
}

/// Reads a response head from `conn`.
async fn head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn a_connect_is_refused_with_501_and_reaches_no_upstream() {
    // An upstream that counts the connections it gets.
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = reached.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = upstream.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(conn);
        }
    });
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream_addr]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));

    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"CONNECT db.example:5432 HTTP/1.1\r\nhost: db.example:5432\r\n\r\n")
        .await
        .unwrap();
    let answer = head(&mut conn).await;
    assert!(answer.starts_with("http/1.1 501 "), "{answer}");
    assert!(
        answer.contains("mesh-error: connect not supported\r\n"),
        "{answer}"
    );
    assert_eq!(reached.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Refused, the CONNECT leaves no tunnel: the connection is closed or
    // still speaks HTTP, and bytes sent now are never piped anywhere.
    let _ = conn.write_all(b"not a request\r\n\r\n").await;
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;
    let rest = String::from_utf8_lossy(&rest).to_ascii_lowercase();
    assert!(
        rest.is_empty() || rest.starts_with("http/1.1 400"),
        "{rest}"
    );
    assert_eq!(reached.load(std::sync::atomic::Ordering::Relaxed), 0);
    trigger.trigger();
    server.await.unwrap();
}
