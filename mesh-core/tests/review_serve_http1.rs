//! HTTP/1 framing a server facing untrusted clients must get right:
//! a request with both `content-length` and `transfer-encoding` (request
//! smuggling, RFC 9112 §6.3), conflicting lengths, and pipelined
//! requests with `connection: close` among them.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Answers each request with its path, the body it read and the
/// `content-length` values it was given.
async fn echo(req: Request<Incoming>) -> Result<Response<mesh_core::body::BoxBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let lengths: Vec<_> = parts
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let text = format!(
        "[{} body={} cl={}]",
        parts.uri.path(),
        String::from_utf8_lossy(&body),
        lengths.join("|")
    );
    Ok(Response::new(mesh_core::body::full(text)))
}

async fn server() -> (SocketAddr, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        listener,
        tower::service_fn(echo),
        signal,
    ));
    (addr, trigger)
}

/// Sends `bytes` and reads until the server closes.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut read = Vec::new();
    let _ = tcp.read_to_end(&mut read).await;
    String::from_utf8_lossy(&read).into_owned()
}

#[tokio::test]
async fn a_request_with_both_lengths_is_read_chunked_and_its_connection_closed() {
    // Transfer-Encoding overrides Content-Length, which the service never
    // sees, so nothing after it can read the body another way; and the
    // connection closes after the answer (RFC 9112 §6.3), so a request
    // hidden behind it is never served.
    let (addr, _trigger) = server().await;
    for heads in [
        "content-length: 3\r\ntransfer-encoding: chunked",
        "transfer-encoding: chunked\r\ncontent-length: 3",
    ] {
        let request = format!(
            "POST /a HTTP/1.1\r\nhost: a\r\n{heads}\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
             GET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n"
        );
        let answer = exchange(addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{heads:?}: {answer}");
        assert!(answer.contains("connection: close"), "{heads:?}: {answer}");
        assert!(
            answer.ends_with("[/a body=hello cl=]"),
            "{heads:?}: {answer}"
        );
        assert!(!answer.contains("smuggled"), "{heads:?}: {answer}");
    }
}

#[tokio::test]
async fn conflicting_lengths_are_refused_and_equal_ones_read_once() {
    let (addr, _trigger) = server().await;
    for lengths in [
        "content-length: 3\r\ncontent-length: 4",
        "content-length: 3, 4",
        "content-length: +3",
    ] {
        let request = format!("POST /a HTTP/1.1\r\nhost: a\r\n{lengths}\r\n\r\nabcd");
        let answer = exchange(addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{lengths:?}: {answer}");
    }
    let answer = exchange(
        addr,
        b"POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ncontent-length: 3\r\n\
          connection: close\r\n\r\nabc",
    )
    .await;
    assert!(answer.ends_with("[/a body=abc cl=3]"), "{answer}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_up_to_the_one_that_closes() {
    let (addr, _trigger) = server().await;
    let answer = exchange(
        addr,
        b"GET /1 HTTP/1.1\r\nhost: a\r\n\r\n\
          POST /2 HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi\
          GET /3 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n\
          GET /4 HTTP/1.1\r\nhost: a\r\n\r\n",
    )
    .await;
    let served: Vec<_> = answer
        .split('[')
        .skip(1)
        .map(|s| s.split(' ').next().unwrap())
        .collect();
    assert_eq!(served, ["/1", "/2", "/3"], "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer}");
}
