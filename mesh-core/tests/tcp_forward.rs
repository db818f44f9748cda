//! Opaque TCP through a server and a `ForwardTcp`: the bytes reach an
//! endpoint and come back unchanged, an unreachable endpoint closes the
//! client's connection, and shutdown waits for a connection in flight.
#![allow(clippy::unwrap_used)]

use crate::support::queue::tcp_echo;

use crate::support::refused::refused_addr;

use std::{net::SocketAddr, time::Duration};

use mesh_core::{
    client::ClientConfig,
    proxy::ForwardTcp,
    serve::{Protocol, Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// An opaque server forwarding to `endpoints`.
async fn proxy(
    endpoints: Vec<SocketAddr>,
) -> (SocketAddr, shutdown::ShutdownTrigger, JoinHandle<()>) {
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    let forward = ForwardTcp::new(connector, endpoints).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        shutdown_grace: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let http = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("")))
    });
    let server = tokio::spawn(Server::new(config).serve(listener, http, forward, shutdown));
    (addr, trigger, server)
}

#[tokio::test]
async fn bytes_that_look_like_http_cross_unchanged() {
    let (addr, trigger, server) = proxy(vec![tcp_echo().await]).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let sent: Vec<u8> = b"GET / HTTP/1.1\r\n\r\n"
        .iter()
        .copied()
        .chain((0..256 * 1024).map(|i| (i % 253) as u8))
        .collect();
    let (mut r, mut w) = conn.split();
    let write = async {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let ((), read) = tokio::join!(write, r.read_to_end(&mut back));
    read.unwrap();
    assert!(back == sent, "{} bytes came back, changed", back.len());
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_endpoint_closes_the_clients_connection() {
    let dead = refused_addr();
    let (addr, trigger, server) = proxy(vec![dead]).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0; 16];
    // Closed, not reset: a byte stream has no way to carry the error.
    let read = conn.read(&mut buf).await;
    assert!(matches!(read, Ok(0)), "{read:?}");
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_a_forwarded_connection_in_flight() {
    let (addr, trigger, server) = proxy(vec![tcp_echo().await]).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"ping").await.unwrap();
    let mut back = [0; 4];
    conn.read_exact(&mut back).await.unwrap();
    trigger.trigger();
    conn.write_all(b"pong").await.unwrap();
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"pong");
    tokio::task::yield_now().await;
    assert!(
        !server.is_finished(),
        "the server stopped with a connection open"
    );
    drop(conn);
    server.await.unwrap();
}

/// A server whose `CONNECT`s to `db:5432` are tunnelled to `endpoint`;
/// everything else is answered `404` by the inner service.
async fn connect_proxy(
    endpoint: SocketAddr,
    open: mesh_core::proxy::connect::OpenTunnels,
) -> (SocketAddr, shutdown::ShutdownTrigger, JoinHandle<()>) {
    use mesh_core::proxy::ConnectTunnel;
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    let forward = ForwardTcp::new(connector, [endpoint]).unwrap();
    let targets =
        move |authority: &http::uri::Authority| (authority.host() == "db").then(|| forward.clone());
    let not_found = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        let mut res = http::Response::new(mesh_core::body::BoxBody::default());
        *res.status_mut() = http::StatusCode::NOT_FOUND;
        Ok::<_, std::convert::Infallible>(res)
    });
    let stack = ConnectTunnel::new(not_found, targets).with_open_tunnels(open);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, shutdown));
    (addr, trigger, server)
}

/// Sends `CONNECT authority` on a new connection to `addr`, with `early`
/// bytes right behind the head, and returns the connection and the
/// response head.
async fn send_connect(addr: SocketAddr, authority: &str, early: &[u8]) -> (TcpStream, String) {
    let mut rest = b"\r\n".to_vec();
    rest.extend_from_slice(early);
    send_connect_with(addr, authority, &rest).await
}

/// Sends `CONNECT authority` with its `host` and then `rest` (more
/// header lines, the blank line, and early bytes), and returns the
/// connection and the response head.
async fn send_connect_with(addr: SocketAddr, authority: &str, rest: &[u8]) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n").into_bytes();
    req.extend_from_slice(rest);
    conn.write_all(&req).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (conn, String::from_utf8(head).unwrap().to_ascii_lowercase())
}

