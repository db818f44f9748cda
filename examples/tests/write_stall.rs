//! `server.write_stall_timeout` reaches the sidecar's listeners: a client
//! that asks for an endless response and never reads it is closed once the
//! sidecar's writes have waited the configured time, not the default's
//! minute.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_client_that_never_reads_is_closed_after_the_configured_stall() {
    let (app, _gate) = backend().await;
    let running = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  write_stall_timeout: 200ms\n"
    ));
    let mut client = tokio::net::TcpStream::connect(running.inbound[0])
        .await
        .unwrap();
    // 1 TiB: far more than the app could send before the guard below ends,
    // so the response ends only if the sidecar closes the connection.
    client
        .write_all(b"GET /download?bytes=1099511627776 HTTP/1.1\r\nhost: app\r\n\r\n")
        .await
        .unwrap();
    // Read nothing while the socket buffers fill and the stall runs out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        let mut sink = [0; 64 * 1024];
        let mut read = 0usize;
        loop {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break read,
                Ok(n) => read += n,
            }
        }
    })
    .await;
    let read = ended.expect("the response still flows: the stalled connection was not closed");
    assert!(read > 0, "the response had started before the stall");
    stop(running).await;
}
