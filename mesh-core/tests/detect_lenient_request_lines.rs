//! Request lines that common HTTP/1 servers serve, though they are not
//! the strict `method SP target SP HTTP/1.x`, reach the mesh's HTTP server
//! on a `Protocol::Detect` port, never the opaque handler.
//!
//! Go's `net/http` serves any `HTTP/1.<digit>` (its
//! `http1ServerSupportsRequest` takes every major version 1), Python's
//! `http.server` any `HTTP/1.x` and runs of spaces or tabs between the
//! words, Netty runs of whitespace. Passed on as opaque bytes, such a
//! request reached the application with none of what the HTTP stack does
//! to requests: no route-level authorization, no route filters, and the
//! caller's own `l5d-client-id` or `mesh-client-id` in place of the one
//! the mesh proves.
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
    let _ = client.read_to_end(&mut got).await;
    trigger.trigger();
    server.await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn request_lines_lenient_servers_serve_are_refused_by_the_http_server() {
    for line in [
        "GET /admin HTTP/1.2",
        "GET /admin HTTP/1.9",
        "GET /admin HTTP/1.10",
        "GET  /admin  HTTP/1.1",
        "GET /admin HTTP/1.1 ",
        "GET\t/admin\tHTTP/1.1",
    ] {
        let got =
            answer_to(format!("{line}\r\nhost: a\r\nconnection: close\r\n\r\n").as_bytes()).await;
        assert!(
            got.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{line:?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn text_protocols_that_are_not_http_stay_opaque() {
    // memcached's and Redis's inline commands, and HTTP/2 spelled as an
    // HTTP/1 request line (not the preface).
    for line in [
        "get key",
        "set key 0 0 5",
        "SET key value",
        "GET / HTTP/2.0",
    ] {
        let got = answer_to(format!("{line}\r\n").as_bytes()).await;
        assert_eq!(got, "opaque", "{line:?}");
    }
}
