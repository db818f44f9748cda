//! Opaque TCP through the sidecar's inbound ports, with a raw echo backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn yaml(app: std::net::SocketAddr, protocol: &str) -> String {
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: {protocol}\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n  detect_timeout: 1s\n"
    )
}

async fn round_trip(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = vec![0u8; bytes.len()];
    tcp.read_exact(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn an_opaque_port_pipes_bytes_both_ways() {
    let (app, _) = support::tcp_echo().await;
    let sidecar = support::sidecar(&yaml(app, "opaque"));
    // Even bytes that look like HTTP are not inspected.
    let msg = b"GET / HTTP/1.1\r\nthis is not parsed\r\n";
    assert_eq!(round_trip(sidecar.inbound[0], msg).await, msg);
    support::stop(sidecar).await;
}

#[tokio::test]
async fn a_detect_port_forwards_non_http_as_opaque() {
    let (app, _) = support::tcp_echo().await;
    let sidecar = support::sidecar(&yaml(app, "detect"));
    let msg = b"\x00\x01binary protocol hello\r\n";
    assert_eq!(round_trip(sidecar.inbound[0], msg).await, msg);
    support::stop(sidecar).await;
}

#[tokio::test]
async fn a_client_undecided_at_the_timeout_is_forwarded_as_opaque() {
    // A line that could still become an HTTP request line decides
    // nothing; at `detect_timeout` (1s here) the sidecar stops waiting
    // and forwards the connection, the bytes read so far first, as
    // Linkerd's proxy does. A server-speaks-first protocol's client,
    // which sends nothing, goes on the same way (`detect_timeout_opaque`).
    let (app, accepted) = support::tcp_echo().await;
    let sidecar = support::sidecar(&yaml(app, "detect"));
    let msg = b"hello wor";
    assert_eq!(round_trip(sidecar.inbound[0], msg).await, msg);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
    support::stop(sidecar).await;
}

#[test]
fn database_app_ports_default_to_opaque() {
    use mesh_examples::sidecar::config::{PortProtocol, SidecarConfig};
    let config =
        SidecarConfig::from_yaml("inbound:\n  app: 127.0.0.1:5432\n", "test.yaml").unwrap();
    assert_eq!(config.inbound.ports()[0].protocol, PortProtocol::Opaque);
}
