//! How large a request head the server takes, on either protocol.
//!
//! HTTP/1 read a head into hyper's connection buffer, so the bound was
//! that buffer's ~400 KiB, held per connection; HTTP/2 took hyper's
//! 16 KiB. A head that one hop took and the next refused depended on the
//! protocol between them: a sidecar that carries HTTP/1 to its peer as
//! HTTP/2 turned a 20 KiB head into a refusal. One bound now holds for
//! both, `ServerConfig::max_request_head_bytes`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::net::{TcpListener, TcpStream};

/// A server answering 200 to every request, with `config`.
async fn server(config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full(Bytes::from_static(
            b"ok",
        ))))
    });
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(async move {
        Server::new(config).serve_http(listener, http, signal).await;
        drop(trigger);
    });
    addr
}

/// A GET whose `x-fill` header holds `bytes` bytes.
fn request(bytes: usize) -> Request<Empty<Bytes>> {
    Request::get("http://svc.test/")
        .header("x-fill", "a".repeat(bytes))
        .body(Empty::new())
        .unwrap()
}

/// The status an HTTP/1 request with a `bytes`-byte header gets, or the
/// client's error when the server closed without one.
async fn http1_status(addr: SocketAddr, bytes: usize) -> Result<StatusCode, hyper::Error> {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(connection);
    Ok(sender.send_request(request(bytes)).await?.status())
}

/// The same over HTTP/2 (prior knowledge).
async fn http2_status(addr: SocketAddr, bytes: usize) -> Result<StatusCode, hyper::Error> {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(connection);
    Ok(sender.send_request(request(bytes)).await?.status())
}

#[tokio::test]
async fn http1_heads_past_the_default_bound_get_431() {
    let addr = server(ServerConfig::default()).await;
    assert_eq!(http1_status(addr, 60 * 1024).await.unwrap(), StatusCode::OK);
    // Far under hyper's own ~400 KiB buffer, which was the bound before.
    assert_eq!(
        http1_status(addr, 100 * 1024).await.unwrap(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

#[tokio::test]
async fn http2_takes_the_same_heads_as_http1() {
    let addr = server(ServerConfig::default()).await;
    // Over hyper's HTTP/2 default of 16 KiB, under the shared bound.
    assert_eq!(http2_status(addr, 60 * 1024).await.unwrap(), StatusCode::OK);
    // Past the bound: refused, whether by the server's 431 or by the
    // client, which reads the bound from the server's settings.
    let refused = http2_status(addr, 100 * 1024).await;
    assert!(
        !matches!(refused, Ok(StatusCode::OK)),
        "a 100 KiB head was taken: {refused:?}"
    );
}

#[tokio::test]
async fn the_bound_is_configurable() {
    let config = ServerConfig {
        max_request_head_bytes: 8 * 1024,
        ..ServerConfig::default()
    };
    let addr = server(config).await;
    assert_eq!(http1_status(addr, 4 * 1024).await.unwrap(), StatusCode::OK);
    assert_eq!(
        http1_status(addr, 12 * 1024).await.unwrap(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(http2_status(addr, 4 * 1024).await.unwrap(), StatusCode::OK);
    let refused = http2_status(addr, 12 * 1024).await;
    assert!(
        !matches!(refused, Ok(StatusCode::OK)),
        "a 12 KiB head was taken: {refused:?}"
    );
}
