//! A connection whose first bytes decide nothing before the detection
//! timeout: on a `Protocol::Detect` port it goes on as opaque, with the
//! bytes read so far replayed, as Linkerd's proxy continues after a
//! detection timeout; on an HTTP-only port, and when ALPN promised
//! HTTP/2, it is still closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{answer::answering, log_capture};

use std::{
    future::{Ready, ready},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mesh_core::{
    BoxError,
    conn::{NoTlsReason, Tls},
    serve::{
        Accept, Accepted, HttpVersion, OpaqueConnection, Protocol, Retirement, Server,
        ServerConfig, shutdown,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};

use self::log_capture::Logs;

// Every test captures its thread's events, those that read none too:
// tracing caches whether a call site is wanted, and a test thread without
// a subscriber that reached it first could leave it off for another's.

const TIMEOUT: Duration = Duration::from_secs(10);
const GREETING: &[u8] = b"220 db ready\r\n";

fn config(protocol: Protocol) -> ServerConfig {
    ServerConfig {
        protocol,
        detect_timeout: TIMEOUT,
        ..ServerConfig::default()
    }
}

/// An opaque handler that is a server-speaks-first application: it greets
/// each connection, then echoes what it reads until the peer's end. Counts
/// the connections it was given.
fn greeting_app(
    served: Arc<AtomicUsize>,
) -> impl tower::Service<OpaqueConnection, Response = (), Error = std::io::Error, Future = impl Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |conn: OpaqueConnection| {
        served.fetch_add(1, Ordering::Relaxed);
        async move {
            let (mut read, mut write) = tokio::io::split(conn.io);
            write.write_all(GREETING).await?;
            tokio::io::copy(&mut read, &mut write).await?;
            write.shutdown().await
        }
    })
}

/// Serves `protocol` on a fresh listener with `accept`, the greeting
/// application as the opaque handler; its address and the count of
/// connections the application was given.
async fn serve_with<A: Accept<TcpStream>>(
    protocol: Protocol,
    accept: A,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let (trigger, shutdown) = shutdown::channel();
    // Serves for the rest of the test.
    std::mem::forget(trigger);
    let server = Server::new(config(protocol)).with_accept(accept);
    tokio::spawn(server.serve(
        listener,
        answering("http"),
        greeting_app(served.clone()),
        shutdown,
    ));
    (addr, served)
}

async fn serve(protocol: Protocol) -> (SocketAddr, Arc<AtomicUsize>) {
    serve_with(protocol, mesh_core::serve::PlaintextAccept).await
}

#[tokio::test(start_paused = true)]
async fn a_server_first_app_behind_a_detect_port_greets_after_the_timeout() {
    let (logs, _guard) = Logs::capture();
    let (addr, served) = serve(Protocol::Detect).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let start = Instant::now();

    // The client waits for the greeting; the port waits out detection,
    // then hands the connection to the application.
    let mut greeting = [0; GREETING.len()];
    tcp.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting, GREETING);
    assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());
    assert_eq!(served.load(Ordering::Relaxed), 1);

    // Then the application's protocol runs over it.
    tcp.write_all(b"HELO web\r\n").await.unwrap();
    let mut echo = [0; 10];
    tcp.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"HELO web\r\n");

    // Said once for the connection, at info, naming the peer once:
    // through the connection's span.
    let said = logs.find_at(tracing::Level::INFO, "protocol detection timed out");
    let [line] = said.as_slice() else {
        panic!("one event expected: {said:?}");
    };
    let span = format!("conn{{peer={peer} port={}}}: ", addr.port());
    assert!(line.starts_with(&span), "{line}");
    assert_eq!(line.matches("peer=").count(), 1, "{line}");
    assert!(line.contains("continuing as opaque"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn bytes_sent_before_the_timeout_reach_the_app_once() {
    let _logs = Logs::capture();
    let (addr, served) = serve(Protocol::Detect).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // A partial line that could still become a request line: detection
    // reads it and cannot decide.
    tcp.write_all(b"HELO par").await.unwrap();
    let mut greeting = [0; GREETING.len()];
    tcp.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting, GREETING);
    tcp.write_all(b"tial\r\n").await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut echo = Vec::new();
    tcp.read_to_end(&mut echo).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&echo), "HELO partial\r\n");
    assert_eq!(served.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unfinished_http2_preface_goes_on_as_opaque_too() {
    let _logs = Logs::capture();
    let (addr, _) = serve(Protocol::Detect).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // The client's end would decide (a peer that closes mid-preface is
    // not HTTP/2): it stays open until the application has greeted.
    let mut greeting = [0; GREETING.len()];
    tcp.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting, GREETING);
    tcp.shutdown().await.unwrap();
    let mut echo = Vec::new();
    tcp.read_to_end(&mut echo).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&echo), "PRI * HTTP/2.0\r\n");
}

#[tokio::test(start_paused = true)]
async fn an_http_only_port_still_closes_at_the_timeout() {
    let (logs, _guard) = Logs::capture();
    let (addr, served) = serve(Protocol::Http).await;
    for first in [&b""[..], b"GET /par"] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(first).await.unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        let _ = tcp.read_to_end(&mut got).await;
        assert!(got.is_empty(), "{first:?}: {got:?}");
        assert!(
            start.elapsed() >= TIMEOUT,
            "{first:?}: {:?}",
            start.elapsed()
        );
    }
    assert_eq!(served.load(Ordering::Relaxed), 0);
    // Why it was closed, in the connection's log line.
    let closed = logs.find("connection closed with an error");
    assert_eq!(closed.len(), 2, "{closed:?}");
    for line in closed {
        assert!(
            line.contains("protocol detection timed out after 10s on an HTTP-only port"),
            "{line}"
        );
    }
}

/// An accept hook whose ALPN chose HTTP/2, as mesh-tls reports it after a
/// handshake that negotiated `h2`.
#[derive(Clone, Copy)]
struct AlpnH2;

impl Accept<TcpStream> for AlpnH2 {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: Some(HttpVersion::Http2),
            retire: Retirement::never(),
        }))
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_chose_h2_and_sends_no_preface_is_still_closed() {
    let (logs, _guard) = Logs::capture();
    let (addr, served) = serve_with(Protocol::Detect, AlpnH2).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());
    assert_eq!(served.load(Ordering::Relaxed), 0);
    let closed = logs.find("connection closed with an error");
    let [line] = closed.as_slice() else {
        panic!("one event expected: {closed:?}");
    };
    assert!(line.contains("preface"), "{line}");
}
