//! An HTTP/1.1 upgrade through a server and a `Forward` is a byte tunnel
//! like a forwarded TCP connection, and one side failing must not drop
//! what the other had already sent: an upstream that answers and closes
//! while the client is still sending resets the connection, and its
//! answer still reaches the client, as it would without the proxy.
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

/// A server forwarding to `upstream`.
async fn proxy(upstream: SocketAddr) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let stack = tower::ServiceBuilder::new()
        .map_request(|req: Request<Incoming>| req)
        .service(forward);
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, shutdown));
    (addr, trigger)
}

/// Reads a head, up to its blank line.
async fn head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads what `conn` receives until it ends, by a close or a reset.
async fn read_until_the_end(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the connection never ended");
        match read {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn an_upstreams_answer_before_its_reset_reaches_a_client_still_sending() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, _trigger) = proxy(listener.local_addr().unwrap()).await;
    // The upstream switches protocols, answers at once and resets the
    // connection, before the client's first bytes after the switch reach
    // it.
    tokio::spawn(async move {
        let (mut upstream, _) = listener.accept().await.unwrap();
        head(&mut upstream).await;
        upstream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: raw\r\n\r\nbye",
            )
            .await
            .unwrap();
        socket2::SockRef::from(&upstream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    // The client's first bytes for the tunnel ride behind its request.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: raw\r\n\r\nmore")
        .await
        .unwrap();
    let answer = head(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");

    assert_eq!(read_until_the_end(&mut conn).await, b"bye");
}
