//! Timeouts longer than the clock can count. `Duration::MAX` is the usual
//! way to say "never" where a setting takes a `Duration`, and a process
//! may read one from its configuration; the server must take it as never,
//! not panic in a connection task (which closes the connection, or stops
//! the process where panics abort) the first time it adds one to the
//! clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A server answering `ok`, or `LARGE` bytes on `/large`.
async fn server(config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|req: Request<Incoming>| async move {
        let body = if req.uri().path() == "/large" {
            Bytes::from(vec![b'x'; LARGE])
        } else {
            Bytes::from_static(b"ok")
        };
        Ok::<_, Infallible>(Response::new(mesh_core::body::full(body)))
    });
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(async move {
        Server::new(config).serve_http(listener, http, signal).await;
        drop(trigger);
    });
    addr
}

/// More than loopback socket buffers hold, so that the server's writes wait.
const LARGE: usize = 32 * 1024 * 1024;

/// The configurations to try: each with one timeout at `Duration::MAX`.
fn configs() -> Vec<(&'static str, ServerConfig)> {
    let base = ServerConfig::default;
    vec![
        (
            "header_read_timeout",
            ServerConfig {
                header_read_timeout: Duration::MAX,
                ..base()
            },
        ),
        (
            "write_stall_timeout",
            ServerConfig {
                write_stall_timeout: Duration::MAX,
                ..base()
            },
        ),
        (
            "stream_idle_timeout",
            ServerConfig {
                stream_idle_timeout: Some(Duration::MAX),
                ..base()
            },
        ),
        (
            "http2_keep_alive_interval",
            ServerConfig {
                http2_keep_alive_interval: Some(Duration::MAX),
                ..base()
            },
        ),
        (
            "http2_keep_alive_timeout",
            ServerConfig {
                http2_keep_alive_timeout: Duration::MAX,
                http2_keep_alive_interval: Some(Duration::from_secs(1)),
                ..base()
            },
        ),
        (
            "detect_timeout",
            ServerConfig {
                detect_timeout: Duration::MAX,
                ..base()
            },
        ),
    ]
}

async fn http1_get(addr: SocketAddr) -> Result<String, std::io::Error> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// Two requests on one HTTP/2 connection, two seconds apart by the paused
/// clock, so that the connection's timers are set and fire between them
/// (the keep-alive ping goes out after one): the second's body.
async fn http2_get(addr: SocketAddr) -> Result<Bytes, hyper::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await?;
    tokio::spawn(conn);
    let req = || Request::get("http://a/").body(Empty::new()).unwrap();
    send.send_request(req())
        .await?
        .into_body()
        .collect()
        .await?;
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::time::resume();
    let res = send.send_request(req()).await?;
    Ok(res.into_body().collect().await?.to_bytes())
}

#[tokio::test]
async fn a_timeout_too_long_for_the_clock_never_fires() {
    for (knob, config) in configs() {
        let addr = server(config).await;
        let answer = http1_get(addr).await.unwrap();
        assert!(answer.ends_with("\r\n\r\nok"), "{knob}, HTTP/1: {answer:?}");
        let body = http2_get(addr)
            .await
            .unwrap_or_else(|e| panic!("{knob}, HTTP/2: {e}"));
        assert_eq!(body, "ok", "{knob}, HTTP/2");
    }
}

#[tokio::test]
async fn a_client_may_read_late_under_an_endless_write_stall_timeout() {
    let addr = server(ServerConfig {
        write_stall_timeout: Duration::MAX,
        ..ServerConfig::default()
    })
    .await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /large HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    // The paused clock moves once the runtime is idle: once the server's
    // writes wait for this client to read.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    tokio::time::resume();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let body = answer.iter().filter(|&&b| b == b'x').count();
    assert_eq!(body, LARGE, "the response was cut");
}
