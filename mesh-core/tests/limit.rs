//! A `ConnectionLimit` shared by two servers: their connections together
//! stay within it, and a connection to one waits while the other holds
//! the last place.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{ConnectionLimit, Protocol, Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A server answering `ok` under `limit`.
async fn server(limit: &ConnectionLimit, shutdown: shutdown::Shutdown) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let config = ServerConfig {
        protocol: Protocol::Http,
        // Ignored: the shared limit decides.
        max_connections: 100,
        shared_limit: Some(limit.clone()),
        ..ServerConfig::default()
    };
    tokio::spawn(Server::new(config).serve_http(listener, http, shutdown));
    addr
}

/// Sends a keep-alive GET on `conn` and reads until the `ok` body.
async fn get(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 512];
    while !got.ends_with(b"ok") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn two_servers_under_one_limit_serve_its_number_of_connections_together() {
    let limit = ConnectionLimit::new(1);
    let (trigger, shutdown) = shutdown::channel();
    let a = server(&limit, shutdown.clone()).await;
    let b = server(&limit, shutdown).await;

    let mut to_a = TcpStream::connect(a).await.unwrap();
    assert!(get(&mut to_a).await.starts_with("HTTP/1.1 200"));
    assert_eq!(limit.available(), 0, "the connection to a holds the place");

    // The kernel takes the connection to b, but b may not serve it while
    // a's connection holds the only place.
    let waiting = tokio::spawn(async move {
        let mut to_b = TcpStream::connect(b).await.unwrap();
        get(&mut to_b).await
    });
    let early = tokio::time::timeout(Duration::from_millis(300), async {
        while !waiting.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        early.is_err(),
        "b served a connection past the shared limit"
    );

    // Closing a's connection gives b the place.
    drop(to_a);
    assert!(waiting.await.unwrap().starts_with("HTTP/1.1 200"));
    trigger.trigger();
}

#[test]
fn a_limit_is_at_least_one() {
    assert_eq!(ConnectionLimit::new(0).available(), 1);
    assert_eq!(ConnectionLimit::new(7).available(), 7);
}
