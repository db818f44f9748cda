//! Steps of the tests that time a server on tokio's paused clock: the
//! clock is paused while the server's timers run, and goes only while a
//! step moves bytes over a socket, which the paused clock would jump
//! past.

use std::{future::Future, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};
use tower::Service;

/// Runs `step` with the clock going, and pauses it again. A step that
/// takes ten seconds waits for something that will not come.
pub(crate) async fn in_real_time<F: Future>(step: F) -> F::Output {
    tokio::time::resume();
    let out = tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .expect("the step did not end: the stream was cut?");
    tokio::time::pause();
    out
}

/// `lasted` is `expected`, give or take the real time the steps took.
/// On a loaded machine those take more than a tenth of a second; two
/// seconds still tell apart the wrong answers of tests whose timeouts
/// and steps are tens of seconds.
pub(crate) fn about(lasted: Duration, expected: Duration) {
    let slack = Duration::from_secs(2);
    assert!(
        lasted + slack >= expected && lasted <= expected + slack,
        "{lasted:?}, not {expected:?}"
    );
}

/// Serves `app` on a port of its own with `stream_idle_timeout`, until the
/// test's runtime ends; returns its address.
///
/// With no HTTP/2 keep-alive: a ping's answer is read over a socket, which
/// the paused clock jumps past, and its timeout would close the
/// connection. That pings do not count as activity is proven where frames
/// are read.
pub(crate) async fn serve_timed<S, B>(stream_idle_timeout: Option<Duration>, app: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        stream_idle_timeout,
        http2_keep_alive_interval: None,
        ..ServerConfig::default()
    };
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(async move {
        Server::new(config).serve_http(listener, app, signal).await;
        drop(trigger);
    });
    addr
}

/// Tells when it is dropped: held by a service's response body, it says
/// when the server let go of that body.
pub(crate) struct DropGuard(pub(crate) mpsc::UnboundedSender<Instant>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let _ = self.0.send(Instant::now());
    }
}

/// An h2 client connection to `addr` whose streams' initial window is
/// `window` bytes. The client is h2's own: its windows open only as the
/// test releases what it read, which hyper's client does on its own.
pub(crate) async fn h2_client(addr: SocketAddr, window: u32) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake(tcp)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send.ready().await.unwrap()
}

/// Sends a `GET` of `uri` on `send` and returns its response's body once
/// a `200` head is in.
pub(crate) async fn h2_get(send: &mut h2::client::SendRequest<Bytes>, uri: &str) -> h2::RecvStream {
    let req = Request::get(uri).body(()).unwrap();
    let (res, _) = send.send_request(req, true).unwrap();
    let res = res.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body()
}
