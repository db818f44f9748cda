//! The client's HTTP/2 connections against an upstream's own limits, over
//! real sockets: it keeps to the streams the upstream allows at once, and
//! a connection the upstream is closing with `GOAWAY` takes no new ones.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::client::{Client, ClientConfig};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// What an upstream counts: connections accepted, requests in flight,
/// and the most in flight at once.
#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

/// An HTTP/2 upstream allowing `streams` at once on a connection, each
/// request answered after a few turns of the scheduler. With `goaway`,
/// each connection is shut down gracefully once its first request is
/// answered.
async fn upstream(streams: u32, goaway: bool) -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let counts = shared.clone();
            let (answered_tx, answered) = tokio::sync::watch::channel(false);
            let svc = hyper::service::service_fn(move |_: Request<Incoming>| {
                let counts = counts.clone();
                let answered = answered_tx.clone();
                async move {
                    let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    counts.most.fetch_max(now, Ordering::SeqCst);
                    for _ in 0..5 {
                        tokio::task::yield_now().await;
                    }
                    counts.in_flight.fetch_sub(1, Ordering::SeqCst);
                    answered.send_replace(true);
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder.max_concurrent_streams(streams);
            let served = builder.serve_connection(TokioIo::new(conn), svc);
            tokio::spawn(async move {
                let mut served = std::pin::pin!(served);
                if goaway {
                    let mut answered = answered;
                    tokio::select! {
                        _ = served.as_mut() => return,
                        _ = answered.wait_for(|a| *a) => {}
                    }
                    served.as_mut().graceful_shutdown();
                }
                let _ = served.await;
            });
        }
    });
    (addr, counts)
}

fn get(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .version(Version::HTTP_2)
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn requests_past_the_upstreams_stream_limit_wait_their_turn() {
    let (addr, counts) = upstream(1, false).await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    // Once the upstream's SETTINGS are in: before them, hyper's client
    // opens up to 100 streams, and an upstream that allows fewer refuses
    // the rest (`REFUSED_STREAM`, which `Forward` marks unprocessed).
    let res = client.clone().oneshot(get(addr)).await.unwrap();
    res.into_body().collect().await.unwrap();
    let requests = (0..8).map(|_| {
        let client = client.clone();
        async move {
            let res = client.oneshot(get(addr)).await.unwrap();
            let status = res.status();
            res.into_body().collect().await.unwrap();
            status
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(counts.most.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_is_closing_takes_no_new_request() {
    let (addr, counts) = upstream(100, true).await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    for i in 0..3 {
        let res = client.clone().oneshot(get(addr)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "request {i}");
        res.into_body().collect().await.unwrap();
    }
    assert!(counts.connections.load(Ordering::SeqCst) >= 2);
}

/// An HTTP/1.1 upstream that answers each request `200` without
/// `connection: close`, then closes the connection: an idle pooled
/// connection that the server has closed. Counts connections.
async fn closes_after_each_answer() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_while_idle_is_not_used() {
    let (addr, accepted) = closes_after_each_answer().await;
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    for i in 0..20 {
        let req = Request::get(format!("http://{addr}/"))
            .body(Empty::new())
            .unwrap();
        let res = client.clone().oneshot(req).await;
        let res = res.unwrap_or_else(|e| panic!("request {i}: {e:?}"));
        assert_eq!(res.status(), StatusCode::OK, "request {i}");
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
}
