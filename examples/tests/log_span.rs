//! The sidecar's own log: a line said while a connection is served, such
//! as a `strict` listener's refusal of a plaintext client, names the
//! connection once, through its span, `conn{peer=<addr> port=<port>}`; and
//! a `RUST_LOG` directive on that span's `peer` field
//! (`[conn{peer=<addr>}]=debug`, tracing-subscriber's `EnvFilter` field
//! matching) raises the level of that connection's lines alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, sync::mpsc, time::Duration};

use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Sends a plaintext request over `tcp`, and reads until the listener
/// closes the connection, as a `strict` one does after its refusal.
async fn refused(mut tcp: TcpStream) {
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // A bound for a listener that never closes, not a measure.
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer))
        .await
        .expect("the strict listener kept a plaintext connection open")
        .ok();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

/// The sidecar's lines up to and including the first that `last` picks.
fn lines_until(received: &mpsc::Receiver<String>, last: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    // A bound for a sidecar that never says it, not a measure.
    while let Ok(line) = received.recv_timeout(Duration::from_secs(20)) {
        let done = last(&line);
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("the line never came: {seen:#?}");
}

/// A strict-mTLS sidecar's configuration file, in a directory with its
/// certificates, and its inbound address (a port drawn free).
async fn strict_sidecar() -> (tempfile::TempDir, std::path::PathBuf, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let certs = issuer(dir.path())("emoji");
    let app = ok_app(false).await;
    let inbound: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "identity:\n  dir: {}\n\
             inbound:\n  listen: {inbound}\n  app: {app}\n  tls: strict\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
            certs.display()
        ),
    )
    .unwrap();
    (dir, config, inbound)
}

#[tokio::test]
async fn a_peer_directive_raises_the_level_of_that_connections_lines_only() {
    let (_dir, config, inbound) = strict_sidecar().await;
    let port = inbound.port();
    // The client whose lines are asked for, bound before the sidecar is
    // told its address.
    let watched = TcpSocket::new_v4().unwrap();
    watched.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let peer = watched.local_addr().unwrap();
    let (mut child, received) = run_logging(&config, &format!("info,[conn{{peer={peer}}}]=debug"));
    lines_until(&received, |line| line.contains("sidecar started"));

    // Another client first: its refusal is at debug, outside the directive.
    let other = TcpStream::connect(inbound).await.unwrap();
    let other_peer = other.local_addr().unwrap();
    refused(other).await;
    refused(watched.connect(inbound).await.unwrap()).await;
    // Its refusal, then how its connection ended: both in its span.
    let seen = lines_until(&received, |line| {
        line.contains("connection closed with an error")
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let span = format!("conn{{peer={peer} port={port}}}: ");
    let closed = seen.last().unwrap();
    assert!(closed.contains(&span), "{closed}");
    assert_eq!(closed.matches("peer=").count(), 1, "{closed}");
    // The other client's refusal, said before the watched one connected,
    // would be above; only the watched client's is there.
    let line = seen
        .iter()
        .find(|l| l.contains("inbound tls refused"))
        .unwrap_or_else(|| panic!("no refusal in {seen:#?}"));
    assert!(line.contains(" DEBUG "), "{line}");
    assert!(line.contains(&span), "{line}");
    assert_eq!(line.matches("peer=").count(), 1, "{line}");
    assert!(line.contains("reason=\"plaintext_refused\""), "{line}");
    assert!(
        !seen.iter().any(|l| l.contains(&other_peer.to_string())),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn each_line_of_a_refused_connection_names_it_once() {
    let (_dir, config, inbound) = strict_sidecar().await;
    let port = inbound.port();
    let (mut child, received) = run_logging(&config, "debug");
    lines_until(&received, |line| line.contains("sidecar started"));

    let tcp = TcpStream::connect(inbound).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    refused(tcp).await;
    let seen = lines_until(&received, |line| {
        line.contains("connection closed with an error") && line.contains(&peer.to_string())
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let lines: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains(&peer.to_string()))
        .collect();
    let refused = lines
        .iter()
        .find(|l| l.contains("inbound tls refused"))
        .unwrap_or_else(|| panic!("no refusal in {lines:#?}"));
    assert!(
        refused.contains(&format!(" conn{{peer={peer} port={port}}}: ")),
        "{refused}"
    );
    for line in lines {
        assert_eq!(line.matches(&peer.to_string()).count(), 1, "{line}");
    }
}
