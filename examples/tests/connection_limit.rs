//! `server.max_connections` bounds the proxy listeners together, across
//! runtimes, and the admin listener keeps a limit of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Sends a keep-alive GET for `path` with `host` on `conn`, and reads
/// until its body: the app's `ok`, or the admin's `live`.
async fn get(conn: &mut TcpStream, path: &str, host: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 512];
    while !got.ends_with(b"ok") && !got.ends_with(b"live\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// The same on a new connection to `addr`.
async fn connect_and_get(addr: SocketAddr, path: &str, host: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    get(&mut conn, path, host).await
}

#[tokio::test]
async fn one_place_is_shared_by_the_inbound_and_outbound_listeners() {
    let app = ok_app(false).await;
    let sidecar = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: web\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n  max_connections: 1\n"
    ));

    // A keep-alive connection to the inbound listener takes the place.
    let mut inbound = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    assert!(
        get(&mut inbound, "/", "web")
            .await
            .starts_with("HTTP/1.1 200")
    );

    // One to the outbound listener waits, whichever runtime takes it...
    let outbound = sidecar.outbound;
    let waiting = tokio::spawn(async move { connect_and_get(outbound, "/", "web").await });
    let early = tokio::time::timeout(Duration::from_millis(300), async {
        while !waiting.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(early.is_err(), "the outbound listener went past the limit");

    // ...while the admin listener, with its own limit, answers.
    let live = connect_and_get(sidecar.admin, "/live", "admin").await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");

    // Closing the inbound connection gives the outbound one the place.
    drop(inbound);
    assert!(waiting.await.unwrap().starts_with("HTTP/1.1 200"));
    stop(sidecar).await;
}
