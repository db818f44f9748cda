//! A request head bound raised past hyper's HTTP/1 connection buffer
//! (about 400 KiB by default): `ServerConfig::max_request_head_bytes`
//! promises one bound for both protocols, and the sidecar takes up to
//! 1 MiB. HTTP/1 stopped at the buffer's size and answered `431` to a
//! head the bound, and HTTP/2, took.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::net::{TcpListener, TcpStream};

const BOUND: usize = 1024 * 1024;

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

/// A GET whose `x-fill` header holds `bytes` bytes.
fn request(bytes: usize) -> Request<Empty<Bytes>> {
    Request::get("http://svc.test/")
        .header("x-fill", "a".repeat(bytes))
        .body(Empty::new())
        .unwrap()
}

async fn http1_status(addr: SocketAddr, bytes: usize) -> StatusCode {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(connection);
    sender.send_request(request(bytes)).await.unwrap().status()
}

async fn http2_status(addr: SocketAddr, bytes: usize) -> StatusCode {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(connection);
    sender.send_request(request(bytes)).await.unwrap().status()
}

#[tokio::test]
async fn a_head_bound_past_hypers_buffer_holds_for_http1_as_for_http2() {
    let (addr, _trigger) = server(ServerConfig {
        max_request_head_bytes: BOUND,
        ..ServerConfig::default()
    })
    .await;
    let within = 600 * 1024;
    assert_eq!(http2_status(addr, within).await, StatusCode::OK, "HTTP/2");
    assert_eq!(http1_status(addr, within).await, StatusCode::OK, "HTTP/1");
    // And the bound still holds.
    let past = BOUND + 1024;
    assert_eq!(
        http1_status(addr, past).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "HTTP/1"
    );
}

#[tokio::test]
async fn the_default_bound_leaves_hypers_buffer_as_it_was() {
    // Raising the buffer only with the bound: at the default 64 KiB, a
    // connection's buffer may not grow past hyper's default either, so a
    // head past the bound is still refused as before.
    let (addr, _trigger) = server(ServerConfig::default()).await;
    assert_eq!(
        http1_status(addr, 500 * 1024).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}
