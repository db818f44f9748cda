//! `/tap` served by mesh-core's admin server on a real socket: what a
//! client that opens a tap sees when the server shuts down, and what
//! becomes of the tap when the client goes away.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::Request;
use mesh_core::{
    admin::{Admin, Readiness},
    body::BoxBody,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_metrics::tap::Tap;
use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tower::service_fn;

/// How long the admin server lets requests run after shutdown starts: far
/// longer than any test waits.
const GRACE: Duration = Duration::from_secs(3600);

/// An admin server whose extension serves `tap` at `/tap`, stopped by
/// `signal`.
async fn admin(tap: &Tap, signal: shutdown::Shutdown) -> (SocketAddr, JoinHandle<()>) {
    let extension = {
        let tap = tap.clone();
        service_fn(move |req: Request<BoxBody>| {
            let res = tap.serve(&req);
            async move { Ok::<_, Infallible>(res) }
        })
    };
    let admin = Admin::new(Registry::default(), Readiness::new()).with_extension(extension);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        shutdown_grace: GRACE,
        ..ServerConfig::default()
    };
    let server = tokio::spawn(Server::new(config).serve_http(listener, admin, signal));
    (addr, server)
}

/// Opens a tap over HTTP/1 and reads its response head.
async fn open_tap(addr: SocketAddr) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /tap HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0; 1024];
        let n = tcp.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "the server closed before the head: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    (tcp, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(start_paused = true)]
async fn an_open_tap_ends_when_the_admin_server_shuts_down() {
    let (trigger, signal) = shutdown::channel();
    let tap = Tap::new().with_shutdown(signal.clone());
    let (addr, server) = admin(&tap, signal).await;
    let (mut tcp, head) = open_tap(addr).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(tap.open(), 1);

    // An operator's tap stays open while the sidecar stops: the server
    // must not wait its grace period for a stream that never ends.
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the admin server drained without waiting for the tap")
        .unwrap();
    assert_eq!(tap.open(), 0);
    // The client saw the stream end, not a cut connection.
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).await.unwrap();
    assert!(rest.ends_with(b"0\r\n\r\n"), "{rest:?}");
}

#[tokio::test(start_paused = true)]
async fn a_tap_opened_during_shutdown_is_refused() {
    let (trigger, signal) = shutdown::channel();
    let tap = Tap::new().with_shutdown(signal);
    trigger.trigger();
    let from_loopback = {
        let mut req = Request::get("/tap").body(()).unwrap();
        req.headers_mut()
            .insert(http::header::HOST, "127.0.0.1:4191".parse().unwrap());
        req.extensions_mut()
            .insert(mesh_core::conn::ConnectionInfo::plaintext(
                "127.0.0.1:4191".parse().unwrap(),
                "127.0.0.1:50000".parse().unwrap(),
            ));
        req
    };
    let res = tap.serve(&from_loopback);
    assert_eq!(res.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(tap.open(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_frees_its_place() {
    let (_trigger, signal) = shutdown::channel();
    let tap = Tap::new();
    let (addr, _server) = admin(&tap, signal).await;
    // More clients than there are places, one after the other, each gone
    // before the next: none is refused.
    for _ in 0..mesh_metrics::tap::MAX_TAPS + 4 {
        let (tcp, head) = open_tap(addr).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        drop(tcp);
        for _ in 0..1000 {
            if tap.open() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(tap.open(), 0, "the server closed the tap of a gone client");
    }
}
