//! An HTTP/2 request is served on a task of its own, spawned by hyper for
//! its stream, not on the connection's: its service's lines are in the
//! connection's span all the same, `conn{peer=<addr> port=<port>}`, each
//! connection's in its own, as an HTTP/1 request's are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::log_capture::Logs;

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::{body::Incoming, client::conn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{PlaintextAccept, Server, ServerConfig, shutdown};
use tokio::net::{TcpListener, TcpStream};

/// A server whose service logs each request it answers, with its path.
async fn serve() -> (SocketAddr, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let http = tower::service_fn(|req: Request<Incoming>| async move {
        tracing::info!(path = req.uri().path(), version = ?req.version(), "answering");
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let server = Server::new(ServerConfig::default()).with_accept(PlaintextAccept);
    tokio::spawn(server.serve_http(listener, http, signal));
    (addr, trigger)
}

/// Sends `path` over a new HTTP/2 connection to `addr`; returns the
/// connection's local address, the peer the server sees.
async fn get_h2(addr: SocketAddr, path: &str) -> SocketAddr {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let (mut send, conn) = conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://a{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    peer
}

#[tokio::test]
async fn an_http2_requests_lines_are_in_its_connections_span() {
    let (logs, _guard) = Logs::capture();
    let (addr, _trigger) = serve().await;

    let first = get_h2(addr, "/first").await;
    let second = get_h2(addr, "/second").await;

    let port = addr.port();
    assert_eq!(
        logs.find("answering"),
        [
            format!("conn{{peer={first} port={port}}}: answering path=\"/first\" version=HTTP/2.0"),
            format!(
                "conn{{peer={second} port={port}}}: answering path=\"/second\" version=HTTP/2.0"
            ),
        ]
    );
}
