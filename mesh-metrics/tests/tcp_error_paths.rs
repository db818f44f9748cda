//! Transport metrics on the paths where a connection ends badly or early,
//! over real sockets on 127.0.0.1: the gauge of open connections comes
//! back to zero on every one of them, a connection is counted even when
//! its accept hook fails or is dropped mid-handshake, and the bytes the server read
//! to detect a protocol, then replayed, are counted once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, future::Future, pin::Pin, time::Duration};

use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    io::Io,
    serve::{Accept, Accepted, PlaintextAccept, Protocol, Server, ServerConfig, shutdown},
};
use mesh_metrics::{TcpAccept, TcpMetrics};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::service_fn;

const INBOUND: &str =
    "direction=\"inbound\",peer=\"src\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"";

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// The value of `series` (name and labels), if the scrape has it.
fn value(text: &str, series: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?;
    Some(line.rsplit(' ').next()?.parse().unwrap())
}

/// Lets the server's tasks run until `done` holds of a scrape. The server
/// ends a connection after the client may already have seen its end (a
/// FIN is sent before the stream is dropped), so the test waits for the
/// count rather than for the socket.
async fn until(registry: &Registry, done: impl Fn(&str) -> bool) -> String {
    loop {
        let text = scrape(registry);
        if done(&text) {
            return text;
        }
        tokio::task::yield_now().await;
    }
}

/// Asserts that `text` counts one inbound connection, opened and closed
/// with no error, that read `read` bytes.
fn opened_and_closed_cleanly(text: &str, read: u64) {
    assert_eq!(
        value(text, &format!("tcp_open_total{{{INBOUND}}}")),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value(text, &format!("tcp_open_connections{{{INBOUND}}}")),
        Some(0),
        "{text}"
    );
    assert_eq!(
        value(text, &format!("tcp_close_total{{{INBOUND},errno=\"\"}}")),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value(text, &format!("tcp_read_bytes_total{{{INBOUND}}}")),
        Some(read),
        "{text}"
    );
}

fn closed(text: &str) -> bool {
    value(text, &format!("tcp_open_connections{{{INBOUND}}}")) == Some(0)
}

async fn server<A>(
    registry: &mut Registry,
    config: ServerConfig,
    inner: A,
) -> (
    std::net::SocketAddr,
    shutdown::ShutdownTrigger,
    tokio::task::JoinHandle<()>,
)
where
    A: Accept<mesh_metrics::tcp::CountingIo<TcpStream>>,
{
    let tcp = TcpMetrics::register(registry);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let http = service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(bytes::Bytes::from_static(b"hi"))))
    });
    let task = tokio::spawn(
        Server::new(config)
            .with_accept(TcpAccept::inbound(&tcp, inner))
            .serve_http(listener, http, signal),
    );
    (addr, trigger, task)
}

/// An accept hook that reads the first bytes, as a TLS handshake reads a
/// ClientHello, and then fails, as a handshake fails.
#[derive(Clone)]
struct FailingHandshake;

impl<I: Io> Accept<I> for FailingHandshake {
    type Io = I;
    type Future = Pin<Box<dyn Future<Output = Result<Accepted<I>, BoxError>> + Send>>;

    fn accept(&self, mut io: I) -> Self::Future {
        Box::pin(async move {
            let mut hello = [0; 5];
            io.read_exact(&mut hello).await?;
            Err("handshake failed".into())
        })
    }
}

#[tokio::test]
async fn a_connection_whose_handshake_fails_is_counted_open_and_closed() {
    let mut registry = Registry::default();
    let (addr, trigger, task) =
        server(&mut registry, ServerConfig::default(), FailingHandshake).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"\x16\x03\x01\x00\x05").await.unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest).await;
    // The server's drain waits for its connections' tasks: every count is
    // in once it returns.
    trigger.trigger();
    task.await.unwrap();
    // It was accepted and carried bytes: counted, under the label of a
    // connection that established no TLS session, open no longer.
    let text = scrape(&registry);
    assert_eq!(
        value(&text, &format!("tcp_close_total{{{INBOUND},errno=\"\"}}")),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("tcp_open_total{{{INBOUND}}}")),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("tcp_open_connections{{{INBOUND}}}")),
        Some(0),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("tcp_read_bytes_total{{{INBOUND}}}")),
        Some(5),
        "{text}"
    );
}

