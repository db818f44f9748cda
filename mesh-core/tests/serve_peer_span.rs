//! Every line logged while a connection is served names its peer and the
//! port it came in on, through the connection's span,
//! `conn{peer=<addr> port=<port>}`: the accept hook's (a TLS handshake
//! refused), which is handed the stream alone and could not name the peer
//! itself, and a request's service's. The line said once a connection
//! closed with an error is in the span too, and names the peer once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::log_capture::Logs;

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::{body::Incoming, client::conn};
use hyper_util::rt::TokioIo;
use mesh_core::{
    BoxError,
    serve::{Accept, Accepted, Server, ServerConfig, shutdown},
};
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
};

/// An accept hook that refuses every connection, logging why as
/// mesh-tls's does: with no word of the peer, which it is not told.
#[derive(Clone)]
struct Refusing;

impl Accept<TcpStream> for Refusing {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, _: TcpStream) -> Self::Future {
        tracing::debug!(reason = "tls_plaintext", "inbound tls refused");
        ready(Err("plaintext refused".into()))
    }
}

/// A server whose service logs each request it answers.
async fn serve<A: Accept<TcpStream>>(accept: A) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let http = tower::service_fn(|req: Request<Incoming>| async move {
        tracing::info!(version = ?req.version(), "answering");
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let server = Server::new(ServerConfig::default()).with_accept(accept);
    tokio::spawn(server.serve_http(listener, http, signal));
    (addr, trigger)
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("http://a/").body(Empty::new()).unwrap()
}

#[tokio::test]
async fn a_refused_handshakes_line_names_the_peer_and_the_port() {
    let (lines, _guard) = Logs::capture();
    let (addr, _trigger) = serve(Refusing).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    // The server closes the connection it refused.
    assert_eq!(tcp.read(&mut [0; 1]).await.unwrap(), 0);

    let refused = lines.find("inbound tls refused");
    assert_eq!(
        refused,
        [format!(
            "conn{{peer={peer} port={}}}: inbound tls refused reason=\"tls_plaintext\"",
            addr.port()
        )]
    );
    // Said when the connection is done, in its span: the peer once.
    let closed = lines.find("connection closed with an error");
    let [line] = closed.as_slice() else {
        panic!("one line expected: {closed:?}");
    };
    assert_eq!(line.matches(&peer.to_string()).count(), 1, "{line}");
    assert!(line.contains(&format!("peer={peer}")), "{line}");
    assert!(line.contains("plaintext refused"), "{line}");
}

#[tokio::test]
async fn a_services_lines_name_the_peer() {
    let (lines, _guard) = Logs::capture();
    let (addr, _trigger) = serve(mesh_core::serve::PlaintextAccept).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let (mut send, conn) = conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    send.send_request(request()).await.unwrap();

    assert_eq!(
        lines.find("answering"),
        [format!(
            "conn{{peer={peer} port={}}}: answering version=HTTP/1.1",
            addr.port()
        )]
    );
}
