//! A plaintext client of a server-speaks-first protocol (MySQL, SMTP) on a
//! port that detects TLS: it sends nothing, waiting for the server's
//! greeting. On an `opaque` port in `permissive` mode it is served as
//! plaintext once TLS detection times out; elsewhere it is closed then.
//! Real sockets on 127.0.0.1, the real server engine, tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    serve::{self, OpaqueConnection, Protocol, Server, ServerConfig},
};
use mesh_tls::{AcceptConfig, CredentialStore, InboundMode, TlsAccept};
use support::*;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    time::Instant,
};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A greeting-first application behind the port, as MySQL or SMTP: it
/// greets with how the mesh saw the client, then answers one line.
async fn greeter(conn: OpaqueConnection) -> Result<(), BoxError> {
    let seen = describe(Some(&conn.info));
    let mut io = BufReader::new(conn.io);
    io.write_all(format!("220 {seen}\r\n").as_bytes()).await?;
    io.flush().await?;
    let mut line = String::new();
    io.read_line(&mut line).await?;
    io.write_all(format!("250 {line}").as_bytes()).await?;
    io.flush().await?;
    Ok(())
}

struct Port {
    addr: SocketAddr,
    store: CredentialStore,
}

async fn port(protocol: Protocol, mode: InboundMode) -> Port {
    let ca = ca();
    port_with(store(&ca, API), protocol, mode).await
}

async fn port_with(store: CredentialStore, protocol: Protocol, mode: InboundMode) -> Port {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        protocol,
        detect_timeout: TIMEOUT,
        ..ServerConfig::default()
    };
    let accept = TlsAccept::new(
        store.clone(),
        AcceptConfig {
            mode,
            handshake_timeout: TIMEOUT,
            ..AcceptConfig::default()
        },
    );
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("http")))
    });
    let opaque = tower::service_fn(greeter);
    let (stop, shutdown) = serve::shutdown::channel();
    tokio::spawn(
        Server::new(config)
            .with_accept(accept)
            .serve(listener, http, opaque, shutdown),
    );
    // The server runs for the whole test.
    std::mem::forget(stop);
    Port { addr, store }
}

/// The first line the server sends, and when it came; empty when the
/// server closed the connection without one.
async fn greeting<I: AsyncRead + Unpin>(io: &mut BufReader<I>) -> (String, Duration) {
    let started = Instant::now();
    let mut line = String::new();
    // A reset counts as closed too.
    let _ = tokio::time::timeout(HOUR, io.read_line(&mut line))
        .await
        .expect("the server neither greeted nor closed");
    (line, started.elapsed())
}

async fn talk<I: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<I>) -> String {
    io.write_all(b"HELO web\r\n").await.unwrap();
    io.flush().await.unwrap();
    let mut line = String::new();
    io.read_line(&mut line).await.unwrap();
    line
}

#[tokio::test(start_paused = true)]
async fn a_silent_plaintext_client_of_an_opaque_permissive_port_is_greeted_at_the_timeout() {
    let port = port(Protocol::Opaque, InboundMode::Permissive).await;
    let mut tcp = BufReader::new(TcpStream::connect(port.addr).await.unwrap());
    let (line, after) = greeting(&mut tcp).await;
    assert_eq!(line, "220 plaintext no_tls_from_remote\r\n");
    assert_eq!(after, TIMEOUT);
    assert_eq!(talk(&mut tcp).await, "250 HELO web\r\n");
    // Not a failed handshake: nothing is counted.
    let metrics = encode(&port.store);
    assert!(!metrics.contains("reason=\"timeout\""), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn a_plaintext_client_that_speaks_first_is_served_at_once() {
    let port = port(Protocol::Opaque, InboundMode::Permissive).await;
    let mut tcp = BufReader::new(TcpStream::connect(port.addr).await.unwrap());
    let started = Instant::now();
    assert_eq!(talk(&mut tcp).await, "220 plaintext no_tls_from_remote\r\n");
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_meshed_client_of_an_opaque_permissive_port_is_greeted_at_once() {
    let ca = ca();
    let port = port_with(store(&ca, API), Protocol::Opaque, InboundMode::Permissive).await;
    let connector = connector(store(&ca, WEB), port.addr, API);
    let started = Instant::now();
    let uri = format!("http://{}/", port.addr).parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
    let mut io = BufReader::new(hyper_util::rt::TokioIo::new(io));
    let (line, _) = greeting(&mut io).await;
    assert_eq!(line, format!("220 mutual {WEB}\r\n"));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(talk(&mut io).await, "250 HELO web\r\n");
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_of_an_opaque_strict_port_is_closed_at_the_timeout() {
    let port = port(Protocol::Opaque, InboundMode::Strict).await;
    let mut tcp = BufReader::new(TcpStream::connect(port.addr).await.unwrap());
    let (line, after) = greeting(&mut tcp).await;
    assert_eq!(line, "");
    assert_eq!(after, TIMEOUT);
    let metrics = encode(&port.store);
    assert!(
        metrics
            .contains("tls_handshake_failures_total{direction=\"inbound\",reason=\"timeout\"} 1"),
        "{metrics}"
    );
}

/// As Linkerd's proxy: TLS detection on a port that detects its protocol
/// ends a client that sent nothing (`ServerTlsTimeoutError`).
#[tokio::test(start_paused = true)]
async fn a_silent_client_of_a_detect_permissive_port_is_closed_at_the_timeout() {
    for protocol in [Protocol::Detect, Protocol::Http] {
        let port = port(protocol, InboundMode::Permissive).await;
        let mut tcp = BufReader::new(TcpStream::connect(port.addr).await.unwrap());
        let (line, after) = greeting(&mut tcp).await;
        assert_eq!(line, "", "{protocol:?}");
        assert_eq!(after, TIMEOUT, "{protocol:?}");
    }
}

/// A record header's first bytes, then silence: a TLS client that stalled,
/// not a plaintext one waiting for a greeting.
#[tokio::test(start_paused = true)]
async fn a_client_that_stops_inside_a_tls_record_header_is_closed_at_the_timeout() {
    for start in [&[0x16][..], &[0x16, 0x03]] {
        let port = port(Protocol::Opaque, InboundMode::Permissive).await;
        let mut tcp = TcpStream::connect(port.addr).await.unwrap();
        tcp.write_all(start).await.unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let read = tcp.read_to_end(&mut buf).await;
        assert!(
            read.is_err() || buf.is_empty(),
            "{start:?}: {read:?} {buf:?}"
        );
        assert_eq!(started.elapsed(), TIMEOUT, "{start:?}");
    }
}