/// An accept hook that reads the start of a hello, says so, and waits for
/// the rest for ever, as a TLS handshake waits on a peer gone quiet.
#[derive(Clone)]
struct StalledHandshake(tokio::sync::mpsc::UnboundedSender<()>);

impl<I: Io> Accept<I> for StalledHandshake {
    type Io = I;
    type Future = Pin<Box<dyn Future<Output = Result<Accepted<I>, BoxError>> + Send>>;

    fn accept(&self, mut io: I) -> Self::Future {
        let started = self.0.clone();
        Box::pin(async move {
            let mut hello = [0; 2];
            io.read_exact(&mut hello).await?;
            let _ = started.send(());
            std::future::pending::<()>().await;
            Err("unreachable".into())
        })
    }
}

#[tokio::test]
async fn a_connection_dropped_mid_handshake_is_counted_open_then_closed() {
    let mut registry = Registry::default();
    let (started, mut handshaking) = tokio::sync::mpsc::unbounded_channel();
    let (addr, trigger, task) = server(
        &mut registry,
        ServerConfig::default(),
        StalledHandshake(started),
    )
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"\x16\x03").await.unwrap();
    handshaking.recv().await.unwrap();
    // The shutdown drops the hook's future with its handshake unfinished.
    trigger.trigger();
    task.await.unwrap();
    let text = scrape(&registry);
    opened_and_closed_cleanly(&text, 2);
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn a_connection_closed_at_the_detection_timeout_is_counted_closed() {
    let mut registry = Registry::default();
    let config = ServerConfig {
        protocol: Protocol::Http,
        detect_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let (addr, trigger, task) = server(&mut registry, config, PlaintextAccept).await;
    // A client that sends nothing: the HTTP-only port gives up on it.
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest).await;
    let text = until(&registry, closed).await;
    assert_eq!(
        value(&text, &format!("tcp_open_total{{{INBOUND}}}")),
        Some(1)
    );
    assert_eq!(
        value(&text, &format!("tcp_close_total{{{INBOUND},errno=\"\"}}")),
        Some(1),
        "{text}"
    );
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_client_that_resets_is_counted_closed_with_econnreset() {
    let mut registry = Registry::default();
    let (addr, trigger, task) =
        server(&mut registry, ServerConfig::default(), PlaintextAccept).await;
    let client = TcpStream::connect(addr).await.unwrap();
    // Half a request head, so that the server waits for the rest, then a
    // reset (linger 0).
    let mut client = client;
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // Counted open once the server took the connection in: the reset must
    // reach a counted connection.
    until(&registry, |text| {
        value(text, &format!("tcp_open_connections{{{INBOUND}}}")) == Some(1)
    })
    .await;
    client.set_zero_linger().unwrap();
    drop(client);
    let text = until(&registry, closed).await;
    assert_eq!(
        value(
            &text,
            &format!("tcp_close_total{{{INBOUND},errno=\"ECONNRESET\"}}")
        ),
        Some(1),
        "{text}"
    );
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_client_that_resets_before_its_connection_is_served_is_counted() {
    let mut registry = Registry::default();
    // One place: a second connection is accepted, then waits for it.
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let (addr, trigger, task) = server(&mut registry, config, PlaintextAccept).await;
    let first = TcpStream::connect(addr).await.unwrap();
    until(&registry, |text| {
        value(text, &format!("tcp_open_connections{{{INBOUND}}}")) == Some(1)
    })
    .await;
    // The second resets while it waits: its socket no longer has a peer
    // address to ask for, but it was accepted all the same.
    let second = TcpStream::connect(addr).await.unwrap();
    second.set_zero_linger().unwrap();
    drop(second);
    drop(first);
    // A third is served only once the second is done with the place.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    third.read_to_end(&mut response).await.unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
    trigger.trigger();
    task.await.unwrap();
    let text = scrape(&registry);
    assert_eq!(
        value(&text, &format!("tcp_open_total{{{INBOUND}}}")),
        Some(3),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("tcp_close_total{{{INBOUND},errno=\"ECONNRESET\"}}")
        ),
        Some(1),
        "{text}"
    );
    assert!(closed(&text), "{text}");
}

#[tokio::test]
async fn bytes_read_to_detect_the_protocol_are_counted_once() {
    let mut registry = Registry::default();
    let (addr, trigger, task) =
        server(&mut registry, ServerConfig::default(), PlaintextAccept).await;
    let request: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(request).await.unwrap();
    let mut response = Vec::new();
    client.read_to_end(&mut response).await.unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
    let text = until(&registry, closed).await;
    // Exactly what went over the wire, each way: the bytes the server
    // peeked at to tell HTTP/1 and then replayed to hyper are not counted
    // a second time.
    assert_eq!(
        value(&text, &format!("tcp_read_bytes_total{{{INBOUND}}}")),
        Some(request.len() as u64),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("tcp_write_bytes_total{{{INBOUND}}}")),
        Some(response.len() as u64),
        "{text}"
    );
    trigger.trigger();
    task.await.unwrap();
}

