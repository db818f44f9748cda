//! `ServerConfig::max_connections` is per listener: clones of one server
//! serving two listeners serve that many on each, as the docs say; a
//! shared `ConnectionLimit` is what bounds them together.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{ConnectionLimit, Protocol, Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

async fn listen(server: &Server, signal: &shutdown::Shutdown) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    tokio::spawn(server.clone().serve_http(listener, http, signal.clone()));
    addr
}

/// Whether a keep-alive GET on a new connection to `addr` is answered
/// within a second; the connection is kept open either way.
async fn served(addr: SocketAddr, open: &mut Vec<TcpStream>) -> bool {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 64];
    let answered = tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf))
        .await
        .is_ok_and(|n| n.unwrap() > 0);
    open.push(conn);
    answered
}

#[tokio::test(start_paused = true)]
async fn each_listener_has_its_own_max_connections_unless_a_limit_is_shared() {
    let (_trigger, signal) = shutdown::channel();
    let own = Server::new(ServerConfig {
        protocol: Protocol::Http,
        max_connections: 1,
        ..ServerConfig::default()
    });
    let (a, b) = (listen(&own, &signal).await, listen(&own, &signal).await);
    let mut open = Vec::new();
    assert!(served(a, &mut open).await);
    assert!(served(b, &mut open).await, "b has a place of its own");
    assert!(!served(a, &mut open).await, "a's one place is taken");

    let shared = Server::new(ServerConfig {
        protocol: Protocol::Http,
        shared_limit: Some(ConnectionLimit::new(1)),
        ..ServerConfig::default()
    });
    let (c, d) = (
        listen(&shared, &signal).await,
        listen(&shared, &signal).await,
    );
    assert!(served(c, &mut open).await);
    assert!(!served(d, &mut open).await, "c holds the only shared place");
}
