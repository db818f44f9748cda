//! A connection's retirement and close fall due by the store's clock, not
//! only by the tokio timers armed for them at the handshake.
//!
//! tokio's clock stands still while the machine sleeps (a suspended
//! laptop, a paused VM) and takes no notice of a wall clock stepped
//! forward, while the certificates that authenticated a connection expire
//! by the store's clock. Here the store's clock passes a certificate's
//! `notAfter` while tokio's stands still, as after a resume: the
//! connection is retired, and closed, within a minute of tokio's time,
//! not hours later when the timers armed for the certificate's lifetime
//! fire. That holds for client and server connections alike, and for an
//! opaque server connection, which is never drained and only closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    serve::{OpaqueConnection, Protocol, Server, ServerConfig, shutdown},
};
use mesh_tls::{AcceptConfig, CredentialStore, InboundMode, StoreConfig, TlsAccept};
use rustls_pki_types::ServerName;
use support::*;
use tokio::{io::AsyncReadExt, net::TcpStream, sync::Notify};
use validity::{TestClock, *};

/// A minute, the longest the timers wait before the store's clock is
/// read again, and a second to spare.
const RECHECK: Duration = Duration::from_secs(61);

#[tokio::test]
async fn a_client_connection_is_closed_within_a_minute_once_the_stores_clock_passes_its_expiry() {
    let pki = Pki::new();
    // The server's connection is accepted and held, never served: nothing
    // of the server's closes it.
    let server_store = pki.store(&TestClock::at(JAN_1), API);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = accept_one(
        listener,
        TlsAccept::new(server_store, AcceptConfig::with_mode(InboundMode::Strict)),
    );
    let clock = TestClock::at(JAN_1 + DAY / 2);
    let client_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    client_store
        .update(pki.creds(WEB, JAN_1, JAN_1 + DAY))
        .unwrap();
    let uri = format!("http://{addr}/").parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector(client_store, addr, API), uri)
        .await
        .unwrap();
    let _held = accepted.await.unwrap().unwrap();
    let mut io = hyper_util::rt::TokioIo::new(io);

    // Twelve hours were left at the handshake. The machine sleeps through
    // them: the store's clock passes the certificates' notAfter, tokio's
    // stands still.
    tokio::time::pause();
    clock.set(JAN_1 + DAY + 1);
    let read = tokio::time::timeout(
        RECHECK,
        tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1]),
    )
    .await
    .expect("still open a minute after its certificate expired by the store's clock");
    let error = read.expect_err("the connection's read succeeded");
    assert!(
        find::<mesh_tls::connect::ConnectionExpired>(&error).is_some(),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_connection_is_drained_within_a_minute_once_the_stores_clock_passes_its_retirement()
 {
    let ca = ca();
    let start = unix_now();
    let clock = TestClock::at(start);
    let server_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    server_store.update(creds(&ca, API)).unwrap();
    let arrived = Arc::new(Notify::new());
    let addr = serve_holding(server_store.clone(), arrived.clone()).await;
    let slow = request_held(&ca, addr, &arrived).await;

    // An hour was left at the handshake. All but ten seconds of it pass by
    // the store's clock, past the retirement 30 seconds before `notAfter`
    // but short of the close at it; none pass by tokio's.
    tokio::time::pause();
    clock.set(start + 3_600 - 10);
    tokio::time::sleep(RECHECK).await;
    assert!(
        retired_for_expiry(&server_store),
        "not drained a minute after its retirement by the store's clock: {}",
        encode(&server_store)
    );
    // Draining lets the request in flight finish.
    assert!(!slow.is_finished());
    slow.abort();
}

#[tokio::test]
async fn a_server_connection_in_use_is_closed_within_a_minute_once_the_stores_clock_passes_its_expiry()
 {
    let ca = ca();
    let clock = TestClock::at(unix_now());
    let server_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    server_store.update(creds(&ca, API)).unwrap();
    let arrived = Arc::new(Notify::new());
    let addr = serve_holding(server_store, arrived.clone()).await;
    // A request in flight: the drain waits for it, the close does not.
    let slow = request_held(&ca, addr, &arrived).await;

    // An hour was left at the handshake. Two pass by the store's clock,
    // none by tokio's.
    tokio::time::pause();
    clock.set(unix_now() + 2 * 3_600);
    let answered = tokio::time::timeout(RECHECK, slow)
        .await
        .expect("still open a minute after its certificate expired by the store's clock")
        .unwrap();
    assert!(
        answered.is_err(),
        "the held request was answered: {answered:?}"
    );
}

#[tokio::test]
async fn an_opaque_server_connection_is_closed_within_a_minute_once_the_stores_clock_passes_its_expiry()
 {
    let ca = ca();
    let clock = TestClock::at(unix_now());
    let server_store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    server_store.update(creds(&ca, API)).unwrap();
    let arrived = Arc::new(Notify::new());
    let addr = serve_opaque_holding(server_store, arrived.clone()).await;
    let mut tls = connect_as_web(&ca, addr).await;
    arrived.notified().await;

    // An opaque pipe is never drained: the close at `notAfter` is all the
    // retirement it gets. Two hours pass by the store's clock, none by
    // tokio's.
    tokio::time::pause();
    clock.set(unix_now() + 2 * 3_600);
    let read = tokio::time::timeout(RECHECK, tls.read(&mut [0u8; 1]))
        .await
        .expect("still open a minute after its certificate expired by the store's clock");
    assert!(!matches!(read, Ok(n) if n > 0), "{read:?}");
}

/// Seconds since the epoch by the system's clock: the CA issues by it.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A strict mTLS server on an opaque port whose handler notifies
/// `arrived` of each connection and holds it, never reading or writing.
async fn serve_opaque_holding(store: CredentialStore, arrived: Arc<Notify>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opaque = tower::service_fn(move |conn: OpaqueConnection| {
        let arrived = arrived.clone();
        async move {
            arrived.notify_one();
            let _held = conn;
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(())
        }
    });
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("not served")))
    });
    let (stop, signal) = shutdown::channel();
    let accept = TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Strict));
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        ..ServerConfig::default()
    };
    let server = Server::new(config).with_accept(accept);
    tokio::spawn(async move {
        server.serve(listener, http, opaque, signal).await;
        drop(stop);
    });
    addr
}

