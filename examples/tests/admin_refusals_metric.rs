//! The admin server's refusals of a peer over its share of connections
//! are counted in `admin_connections_refused_total`, so that a peer
//! crowding the probes out shows on a dashboard rather than only in a log
//! line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use tokio::{io::AsyncReadExt, net::TcpSocket};

/// Each peer's share of the admin server's 64 connections.
const PER_PEER: usize = 16;

/// A connection from `peer` (a loopback address), kept open and idle.
async fn connect_from(peer: &str, admin: SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(peer.parse().unwrap(), 0))
        .unwrap();
    socket.connect(admin).await.unwrap()
}

#[tokio::test]
async fn refusals_of_a_peer_over_its_share_are_counted() {
    let running = support::sidecar(
        "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
    );
    let admin = running.admin;
    let refused = "admin_connections_refused_total 0\n";
    let metrics = support::scrape(admin).await;
    assert!(metrics.contains(refused), "{metrics}");

    // 127.0.0.2 takes its share, and its next three connections are
    // closed as they are accepted: read to the end, each was refused (and
    // counted) before the scrape below is accepted.
    let mut held = Vec::new();
    for _ in 0..PER_PEER {
        held.push(connect_from("127.0.0.2", admin).await);
    }
    for _ in 0..3 {
        let mut tcp = connect_from("127.0.0.2", admin).await;
        let mut buf = [0; 16];
        assert_eq!(tcp.read(&mut buf).await.unwrap_or(0), 0);
    }
    // Scraped from 127.0.0.1, which has its own share.
    let metrics = support::scrape(admin).await;
    assert!(
        metrics.contains("# TYPE admin_connections_refused_total counter\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("admin_connections_refused_total 3\n"),
        "{metrics}"
    );
    drop(held);
    support::stop(running).await;
}
