//! Forwarded TCP connections and `CONNECT` tunnels that find no endpoint
//! ready wait for one, then fail fast, as HTTP requests do (Linkerd's
//! outbound TCP queue): over real sockets, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{
    queue::{connector, tcp_echo, tcp_proxy, until},
    refused::refused_addr,
};

use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32, time::Duration};

use hyper_util::client::legacy::connect::HttpConnector;
use mesh_core::{
    body::BoxBody,
    proxy::{ConnectTunnel, EndpointSet, FailureAccrual, ForwardTcp, Queue},
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
    time::Instant,
};

/// What a client connected through the proxy gets back for `hello`:
/// `Some` of the bytes echoed, or `None` when its connection is closed.
fn exchange(proxy: SocketAddr) -> JoinHandle<Option<Vec<u8>>> {
    tokio::spawn(async move {
        let mut conn = TcpStream::connect(proxy).await.unwrap();
        conn.write_all(b"hello").await.unwrap();
        let mut back = [0; 5];
        match conn.read_exact(&mut back).await {
            Ok(_) => Some(back.to_vec()),
            // Closed (a FIN, or a reset for the unread `hello`).
            Err(_) => None,
        }
    })
}

/// Runs `handle` to its end, and checks that the clock did not move.
async fn at_once<T>(handle: JoinHandle<T>) -> T {
    let start = Instant::now();
    let out = handle.await.unwrap();
    assert_eq!(Instant::now(), start, "at once");
    out
}

#[tokio::test(start_paused = true)]
async fn a_connection_while_no_endpoint_resolved_waits_and_is_forwarded_to_the_first() {
    let endpoint = tcp_echo().await;
    let set = EndpointSet::empty();
    let proxy = tcp_proxy(ForwardTcp::with_endpoints(connector(), &set)).await;
    let start = Instant::now();
    let waiting = exchange(proxy);
    until(start, Duration::from_millis(2500)).await;
    assert!(!waiting.is_finished(), "it waits for an endpoint");
    set.update([endpoint]).unwrap();
    assert_eq!(waiting.await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(Instant::now(), start + Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn past_the_timeout_connections_are_closed_and_later_ones_fail_fast_until_an_endpoint_comes()
{
    let endpoint = tcp_echo().await;
    let set = EndpointSet::empty();
    let proxy = tcp_proxy(ForwardTcp::with_endpoints(connector(), &set)).await;
    let start = Instant::now();
    let first = exchange(proxy);
    until(start, Duration::from_secs(1)).await;
    let second = exchange(proxy);
    until(start, Duration::from_millis(2999)).await;
    assert!(!first.is_finished() && !second.is_finished());
    // Both close at 3 s: the timeout counts from when the service had no
    // endpoint ready, not from each connection.
    assert_eq!(first.await.unwrap(), None);
    assert_eq!(second.await.unwrap(), None);
    assert_eq!(Instant::now(), start + Duration::from_secs(3));
    // In fail-fast, a new connection is closed at once.
    until(start, Duration::from_secs(60)).await;
    assert_eq!(at_once(exchange(proxy)).await, None);
    // Until an endpoint is ready.
    set.update([endpoint]).unwrap();
    assert_eq!(
        at_once(exchange(proxy)).await.as_deref(),
        Some(&b"hello"[..])
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_beyond_the_queue_capacity_is_closed_at_once() {
    let endpoint = tcp_echo().await;
    let set = EndpointSet::empty().with_queue(Queue::new(1, Duration::from_secs(3)));
    let proxy = tcp_proxy(ForwardTcp::with_endpoints(connector(), &set)).await;
    let start = Instant::now();
    let waiting = exchange(proxy);
    until(start, Duration::from_millis(100)).await;
    assert_eq!(at_once(exchange(proxy)).await, None, "the queue is full");
    set.update([endpoint]).unwrap();
    assert_eq!(waiting.await.unwrap().as_deref(), Some(&b"hello"[..]));
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_closes_the_connection_at_once() {
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::ZERO));
    let proxy = tcp_proxy(ForwardTcp::with_endpoints(connector(), &set)).await;
    assert_eq!(at_once(exchange(proxy)).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_fixed_forwarder_with_every_endpoint_out_waits_for_the_penalty_to_end() {
    // Out for 1 s at its first failure.
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(1),
        Duration::from_secs(1),
        0.0,
    )
    .unwrap();
    // An endpoint that refuses now, and listens again later.
    let endpoint = refused_addr();
    let forward = ForwardTcp::new(connector(), [endpoint])
        .unwrap()
        .with_queue(Queue::new(10, Duration::from_secs(3)))
        .with_failure_accrual(accrual);
    let proxy = tcp_proxy(forward).await;
    assert_eq!(exchange(proxy).await.unwrap(), None, "refused: out");
    let start = Instant::now();
    let waiting = exchange(proxy);
    until(start, Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "waits while the endpoint is out");
    // Back before its penalty ends: the waiting connection is its probe.
    let listener = TcpListener::bind(endpoint).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    assert_eq!(waiting.await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert!(Instant::now() < start + Duration::from_secs(2));
}

/// An HTTP server tunnelling `CONNECT db:…` through `forward`.
async fn connect_proxy(forward: ForwardTcp<HttpConnector>) -> SocketAddr {
    let targets =
        move |authority: &http::uri::Authority| (authority.host() == "db").then(|| forward.clone());
    let not_found = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(BoxBody::default()))
    });
    let stack = ConnectTunnel::new(not_found, targets);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    std::mem::forget(trigger);
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, shutdown));
    addr
}

/// Sends `CONNECT db:5432` and returns the answer's head, lowercase, and
/// the connection.
fn send_connect(proxy: SocketAddr) -> JoinHandle<(String, TcpStream)> {
    tokio::spawn(async move {
        let mut conn = TcpStream::connect(proxy).await.unwrap();
        conn.write_all(b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        (String::from_utf8(head).unwrap().to_ascii_lowercase(), conn)
    })
}

#[tokio::test(start_paused = true)]
async fn a_connect_waits_for_an_endpoint_then_tunnels() {
    let endpoint = tcp_echo().await;
    let set = EndpointSet::empty();
    let proxy = connect_proxy(ForwardTcp::with_endpoints(connector(), &set)).await;
    let start = Instant::now();
    let waiting = send_connect(proxy);
    until(start, Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "no answer before an endpoint");
    set.update([endpoint]).unwrap();
    let (head, mut conn) = waiting.await.unwrap();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    conn.write_all(b"tunnel").await.unwrap();
    let mut back = [0; 6];
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"tunnel");
}

#[tokio::test(start_paused = true)]
async fn a_connect_past_the_timeout_is_answered_503_and_later_ones_at_once() {
    let set = EndpointSet::empty();
    let proxy = connect_proxy(ForwardTcp::with_endpoints(connector(), &set)).await;
    let start = Instant::now();
    let (head, _conn) = send_connect(proxy).await.unwrap();
    assert_eq!(Instant::now(), start + Duration::from_secs(3));
    assert!(head.starts_with("http/1.1 503 "), "{head}");
    assert!(head.contains("mesh-error: service in fail-fast"), "{head}");
    // Later ones are shed, the service in fail-fast.
    let (head, _conn) = at_once(send_connect(proxy)).await;
    assert!(head.starts_with("http/1.1 503 "), "{head}");
    assert!(head.contains("mesh-error: service unavailable"), "{head}");
}
