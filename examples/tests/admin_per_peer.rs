//! The admin server bounds each peer address's share of its connections:
//! one client that opens as many idle connections as the admin server
//! has places keeps a quarter of them, and the kubelet's probes from
//! another address are still answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::{io::AsyncReadExt, net::TcpSocket};

/// The admin server's connection limit, and each peer's share of it.
const ADMIN_MAX_CONNECTIONS: usize = 64;
const PER_PEER: usize = ADMIN_MAX_CONNECTIONS / 4;

/// An HTTP/1 connection from `peer` (a loopback address) that has had
/// `GET /live` answered, kept open and idle; an error when the server
/// closed it unanswered.
async fn live_from(
    peer: &str,
    admin: SocketAddr,
) -> Result<(http1::SendRequest<Empty<Bytes>>, StatusCode), hyper::Error> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(peer.parse().unwrap(), 0))
        .unwrap();
    let tcp = socket.connect(admin).await.unwrap();
    let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = Request::get("/live")
        .header("host", admin.to_string())
        .body(Empty::new())
        .unwrap();
    let status = send.send_request(req).await?.status();
    Ok((send, status))
}

#[tokio::test]
async fn a_peer_holding_idle_admin_connections_leaves_the_probes_answered() {
    let running = support::sidecar(
        "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
    );
    let admin = running.admin;

    // One peer opens as many connections as the admin server has places
    // and keeps them idle, as an idle HTTP/1 connection may stay for the
    // header read timeout, a minute: its share is served, the rest are
    // closed unanswered.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..ADMIN_MAX_CONNECTIONS {
        match live_from("127.0.0.1", admin).await {
            Ok((send, status)) => {
                assert_eq!(status, StatusCode::OK);
                held.push(send);
            }
            Err(_) => refused += 1,
        }
    }
    // A probe from another address is answered while they stay open.
    // Were the peer holding every place, it would wait the minute out:
    // the bound is only there to fail rather than hang.
    let probe = tokio::time::timeout(Duration::from_secs(20), live_from("127.0.0.2", admin))
        .await
        .expect("the probe waited behind another peer's idle connections");
    assert_eq!(probe.unwrap().1, StatusCode::OK);

    assert_eq!(held.len(), PER_PEER);
    assert_eq!(refused, ADMIN_MAX_CONNECTIONS - PER_PEER);

    drop(held);
    support::stop(running).await;
}

#[tokio::test]
async fn a_silent_admin_connection_is_closed_within_a_second_whatever_detect_timeout_says() {
    // The proxy listeners wait an hour here for the first bytes; the
    // admin server waits a second, as Linkerd's admin server does, so a
    // peer that connects and says nothing gives its place back at once.
    let running = support::sidecar(
        "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  detect_timeout: 3600s\n",
    );
    let admin = running.admin;
    let mut silent = tokio::net::TcpStream::connect(admin).await.unwrap();
    let mut buf = [0; 64];
    // The bound is only there to fail rather than hang for the hour.
    let read = tokio::time::timeout(Duration::from_secs(60), silent.read(&mut buf))
        .await
        .expect("a silent admin connection was kept for the proxy's detect timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    support::stop(running).await;
}
