//! What a draining server gives back: the places of a limit it shares
//! with other servers, and its idle connections, while requests in
//! flight finish.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::serve::{ConnectionLimit, Protocol, Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinHandle,
};

/// Requests with `x-wait` are answered once `release` is notified, with
/// `arrived` notified when they come in; the rest at once, `done`.
struct Gate {
    arrived: Arc<Notify>,
    release: Arc<Notify>,
}

/// A server under `config`, its requests answered through a [`Gate`].
async fn serve(
    config: ServerConfig,
    signal: shutdown::Shutdown,
) -> (SocketAddr, Gate, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let http = {
        let (arrived, release) = (arrived.clone(), release.clone());
        tower::service_fn(move |req: Request<Incoming>| {
            let (arrived, release) = (arrived.clone(), release.clone());
            async move {
                if req.headers().contains_key("x-wait") {
                    arrived.notify_one();
                    release.notified().await;
                }
                Ok::<_, Infallible>(Response::new(mesh_core::body::full("done")))
            }
        })
    };
    let server = tokio::spawn(Server::new(config).serve_http(listener, http, signal));
    (addr, Gate { arrived, release }, server)
}

/// Sends a keep-alive GET on `conn` and reads until its `done` body.
async fn get(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 512];
    while !got.ends_with(b"done") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// Lets the servers take what the kernel has for them.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_draining_server_leaves_the_places_it_frees_to_the_servers_it_shares_a_limit_with() {
    // a waits for a place for a connection it accepted, ahead of b in the
    // shared limit's queue, when it is told to shut down: it refuses that
    // connection, and the place its idle connection gives up goes to b at
    // once, not to a's abandoned wait until a's drain is over.
    let limit = ConnectionLimit::new(2);
    let config = ServerConfig {
        protocol: Protocol::Http,
        shared_limit: Some(limit.clone()),
        shutdown_grace: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let (stop_a, signal_a) = shutdown::channel();
    let (stop_b, signal_b) = shutdown::channel();
    let (a, gate, server_a) = serve(config.clone(), signal_a).await;
    let (b, _, server_b) = serve(config, signal_b).await;

    let mut idle = TcpStream::connect(a).await.unwrap();
    assert!(get(&mut idle).await.starts_with("HTTP/1.1 200"));
    let mut busy = TcpStream::connect(a).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nx-wait: 1\r\n\r\n")
        .await
        .unwrap();
    gate.arrived.notified().await;
    assert_eq!(limit.available(), 0);
    let mut refused = TcpStream::connect(a).await.unwrap();
    settle().await;
    let mut to_b = TcpStream::connect(b).await.unwrap();
    settle().await;
    to_b.write_all(b"GET / HTTP/1.1\r\nhost: b\r\n\r\n")
        .await
        .unwrap();

    stop_a.trigger();
    // By the paused clock: b is answered at once; were the place a's,
    // b would wait for a's request in flight, or a's grace period.
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0; 512];
    while !answer.ends_with(b"done") {
        let n = to_b.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    tokio::time::resume();
    assert!(!server_a.is_finished(), "a waits for its request in flight");

    // a closed the connection it had not served, and its idle one.
    assert_eq!(refused.read(&mut buf).await.unwrap_or(0), 0);
    assert_eq!(idle.read(&mut buf).await.unwrap_or(0), 0);
    gate.release.notify_one();
    let mut rest = Vec::new();
    busy.read_to_end(&mut rest).await.unwrap();
    assert!(
        rest.ends_with(b"done"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    server_a.await.unwrap();
    stop_b.trigger();
    drop(to_b);
    server_b.await.unwrap();
    assert_eq!(limit.available(), 2, "every place is back");
}

#[tokio::test]
async fn an_idle_http2_connection_closes_at_shutdown_while_another_drains() {
    // The drain waits for streams in flight, not for connections that
    // carry none: an idle HTTP/2 connection gets its GOAWAY and closes at
    // once, as an idle HTTP/1 one does.
    let (stop, signal) = shutdown::channel();
    let (addr, gate, server) = serve(ServerConfig::default(), signal).await;
    let http2 = |tcp| {
        hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
    };
    let (mut busy, busy_conn) = http2(TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    let busy_conn = tokio::spawn(busy_conn);
    let (mut idle, idle_conn) = http2(TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    let idle_conn = tokio::spawn(idle_conn);
    let res = idle
        .send_request(Request::get("http://a/").body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "done");
    let req = Request::get("http://a/")
        .header("x-wait", "1")
        .body(Empty::new())
        .unwrap();
    let in_flight = tokio::spawn(busy.send_request(req));
    gate.arrived.notified().await;

    stop.trigger();
    idle_conn.await.unwrap().unwrap();
    assert!(!in_flight.is_finished());
    assert!(!server.is_finished(), "the server waits for the stream");
    gate.release.notify_one();
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "done");
    busy_conn.await.unwrap().unwrap();
    server.await.unwrap();
}