/// An accept hook that reads a hello and answers one, as a TLS handshake
/// does, then hands the connection on as plaintext.
#[derive(Clone)]
struct Handshake;

impl<I: Io> Accept<I> for Handshake {
    type Io = I;
    type Future = Pin<Box<dyn Future<Output = Result<Accepted<I>, BoxError>> + Send>>;

    fn accept(&self, mut io: I) -> Self::Future {
        Box::pin(async move {
            let mut hello = [0; 5];
            io.read_exact(&mut hello).await?;
            io.write_all(b"hey").await?;
            Ok(Accepted {
                io,
                tls: mesh_core::conn::Tls::Plaintext(
                    mesh_core::conn::NoTlsReason::NotProvidedByRemote,
                ),
                alpn: None,
                retire: mesh_core::serve::Retirement::never(),
            })
        })
    }
}

#[tokio::test]
async fn the_handshake_bytes_are_counted_as_soon_as_the_connection_is_open() {
    let mut registry = Registry::default();
    let (addr, trigger, task) = server(&mut registry, ServerConfig::default(), Handshake).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut answer = [0; 3];
    client.read_exact(&mut answer).await.unwrap();
    // The connection is open and idle: the bytes of its handshake are
    // counted now, not at its next read or write, which may never come.
    let text = until(&registry, |text| {
        value(text, &format!("tcp_open_connections{{{INBOUND}}}")) == Some(1)
    })
    .await;
    assert_eq!(
        value(&text, &format!("tcp_read_bytes_total{{{INBOUND}}}")),
        Some(5),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("tcp_write_bytes_total{{{INBOUND}}}")),
        Some(3),
        "{text}"
    );
    drop(client);
    trigger.trigger();
    task.await.unwrap();
}

/// Accepts one connection on a fresh listener with `hook` under
/// [`TcpAccept`], after `client` did what it does with its end; returns the
/// accepted result, still held.
async fn accept_one<A, F>(
    registry: &mut Registry,
    hook: A,
    client: impl FnOnce(TcpStream) -> F,
) -> Result<Accepted<A::Io>, BoxError>
where
    A: Accept<mesh_metrics::tcp::CountingIo<TcpStream>>,
    F: Future<Output = ()>,
{
    let tcp = TcpMetrics::register(registry);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    client(TcpStream::connect(addr).await.unwrap()).await;
    let (stream, _) = listener.accept().await.unwrap();
    TcpAccept::inbound(&tcp, hook).accept(stream).await
}

