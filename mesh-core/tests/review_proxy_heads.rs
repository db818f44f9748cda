//! Response heads without a body, through a `Forward` over real sockets:
//! the length a `HEAD` answer gives is that of the body a `GET` would
//! have had (RFC 9110 §8.6, §9.3.2), and must reach the client as it was,
//! not be replaced by the empty body the proxy carried.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::support::proxy::proxy;

/// An HTTP/1.1 upstream that answers each request with `head`, and
/// nothing after it.
async fn upstream(head: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut byte = [0; 1];
                while !req.ends_with(b"\r\n\r\n") {
                    if conn.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    req.push(byte[0]);
                }
                conn.write_all(head.as_bytes()).await.unwrap();
                // Keeps the connection open, as a keep-alive server does.
                let _ = conn.read(&mut byte).await;
            });
        }
    });
    addr
}

/// What a client reads, through a proxy to an upstream answering `head`,
/// for `request` (which asks to close).
async fn through_proxy(head: &'static str, request: &str) -> String {
    let (addr, _trigger, _server) = proxy(upstream(head).await).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the proxy answers and closes")
        .unwrap();
    String::from_utf8(answer).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn a_head_answer_keeps_its_content_length() {
    let answer = through_proxy(
        "HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n",
        "HEAD / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("\r\ncontent-length: 1234\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");
}

/// hyper's HTTP/1 server writes no `Content-Length` on a `304` (RFC 9110
/// §8.6 lets a server leave it out): the validators that matter to a
/// cache come through, and no body.
#[tokio::test]
async fn a_not_modified_answer_keeps_its_validators_and_has_no_body() {
    let answer = through_proxy(
        "HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 1234\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: web\r\nif-none-match: \"v1\"\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("http/1.1 304"), "{answer}");
    assert!(answer.contains("\r\netag: \"v1\"\r\n"), "{answer}");
    assert!(!answer.contains("transfer-encoding"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");
}

#[tokio::test]
async fn a_chunked_head_answer_is_not_given_a_length_of_zero() {
    let answer = through_proxy(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        "HEAD / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    // A `GET` would have been chunked: a length of zero would say its
    // body is empty.
    assert!(!answer.contains("content-length: 0"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer}");
}

/// An informational answer before the final one (`103 Early Hints`) is
/// the hop's business to pass on or not (hyper's client reads past it,
/// as Linkerd's does): the final answer must come through whole.
#[tokio::test]
async fn the_final_answer_after_an_informational_one_comes_through() {
    let answer = through_proxy(
        "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        "GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
}
