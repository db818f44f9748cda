//! An HTTP/1 request head that is never finished is bounded as a
//! finished one is: once it passes `max_request_head_bytes` it is
//! answered `431` and its connection closed, rather than buffered up to
//! hyper's ~400 KiB connection buffer for as long as the header read
//! timeout allows.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

async fn server(config: ServerConfig) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(Server::new(config).serve_http(listener, http, signal));
    (addr, trigger)
}

/// A request line and `bytes` of header lines, the head not ended.
fn unfinished_head(bytes: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nhost: a\r\n".to_vec();
    let line = format!("x-filler: {}\r\n", "v".repeat(1000));
    while head.len() < bytes {
        head.extend_from_slice(line.as_bytes());
    }
    head
}

/// What the server answers to `head`, which the client never finishes,
/// before the header read timeout (by the paused clock).
async fn answer(addr: SocketAddr, head: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the client is done.
    let _ = conn.write_all(head).await;
    tokio::time::pause();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer)).await;
    tokio::time::resume();
    let _ = read;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_unfinished_head_past_the_bound_is_answered_431() {
    let (addr, _trigger) = server(ServerConfig::default()).await;
    let answer = answer(addr, &unfinished_head(200 * 1024)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}

#[tokio::test]
async fn an_unfinished_head_within_the_bound_is_waited_for() {
    // Within the bound the head may still end: the server waits for it
    // (until its header read timeout), and serves it once it does.
    let (addr, _trigger) = server(ServerConfig::default()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(&unfinished_head(60 * 1024)).await.unwrap();
    conn.write_all(b"connection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}