/// A hook whose handshake read fails on the socket, and which hands the
/// stream on all the same, as a lenient handshake would.
#[derive(Clone)]
struct IgnoresItsError;

impl<I: Io> Accept<I> for IgnoresItsError {
    type Io = I;
    type Future = Pin<Box<dyn Future<Output = Result<Accepted<I>, BoxError>> + Send>>;

    fn accept(&self, mut io: I) -> Self::Future {
        Box::pin(async move {
            let mut hello = [0; 5];
            let read = io.read(&mut hello).await;
            assert_eq!(
                read.unwrap_err().kind(),
                std::io::ErrorKind::ConnectionReset
            );
            Ok(Accepted {
                io,
                tls: mesh_core::conn::Tls::Plaintext(
                    mesh_core::conn::NoTlsReason::NotProvidedByRemote,
                ),
                alpn: None,
                retire: mesh_core::serve::Retirement::never(),
            })
        })
    }
}

#[tokio::test]
async fn a_stream_that_failed_in_its_handshake_is_counted_closed_when_its_hook_succeeds() {
    let mut registry = Registry::default();
    let accepted = accept_one(&mut registry, IgnoresItsError, |client| async move {
        client.set_zero_linger().unwrap();
        drop(client);
    })
    .await
    .unwrap();
    // The stream is still held, but it died in the handshake: it is not an
    // open connection, and its close carries the handshake's error.
    let text = scrape(&registry);
    assert_eq!(
        value(&text, &format!("tcp_open_total{{{INBOUND}}}")),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("tcp_open_connections{{{INBOUND}}}")),
        Some(0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("tcp_close_total{{{INBOUND},errno=\"ECONNRESET\"}}")
        ),
        Some(1),
        "{text}"
    );
    // Dropping it counts nothing more.
    drop(accepted);
    let text = scrape(&registry);
    assert_eq!(
        value(&text, &format!("tcp_open_connections{{{INBOUND}}}")),
        Some(0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("tcp_close_total{{{INBOUND},errno=\"ECONNRESET\"}}")
        ),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("tcp_close_total{{{INBOUND},errno=\"\"}}")),
        Some(0),
        "{text}"
    );
}

/// A hook that reads a hello, drops the stream and still reports success,
/// handing on a stream of its own.
#[derive(Clone)]
struct DropsTheStream;

impl<I: Io> Accept<I> for DropsTheStream {
    type Io = tokio::io::DuplexStream;
    type Future =
        Pin<Box<dyn Future<Output = Result<Accepted<tokio::io::DuplexStream>, BoxError>> + Send>>;

    fn accept(&self, mut io: I) -> Self::Future {
        Box::pin(async move {
            let mut hello = [0; 5];
            io.read_exact(&mut hello).await?;
            drop(io);
            Ok(Accepted {
                io: tokio::io::duplex(16).0,
                tls: mesh_core::conn::Tls::Plaintext(
                    mesh_core::conn::NoTlsReason::NotProvidedByRemote,
                ),
                alpn: None,
                retire: mesh_core::serve::Retirement::never(),
            })
        })
    }
}

#[tokio::test]
async fn a_stream_its_hook_dropped_is_counted_closed_clean_with_its_bytes() {
    let mut registry = Registry::default();
    let accepted = accept_one(&mut registry, DropsTheStream, |mut client| async move {
        client.write_all(b"hello").await.unwrap();
    })
    .await
    .unwrap();
    // The connection is gone though the hook succeeded: opened and closed,
    // cleanly, with the bytes it read.
    let text = scrape(&registry);
    opened_and_closed_cleanly(&text, 5);
    drop(accepted);
    let text = scrape(&registry);
    assert_eq!(
        value(&text, &format!("tcp_close_total{{{INBOUND},errno=\"\"}}")),
        Some(1),
        "{text}"
    );
}
