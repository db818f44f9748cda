//! A sidecar with an open tap still shuts down without waiting out its
//! grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn an_open_tap_does_not_hold_the_sidecars_shutdown() {
    let app = ok_app(false).await;
    let sidecar = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n  shutdown_grace: 1h\n"
    ));
    let admin = sidecar.admin;
    let mut tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    tcp.write_all(format!("GET /tap HTTP/1.1\r\nhost: {admin}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    sidecar.shutdown();
    let joined = tokio::task::spawn_blocking(move || sidecar.join());
    tokio::time::timeout(Duration::from_secs(20), joined)
        .await
        .expect("the sidecar stopped with a tap open")
        .unwrap();
}
