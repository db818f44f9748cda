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
