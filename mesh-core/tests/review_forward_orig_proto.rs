//! Through two proxies that carry HTTP/1.1 to each other as HTTP/2
//! (`orig_proto`), over real sockets: what stays HTTP/1 (HTTP/1.0, an
//! upgrade) still goes through, an absolute-form target names the host the
//! application sees, and a body the application cuts short is never a
//! complete-looking one for the client.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::support::orig_proto::proxies;

/// Reads a head up to its blank line, byte by byte so that nothing after
/// it is taken.
async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// An application that reads each connection's request head, sends it
/// back to the test, and writes `answer`; then closes the connection.
async fn raw_app(
    answer: &'static [u8],
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut conn).await;
                let _ = tx.send(head);
                conn.write_all(answer).await.unwrap();
                conn.shutdown().await.unwrap();
            });
        }
    });
    (addr, rx)
}

/// Sends `request` to `addr`, and reads the answer until the proxy
/// closes the connection (or resets it: what came before counts).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = conn.read(&mut buf).await {
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn an_http10_request_goes_through_as_http10() {
    let (app, mut heads) = raw_app(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let (addr, _triggers) = proxies(app).await;
    let answer = exchange(addr, b"GET /old HTTP/1.0\r\nhost: web\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    assert!(answer.contains(" 200 "), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /old http/1.0\r\n"), "{head}");
    assert!(head.contains("\r\nhost: web\r\n"), "{head}");
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host_the_application_sees() {
    let (app, mut heads) =
        raw_app(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
    let (addr, _triggers) = proxies(app).await;
    let answer = exchange(
        addr,
        b"GET http://emoji.example:8080/list?x=1 HTTP/1.1\r\nhost: other.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /list?x=1 http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nhost: emoji.example:8080\r\n"), "{head}");
    assert!(!head.contains("other.example"), "{head}");
    assert_eq!(head.matches("host:").count(), 1, "{head}");
}

#[tokio::test]
async fn a_body_the_application_cuts_short_of_its_length_is_cut_for_the_client() {
    let (app, _heads) = raw_app(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b").await;
    let (addr, _triggers) = proxies(app).await;
    let answer = exchange(
        addr,
        b"GET /cut HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_not_whole(&answer);
}

/// Asserts that `answer`, to a request for a body its application cut
/// short, does not look whole: no answer at all (the proxy closed before
/// its head went out), or a `200` whose body falls short of its length or
/// lacks its last chunk.
fn assert_not_whole(answer: &str) {
    if answer.is_empty() {
        return;
    }
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    let length: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|l| l.parse().unwrap());
    match length {
        Some(length) => assert!(body.len() < length, "{answer}"),
        None => assert!(!body.ends_with("0\r\n\r\n"), "{answer}"),
    }
}

#[tokio::test]
async fn a_chunked_body_the_application_cuts_short_is_cut_for_the_client() {
    let (app, _heads) =
        raw_app(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n").await;
    let (addr, _triggers) = proxies(app).await;
    let answer = exchange(
        addr,
        b"GET /cut HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_not_whole(&answer);
}

#[tokio::test]
async fn a_websocket_crosses_both_proxies_with_the_bytes_sent_after_each_head() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let head = read_head(&mut conn).await;
        conn.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\npong",
        )
        .await
        .unwrap();
        let mut early = [0; 4];
        conn.read_exact(&mut early).await.unwrap();
        conn.write_all(b"back").await.unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        (head, early, rest)
    });
    let (addr, _triggers) = proxies(app).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"GET /chat HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\nping",
    )
    .await
    .unwrap();
    let answer = read_head(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let mut got = [0; 8];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"pongback");
    conn.write_all(b"more").await.unwrap();
    conn.shutdown().await.unwrap();
    let (head, early, rest) = seen.await.unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("get /chat http/1.1\r\n"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    assert!(!head.contains("mesh-orig-proto"), "{head}");
    assert_eq!(&early, b"ping");
    assert_eq!(rest, b"more");
}
