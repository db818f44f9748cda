//! Opaque TCP through a server and a `ForwardTcp`, when one side fails
//! while the other still has bytes on their way: what was already sent
//! before the failure still arrives. An endpoint that answers and closes
//! while the client is still sending resets the connection (its kernel
//! does, for the bytes it left unread), and a client talking to it
//! directly would still read the answer; through the proxy it must too.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use mesh_core::{
    client::ClientConfig,
    proxy::ForwardTcp,
    serve::{Protocol, Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// An opaque server forwarding to `endpoint`.
async fn proxy(endpoint: SocketAddr) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let mut connector = ClientConfig::default().http_connector();
    connector.enforce_http(false);
    let forward = ForwardTcp::new(connector, [endpoint]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        ..ServerConfig::default()
    };
    let http = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("")))
    });
    tokio::spawn(Server::new(config).serve(listener, http, forward, shutdown));
    (addr, trigger)
}

/// Reads what `conn` receives until it ends, by a close or a reset.
async fn read_until_the_end(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the connection never ended");
        match read {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

// One thread: the proxy's task runs only while the test waits, so that
// the client's last bytes and the endpoint's reset are both there when it
// next looks.
#[tokio::test(flavor = "current_thread")]
async fn an_endpoints_answer_before_its_reset_reaches_a_client_still_sending() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, _trigger) = proxy(listener.local_addr().unwrap()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"hello").await.unwrap();
    let (mut endpoint, _) = listener.accept().await.unwrap();
    let mut hello = [0; 5];
    endpoint.read_exact(&mut hello).await.unwrap();

    // The client sends more, which the endpoint leaves unread.
    conn.write_all(b"x").await.unwrap();
    let mut peek = [0; 1];
    endpoint.peek(&mut peek).await.unwrap();
    // It answers and closes: with a byte unread, its kernel resets the
    // connection right after the answer.
    endpoint.write_all(b"bye").await.unwrap();
    drop(endpoint);
    // The client is still sending when the proxy next looks.
    conn.write_all(b"more").await.unwrap();

    assert_eq!(read_until_the_end(&mut conn).await, b"bye");
}