/// A TLS connection as `WEB`, with a certificate for an hour.
async fn connect_as_web(
    ca: &mesh_tls::ca::CertificateAuthority,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((web.chain_pem(), web.key_pem())),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// A strict mTLS server whose handler notifies `arrived` of each request
/// and never answers it.
async fn serve_holding(store: CredentialStore, arrived: Arc<Notify>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = tower::service_fn(move |_: Request<Incoming>| {
        let arrived = arrived.clone();
        async move {
            arrived.notify_one();
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
        }
    });
    let (stop, signal) = shutdown::channel();
    let accept = TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Strict));
    let server = Server::new(ServerConfig::default()).with_accept(accept);
    tokio::spawn(async move {
        server.serve_http(listener, handler, signal).await;
        drop(stop);
    });
    addr
}

/// Connects as `WEB` over mutual TLS and sends a request the handler
/// holds; returns once the handler has it.
async fn request_held(
    ca: &mesh_tls::ca::CertificateAuthority,
    addr: SocketAddr,
    arrived: &Notify,
) -> tokio::task::JoinHandle<Result<StatusCode, hyper::Error>> {
    let tls = connect_as_web(ca, addr).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send.ready().await.unwrap();
    let req = Request::get("/")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let slow = tokio::spawn(async move {
        let res = send.send_request(req).await?;
        let status = res.status();
        res.into_body().collect().await?;
        Ok(status)
    });
    arrived.notified().await;
    slow
}

fn retired_for_expiry(store: &CredentialStore) -> bool {
    encode(store).lines().any(|line| {
        line == "tls_connections_retired_total{direction=\"inbound\",reason=\"expiry\"} 1"
    })
}
