//! Peers that hold a connection without doing their part: silent after
//! ALPN chose a protocol, never reading what they asked for, or gone
//! without a FIN. Every such connection is closed in bounded time, so none
//! keeps its place under the connection limit for ever. The clock is
//! paused once traffic has settled, so only the server's timers are
//! pending when it jumps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::endless;

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

use self::endless::Endless;

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
async fn an_http1_connection_idle_after_its_request_is_closed() {
    // The header read timeout runs again while a keep-alive connection
    // waits for its next request: an idle connection does not keep its
    // place for ever.
    let config = ServerConfig::default();
    let header_read_timeout = config.header_read_timeout;
    let addr = alpn_server(HttpVersion::Http1, config).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut conn, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok") {
        let mut buf = [0; 256];
        let n = conn.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed before the answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
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

/// How long a server built by `server` keeps writing to a client that
/// asked for an endless response and reads none of it, by the paused
/// clock.
async fn unread_response_lasts(server: Server) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let dropped_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let http = tower::service_fn(move |_: Request<Incoming>| {
        let tx = dropped_tx.lock().unwrap().take();
        async move { Ok::<_, Infallible>(Response::new(Endless(tx))) }
    });
    let (_trigger, signal) = shutdown::channel();
    tokio::spawn(server.serve_http(listener, http, signal));

    let mut conn = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut conn, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    // The paused clock moves only once the runtime is idle: once the
    // server has filled the socket buffers and its writes wait.
    tokio::time::pause();
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(3600), dropped)
        .await
        .expect("the server still writes to a peer that has read nothing for an hour")
        .unwrap();
    let lasted = start.elapsed();
    tokio::time::resume();
    drop(conn);
    lasted
}

#[tokio::test]
async fn an_http1_client_that_never_reads_its_response_is_closed() {
    let lasted = unread_response_lasts(Server::new(ServerConfig::default())).await;
    let bound = mesh_core::serve::WRITE_STALL_TIMEOUT;
    assert!(
        (bound - Duration::from_secs(1)..=bound + Duration::from_secs(1)).contains(&lasted),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn the_write_stall_timeout_is_the_configured_one() {
    let server = Server::new(ServerConfig {
        write_stall_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    });
    let lasted = unread_response_lasts(server).await;
    assert!(
        (Duration::from_millis(4900)..=Duration::from_millis(5100)).contains(&lasted),
        "{lasted:?}"
    );
}

/// Reports the TCP keepalive settings of each connection it is handed.
#[derive(Clone)]
struct KeepaliveProbe(tokio::sync::mpsc::UnboundedSender<Option<(Duration, Duration, u32)>>);

impl Accept<TcpStream> for KeepaliveProbe {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        let sock = socket2::SockRef::from(&io);
        let settings = sock.keepalive().unwrap().then(|| {
            (
                sock.tcp_keepalive_time().unwrap(),
                sock.tcp_keepalive_interval().unwrap(),
                sock.tcp_keepalive_retries().unwrap(),
            )
        });
        self.0.send(settings).unwrap();
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: None,
            retire: Retirement::never(),
        }))
    }
}

#[tokio::test]
async fn a_peer_that_vanishes_without_a_fin_is_probed() {
    // An opaque pipe or a tunnel has no timer of its own: were its peer's
    // host to die, or the network to drop it, without a FIN, only TCP
    // keepalive would notice and free its place. Linkerd probes after
    // 10 s of quiet too.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let (_trigger, signal) = shutdown::channel();
    let server = Server::new(ServerConfig::default()).with_accept(KeepaliveProbe(tx));
    tokio::spawn(server.serve_http(listener, http, signal));
    let _conn = TcpStream::connect(addr).await.unwrap();
    let (idle, interval, retries) = seen.recv().await.unwrap().expect("no TCP keepalive");
    assert_eq!(idle, Duration::from_secs(10));
    assert_eq!(interval, Duration::from_secs(10));
    assert_eq!(retries, 3);
}