#[tokio::test]
async fn a_connect_to_a_known_target_is_tunnelled_to_its_endpoint() {
    let (open, closed) = mesh_core::proxy::connect::open_tunnels();
    let (addr, trigger, server) = connect_proxy(tcp_echo().await, open).await;
    // Bytes sent before the answer arrives are tunnelled too.
    let (mut conn, head) = send_connect(addr, "db:5432", b"early ").await;
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    // RFC 9110 §9.3.6: no framing headers on a 2xx answer to CONNECT.
    assert!(!head.contains("content-length"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    conn.write_all(b"late").await.unwrap();
    let mut back = [0; 10];
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"early late");

    // The tunnel outlives the server's connection and the start of
    // shutdown; the runtime's owner learns when it and the server are
    // done.
    trigger.trigger();
    let mut wait = Box::pin(closed.wait());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        futures_util::FutureExt::now_or_never(&mut wait).is_none(),
        "the tunnel is still open"
    );
    conn.write_all(b"still").await.unwrap();
    let mut back = [0; 5];
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still");
    drop(conn);
    server.await.unwrap();
    wait.await;
}

#[tokio::test]
async fn other_requests_and_connects_to_unknown_targets_go_to_the_inner_service() {
    let (open, _closed) = mesh_core::proxy::connect::open_tunnels();
    let (addr, trigger, server) = connect_proxy(tcp_echo().await, open).await;
    let (_conn, head) = send_connect(addr, "elsewhere:443", b"").await;
    assert!(head.starts_with("http/1.1 404 "), "{head}");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: db:5432\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 404 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn a_connect_whose_endpoint_refuses_is_answered_502_before_any_200() {
    let dead = refused_addr();
    let (open, closed) = mesh_core::proxy::connect::open_tunnels();
    let (addr, trigger, server) = connect_proxy(dead, open).await;
    // The client learns that the tunnel failed, and from where, before it
    // sends a byte into it: not a 200 and then a closed connection.
    let (_conn, head) = send_connect(addr, "db:5432", b"").await;
    assert!(head.starts_with("http/1.1 502 "), "{head}");
    assert!(
        head.contains("mesh-error: upstream connect error\r\n"),
        "{head}"
    );
    trigger.trigger();
    server.await.unwrap();
    closed.wait().await;
}

#[tokio::test]
async fn a_connect_to_a_target_without_endpoints_is_answered_503() {
    use mesh_core::proxy::{ConnectTunnel, EndpointSet, Queue};
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    // A queue without places: the answer comes at once.
    let set = EndpointSet::empty().with_queue(Queue::new(0, std::time::Duration::from_secs(3)));
    let forward = ForwardTcp::with_endpoints(connector, &set);
    let targets =
        move |authority: &http::uri::Authority| (authority.host() == "db").then(|| forward.clone());
    let not_found = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::BoxBody::default()))
    });
    let stack = ConnectTunnel::new(not_found, targets);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, shutdown));
    let (_conn, head) = send_connect(addr, "db:5432", b"").await;
    assert!(head.starts_with("http/1.1 503 "), "{head}");
    assert!(
        head.contains("mesh-error: service unavailable\r\n"),
        "{head}"
    );
    trigger.trigger();
    server.await.unwrap();
}

/// Reads everything `conn` gets until the server closes it, or what came
/// in 10 s when it keeps it open.
async fn read_until_closed(conn: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut all)).await;
    String::from_utf8_lossy(&all).to_ascii_lowercase()
}

#[tokio::test]
async fn a_connect_with_content_is_refused_400_not_tunnelled_without_it() {
    // RFC 9110 §9.3.6: a CONNECT has no content. One that declares some
    // would have it read as a body and dropped, and only the bytes after
    // it tunnelled: "hello" lost, "world" sent.
    let framings = [
        "content-length: 5\r\n\r\nhello",
        "transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for framing in framings {
        let (open, _closed) = mesh_core::proxy::connect::open_tunnels();
        let (addr, trigger, server) = connect_proxy(tcp_echo().await, open).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let req = format!("CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n{framing}world");
        conn.write_all(req.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut conn).await;
        assert!(answer.starts_with("http/1.1 400 "), "{framing}: {answer}");
        assert!(
            answer.contains("mesh-error: connect with content\r\n"),
            "{answer}"
        );
        assert!(!answer.contains("world"), "tunnelled: {answer}");
        trigger.trigger();
        server.await.unwrap();
    }
    // An empty one is no content, however its zero is written.
    for length in ["0", "00"] {
        let (open, _closed) = mesh_core::proxy::connect::open_tunnels();
        let (addr, trigger, server) = connect_proxy(tcp_echo().await, open).await;
        let early = format!("content-length: {length}\r\n\r\nworld");
        let (mut conn, head) = send_connect_with(addr, "db:5432", early.as_bytes()).await;
        assert!(head.starts_with("http/1.1 200 "), "{length}: {head}");
        let mut back = [0; 5];
        conn.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"world");
        drop(conn);
        trigger.trigger();
        server.await.unwrap();
    }
}
