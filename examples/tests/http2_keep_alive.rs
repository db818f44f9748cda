//! `server.http2_keep_alive_interval` and `_timeout` reach the sidecar's
//! listeners: a peer that opens HTTP/2 and then never answers a ping is
//! closed after the configured quiet time and wait, not the defaults'
//! thirty seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_silent_http2_peer_is_closed_after_the_configured_ping_timings() {
    let running = sidecar(
        "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  http2_keep_alive_interval: 100ms\n  http2_keep_alive_timeout: 100ms\n",
    );
    let mut peer = tokio::net::TcpStream::connect(running.outbound)
        .await
        .unwrap();
    peer.write_all(mesh_core::detect::H2_PREFACE).await.unwrap();
    let mut frame = [0; 9];
    peer.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame[3], 0x4, "the sidecar's SETTINGS");
    // With the defaults the peer would stay 30 s; the guard is far from
    // both.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut rest = Vec::new();
        let _ = peer.read_to_end(&mut rest).await;
    })
    .await;
    assert!(closed.is_ok(), "still open after 10 s");
    stop(running).await;
}
