//! The admin port's HTTP/2 connections carry a handful of streams at once.
//!
//! hyper's default, 200 streams a connection, lets one peer within its 16
//! connections have 3,200 `/metrics` answers encoded and held in memory
//! while it grants them no flow-control window. Probes and scrapes need a
//! few streams; Linkerd's admin server speaks HTTP/1 only, one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most streams the admin server lets one HTTP/2 connection open.
const ADMIN_MAX_STREAMS: u32 = 8;

/// SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2).
const MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// The settings of the server's first SETTINGS frame on a connection to
/// `addr`, which RFC 9113 §3.4 says comes first, as `(id, value)` pairs.
async fn server_settings(addr: std::net::SocketAddr) -> Vec<(u16, u32)> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The preface, and an empty SETTINGS frame of the client's own.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut head = [0; 9];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(head[3], 0x4, "the server's first frame is SETTINGS");
    let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0; length];
    tcp.read_exact(&mut payload).await.unwrap();
    payload
        .chunks_exact(6)
        .map(|s| {
            let id = u16::from_be_bytes([s[0], s[1]]);
            (id, u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
        })
        .collect()
}

#[tokio::test]
async fn an_admin_connection_is_told_it_may_open_a_handful_of_streams() {
    let sidecar = support::sidecar(
        "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  shutdown_grace: 0s\n",
    );
    let settings = server_settings(sidecar.admin).await;
    let proxy = server_settings(sidecar.outbound).await;
    support::stop(sidecar).await;
    let streams = settings
        .iter()
        .find(|(id, _)| *id == MAX_CONCURRENT_STREAMS)
        .map(|(_, value)| *value);
    assert_eq!(
        streams,
        Some(ADMIN_MAX_STREAMS),
        "the admin server's SETTINGS: {settings:?}"
    );
    // The proxy listeners keep theirs: the limit is the admin's alone.
    assert!(
        proxy
            .iter()
            .all(|&(id, value)| id != MAX_CONCURRENT_STREAMS || value > ADMIN_MAX_STREAMS),
        "the outbound listener's SETTINGS: {proxy:?}"
    );
}
