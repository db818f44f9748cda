//! Opaque TCP through the sidecar's inbound ports, with a raw echo backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

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
async fn a_silent_client_on_a_detect_port_is_disconnected_after_the_timeout() {
    let (app, _) = support::tcp_echo().await;
    let sidecar = support::sidecar(&yaml(app, "detect"));
    let mut tcp = tokio::net::TcpStream::connect(sidecar.inbound[0])
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    // detect_timeout is 1s in this config; the read returns 0 (EOF) once the
    // sidecar gives up.
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("the sidecar closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    support::stop(sidecar).await;
}

#[test]
fn database_app_ports_default_to_opaque() {
    use mesh_examples::sidecar::config::{PortProtocol, SidecarConfig};
    let config =
        SidecarConfig::from_yaml("inbound:\n  app: 127.0.0.1:5432\n", "test.yaml").unwrap();
    assert_eq!(config.inbound.ports()[0].protocol, PortProtocol::Opaque);
}
