//! Protocol detection on a real `Protocol::Detect` port: what reaches the
//! HTTP server and what reaches the opaque handler.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{OpaqueConnection, Protocol, Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Sends `bytes` to a detecting port whose HTTP answers `200 http` and
/// whose opaque handler writes `opaque`; returns what came back.
async fn answer_to(bytes: &[u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("http")))
    });
    let opaque = tower::service_fn(|mut conn: OpaqueConnection| async move {
        conn.io.write_all(b"opaque").await?;
        conn.io.shutdown().await
    });
    let config = ServerConfig {
        protocol: Protocol::Detect,
        ..ServerConfig::default()
    };
    let server = tokio::spawn(Server::new(config).serve(listener, http, opaque, shutdown));
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    // Read until the answer is whole: the body, or the opaque greeting.
    while !got.ends_with(b"http") && !got.ends_with(b"opaque") {
        let n = client.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    trigger.trigger();
    server.await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_request_after_an_empty_line_is_served_as_http() {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let got = answer_to(b"\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got:?}");
}

#[tokio::test]
async fn other_bytes_reach_the_opaque_handler() {
    let got = answer_to(b"\x16\x03\x01\x02\x00").await;
    assert_eq!(got, "opaque");
}
