//! How long the client keeps an idle HTTP/1 connection by default,
//! against an upstream that closes idle connections itself.
//!
//! Servers close keep-alive connections after a few quiet seconds (Node.js
//! after 5, Apache after 5). A client that reuses a connection idle that
//! long sends its request just as the server closes: the server drops it
//! unanswered, and as the request was written, it cannot be sent again.
//! Linkerd's proxy keeps idle HTTP/1 connections 3 seconds by default for
//! this reason, below those servers' timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::client::{Client, ClientConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};
use tower::ServiceExt;

/// An HTTP/1.1 upstream that answers every request with `200 ok`, and
/// closes a connection, without answering, when a request arrives on it
/// after `keep_alive` of quiet: its idle timer fired as the request
/// crossed. Counts the connections it accepted.
async fn upstream(keep_alive: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(conn, keep_alive));
        }
    });
    (addr, accepted)
}

async fn serve(mut conn: TcpStream, keep_alive: Duration) {
    let mut quiet_since = Instant::now();
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    loop {
        let n = match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if head.is_empty() && quiet_since.elapsed() >= keep_alive {
            return;
        }
        head.extend_from_slice(&buf[..n]);
        if !head.windows(4).any(|w| w == b"\r\n\r\n") {
            continue;
        }
        head.clear();
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if conn.write_all(answer).await.is_err() {
            return;
        }
        quiet_since = Instant::now();
    }
}

async fn get(client: &Client<Empty<Bytes>>, addr: SocketAddr) -> Result<StatusCode, String> {
    let req = Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    let res = client
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
    let status = res.status();
    res.into_body().collect().await.unwrap();
    Ok(status)
}

#[tokio::test]
async fn a_connection_quiet_as_long_as_a_servers_keep_alive_is_not_reused() {
    let (addr, accepted) = upstream(Duration::from_secs(5)).await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    assert_eq!(get(&client, addr).await, Ok(StatusCode::OK));
    // Quiet for a moment: the connection is reused.
    assert_eq!(get(&client, addr).await, Ok(StatusCode::OK));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::time::resume();
    assert_eq!(get(&client, addr).await, Ok(StatusCode::OK));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// An upstream speaking HTTP/2 that answers `200` and counts the
/// connections it accepted.
async fn h2_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let svc = hyper::service::service_fn(|_| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new()))
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(conn), svc)
                    .await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn an_http2_connection_is_kept_through_a_lull() {
    let (addr, accepted) = h2_upstream().await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let get = || async {
        let req = Request::get(format!("http://{addr}/"))
            .version(http::Version::HTTP_2)
            .body(Empty::new())
            .unwrap();
        let res = client.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.into_body().collect().await.unwrap();
    };
    get().await;
    // Quiet for longer than an HTTP/1 connection is kept: the HTTP/2 one
    // stays, and carries the next request.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::time::resume();
    get().await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // Past its own idle timeout, it is not reused.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    tokio::time::resume();
    get().await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
