//! Peers that hold a connection without doing their part: silent after
//! ALPN chose a protocol, or never reading what they asked for. Every such
//! connection is closed in bounded time, so none keeps its place under the
//! connection limit for ever. The clock is paused once traffic has settled,
//! so only the server's timers are pending when it jumps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    time::Duration,
};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    conn::{NoTlsReason, Tls},
    serve::{Accept, Accepted, HttpVersion, Retirement, Server, ServerConfig, shutdown},
};
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
    time::Instant,
};

/// Plaintext, reporting that ALPN settled on `version`, as a TLS accept
/// hook does once the handshake is over.
#[derive(Clone, Copy)]
struct Alpn(HttpVersion);

impl Accept<TcpStream> for Alpn {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: Some(self.0),
            retire: Retirement::never(),
        }))
    }
}

/// A server answering `ok`, whose accept hook reports `alpn`.
async fn alpn_server(alpn: HttpVersion, config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let (trigger, signal) = shutdown::channel();
    let server = Server::new(config).with_accept(Alpn(alpn));
    tokio::spawn(async move {
        server.serve_http(listener, http, signal).await;
        drop(trigger);
    });
    addr
}

/// How long `conn` stays open while its peer sends nothing, by the paused
/// clock; `None` when still open after an hour.
async fn lasts(conn: &mut TcpStream) -> Option<Duration> {
    tokio::time::pause();
    let start = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(3600), async {
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
    })
    .await;
    let lasted = closed.ok().map(|()| start.elapsed());
    tokio::time::resume();
    lasted
}

#[tokio::test]
async fn an_alpn_http2_peer_that_never_sends_the_preface_is_closed() {
    let config = ServerConfig::default();
    let detect_timeout = config.detect_timeout;
    let addr = alpn_server(HttpVersion::Http2, config).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    tokio::task::yield_now().await;
    let lasted = lasts(&mut conn).await.expect("open after an hour");
    assert!(
        lasted <= detect_timeout + Duration::from_secs(1),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn an_alpn_http1_peer_that_never_sends_a_request_is_closed() {
    let config = ServerConfig::default();
    let header_read_timeout = config.header_read_timeout;
    let addr = alpn_server(HttpVersion::Http1, config).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    tokio::task::yield_now().await;
    let lasted = lasts(&mut conn).await.expect("open after an hour");
    assert!(
        lasted <= header_read_timeout + Duration::from_secs(1),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn an_alpn_http2_peer_that_sends_the_preface_is_served() {
    let addr = alpn_server(HttpVersion::Http2, ServerConfig::default()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://a/")
        .body(http_body_util::Empty::new())
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 200);
}
