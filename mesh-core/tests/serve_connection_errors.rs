//! `Server::on_connection_error`: the server tells of each connection it
//! closed for an error of its own (detection, the HTTP connection), once,
//! as it ends, and of nothing else: not of a peer that closed before
//! sending a byte, nor of one served to its end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::Response;
use mesh_core::{
    body,
    serve::{
        ConnectionErrorKind, HttpVersion, Protocol, Server, ServerConfig,
        shutdown::{self, ShutdownTrigger},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tower::service_fn;

/// What the hook was told: where, and the error's text.
type Told = (SocketAddr, ConnectionErrorKind, String);

/// A server of `protocol` answering `200` to every request, whose hook
/// sends what it is told.
async fn server(
    protocol: Protocol,
    config: ServerConfig,
) -> (SocketAddr, mpsc::UnboundedReceiver<Told>, ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(Mutex::new(tx));
    let server =
        Server::new(ServerConfig { protocol, ..config }).on_connection_error(move |ended| {
            let told = (ended.local_addr, ended.kind, ended.error.to_string());
            let _ = tx.lock().unwrap().send(told);
        });
    let ok = service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(Response::new(body::full("ok")))
    });
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(server.serve_http(listener, ok, shutdown));
    (addr, rx, trigger)
}

async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut read = Vec::new();
    let _ = tcp.read_to_end(&mut read).await;
    read
}

/// The next thing told, within a bound.
async fn next(rx: &mut mpsc::UnboundedReceiver<Told>) -> Told {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the hook was told nothing")
        .unwrap()
}

#[tokio::test]
async fn not_http_on_an_http_only_port_is_told_and_a_silent_close_is_not() {
    let (addr, mut rx, _trigger) = server(Protocol::Http, ServerConfig::default()).await;

    // Closed before a byte: gone, not failed.
    drop(TcpStream::connect(addr).await.unwrap());
    // Served to its end.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"\x16\x03\x01 not http at all\r\n")
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let (local, kind, error) = next(&mut rx).await;
    assert_eq!(local, addr);
    assert_eq!(kind, ConnectionErrorKind::NotHttp, "{error}");
    assert!(
        rx.try_recv().is_err(),
        "told twice, or of a connection that did not fail"
    );
}

#[tokio::test]
async fn a_request_hyper_cannot_parse_ends_the_connection_with_an_http_error() {
    let (addr, mut rx, _trigger) = server(Protocol::Http, ServerConfig::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // A request line detection takes, and a header line hyper refuses.
    tcp.write_all(b"GET / HTTP/1.1\r\nhost a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
    let (_, kind, error) = next(&mut rx).await;
    assert_eq!(
        kind,
        ConnectionErrorKind::Http(HttpVersion::Http1),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn detection_that_times_out_on_an_http_only_port_is_told() {
    let config = ServerConfig {
        detect_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let (addr, mut rx, _trigger) = server(Protocol::Http, config).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /unfinished").await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let (_, kind, error) = next(&mut rx).await;
    assert_eq!(kind, ConnectionErrorKind::DetectTimeout, "{error}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_closed_at_the_header_timeout_is_told_as_such() {
    let config = ServerConfig {
        header_read_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let (addr, mut rx, _trigger) = server(Protocol::Http, config).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0; 1024];
    let n = tcp.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    // No next request: the server closes the connection at the timeout.
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let (_, kind, error) = next(&mut rx).await;
    assert_eq!(kind, ConnectionErrorKind::HeaderTimeout, "{error}");
}
