//! What the server logs when it closes a connection for an error: an
//! operator reading it must learn which listener, which peer, and why,
//! down to the cause (hyper's own message for an I/O error is only
//! "connection error").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::endless;
use crate::support::log_capture;

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

use self::{endless::Endless, log_capture::Logs};

#[tokio::test]
async fn a_connection_closed_for_an_error_is_logged_with_its_listener_peer_and_cause() {
    let (logs, _guard) = Logs::capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let dropped_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let http = tower::service_fn(move |_: Request<Incoming>| {
        let tx = dropped_tx.lock().unwrap().take();
        async move { Ok::<_, Infallible>(Response::new(Endless(tx))) }
    });
    let (_trigger, signal) = shutdown::channel();
    let server = Server::new(ServerConfig {
        write_stall_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    });
    tokio::spawn(server.serve_http(listener, http, signal));

    // A client that asks for the endless body and reads none of it.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let peer = conn.local_addr().unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::pause();
    tokio::time::timeout(Duration::from_secs(60), dropped)
        .await
        .expect("the connection was not cut")
        .unwrap();
    tokio::time::resume();

    let closed = logs.find("connection closed with an error");
    let [line] = closed.as_slice() else {
        panic!("one event expected: {closed:?}");
    };
    assert!(line.contains(&format!("local={addr}")), "{line}");
    assert!(line.contains(&format!("peer={peer}")), "{line}");
    assert!(
        line.contains("the peer read nothing for the write stall timeout"),
        "{line}"
    );
}
