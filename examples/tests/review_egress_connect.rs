//! Egress `CONNECT` tunnels through a real sidecar, where the client's
//! first bytes cannot or need not pick the route: a port whose routes are
//! all `TCPRoute`s is opaque, connected at once without waiting for the
//! client to speak; and a tunnel of an `Allow` network without routes is
//! counted open by the detection timeout, whether its client has spoken
//! or not. On shutdown egress tunnels, those still awaiting a ClientHello
//! included, are drained and cut as the tunnels to services are; a
//! destination that refuses is warned of once per streak, as an endpoint,
//! and after the early `200` closes the tunnel, counted `unexpected`.
//! 127.0.0.1 is outside the default cluster networks, so a network
//! without `networks` captures a local upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, path::Path, sync::atomic::Ordering};

use mesh_examples::sidecar::Running;
use support::egress::{self, TO_NETWORK, network, route_labels, tcp_route, tls_route};
use support::*;
use tokio::io::AsyncWriteExt;

/// A plaintext sidecar in `emojivoto` on two runtimes, with `policy` as its
/// policy file and `detect_timeout` as its detection timeout.
fn egress_sidecar(dir: &Path, policy: &str, detect_timeout: &str) -> Running {
    let config = format!(
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n  detect_timeout: {detect_timeout}\n"
    );
    egress::sidecar(dir, &config, policy).0
}

/// [`route_labels`] and the address `127.0.0.1:port`: a TCP family's.
fn labels(port: u16, kind: &str, route: &str) -> String {
    format!(
        "{},target_ip=\"127.0.0.1\",target_port=\"{port}\"",
        route_labels("net", port, kind, route)
    )
}

// A port whose routes are all TCPRoutes takes every connection by its
// TCPRoute, whatever the client sends: there is nothing to wait for. The
// detection timeout is far above the wait bound of `read_greeting`, so a
// sidecar that waited for the client's first bytes before it connected
// would send no greeting in time.
#[tokio::test]
async fn a_port_with_only_tcp_routes_connects_a_client_that_waits_for_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let app = greeting_app().await;
    let port = app.addr.port();
    let policy = format!(
        "{}---\n{}",
        network("net", "Deny", ""),
        tcp_route("smtp", port, TO_NETWORK)
    );
    let running = egress_sidecar(dir.path(), &policy, "60s");
    let (mut tcp, head) = connect_head(running.outbound, &format!("127.0.0.1:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    read_greeting(&mut tcp).await;
    // The tunnel carries the client's bytes after the greeting.
    tcp.write_all(b"EHLO x\r\n").await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"EHLO x\r\n");
    let smtp = labels(port, "TCPRoute", "smtp");
    let metrics = scrape_until(running.admin, |m| {
        series(m, "outbound_tcp_route_close_total", &[&smtp, "error=\"\""]) == 1
    })
    .await;
    assert_eq!(
        series(&metrics, "outbound_tcp_route_open_total", &[&smtp]),
        1,
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "outbound_tcp_route_close_total",
            &[&smtp, "error=\"\""]
        ),
        1,
        "{metrics}"
    );
    stop(running).await;
}

// A tunnel of an Allow network without routes is not held back for its
// first bytes; one whose client says nothing (its server speaks first)
// is still counted open once the detection timeout has passed, as a
// routed tunnel's silent client is taken as TCP then, not only when the
// tunnel closes.
#[tokio::test]
async fn allow_without_routes_counts_a_silent_clients_tunnel_open_while_it_lasts() {
    let dir = tempfile::tempdir().unwrap();
    let app = greeting_app().await;
    let port = app.addr.port();
    let running = egress_sidecar(dir.path(), &network("net", "Allow", ""), "200ms");
    let (mut tcp, head) = connect_head(running.outbound, &format!("127.0.0.1:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    read_greeting(&mut tcp).await;
    let allow = labels(port, "default", "tcp-egress-allow");
    let metrics = scrape_until(running.admin, |m| {
        series(m, "outbound_tcp_route_open_total", &[&allow]) == 1
    })
    .await;
    assert_eq!(
        series(&metrics, "outbound_tcp_route_open_total", &[&allow]),
        1,
        "{metrics}"
    );
    // Still open: nothing counted closed.
    assert_eq!(
        series(&metrics, "outbound_tcp_route_close_total", &[&allow]),
        0,
        "{metrics}"
    );
    // Bytes sent later pass, and the tunnel is counted open once.
    tcp.write_all(b"\x16\x03\x01").await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"\x16\x03\x01");
    let metrics = scrape_until(running.admin, |m| {
        series(m, "outbound_tcp_route_close_total", &[&allow]) == 1
    })
    .await;
    assert_eq!(
        series(&metrics, "outbound_tcp_route_open_total", &[&allow]),
        1,
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "outbound_tcp_route_close_total",
            &[&allow, "error=\"\""]
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "outbound_tls_route_open_total",
            &["parent_name=\"net\""]
        ),
        0,
        "{metrics}"
    );
    stop(running).await;
}

/// A sidecar whose `Allow` network has a `TCPRoute` on `routed`'s port and
/// a `TLSRoute` on `hello`'s, with `grace` as its shutdown grace, and three
/// tunnels through it: to `routed` and to `plain` (a port without routes),
/// each having echoed `ping`, and to `hello`, whose first bytes are
/// awaited for far longer than any grace.
async fn three_tunnels(dir: &Path, grace: &str) -> (Running, Vec<tokio::net::TcpStream>) {
    let (routed, _) = tcp_echo().await;
    let (plain, _) = tcp_echo().await;
    let (hello, _) = tcp_echo().await;
    let policy = format!(
        "{}---\n{}---\n{}",
        network("net", "Allow", ""),
        tcp_route("db", routed.port(), TO_NETWORK),
        tls_route("https", "[httpbin.test]", hello.port(), TO_NETWORK)
    );
    let config = format!(
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n  detect_timeout: 60s\n  shutdown_grace: {grace}\n"
    );
    let (running, _) = egress::sidecar(dir, &config, &policy);
    let mut tunnels = Vec::new();
    for addr in [routed, plain] {
        let (mut tcp, head) = connect_head(running.outbound, &addr.to_string()).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{addr}: {head}");
        echoes(&mut tcp, b"ping").await;
        tunnels.push(tcp);
    }
    let (tcp, head) = connect_head(running.outbound, &hello.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    tunnels.push(tcp);
    (running, tunnels)
}

/// Sends `bytes` on `tcp` and reads them back.
async fn echoes(tcp: &mut tokio::net::TcpStream, bytes: &[u8]) {
    tcp.write_all(bytes).await.unwrap();
    let mut got = vec![0; bytes.len()];
    tokio::time::timeout(
        WAIT_BOUND,
        tokio::io::AsyncReadExt::read_exact(tcp, &mut got),
    )
    .await
    .expect("the tunnel stalled")
    .expect("the tunnel was cut");
    assert_eq!(got, bytes);
}

// Egress tunnels outlive their CONNECT as the tunnels to services do: the
// server's shutdown waits for them, and they keep carrying bytes, within
// server.shutdown_grace.
#[tokio::test]
async fn shutdown_waits_for_egress_tunnels_within_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut tunnels) = three_tunnels(dir.path(), "60s").await;
    running.shutdown();
    let joined = tokio::task::spawn_blocking(move || running.join());
    for tcp in &mut tunnels[..2] {
        echoes(tcp, b"during").await;
    }
    assert!(
        !joined.is_finished(),
        "the sidecar stopped with egress tunnels open"
    );
    drop(tunnels);
    tokio::time::timeout(WAIT_BOUND, joined)
        .await
        .expect("the sidecar did not stop once its tunnels ended")
        .unwrap();
}

// At the end of the grace they are cut, whether tunnelling (by a TCPRoute,
// or through an Allow network without routes) or still waiting for a
// ClientHello.
#[tokio::test]
async fn shutdown_cuts_egress_tunnels_at_the_end_of_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut tunnels) = three_tunnels(dir.path(), "300ms").await;
    running.shutdown();
    let joined = tokio::task::spawn_blocking(move || running.join());
    for tcp in &mut tunnels {
        read_to_close(tcp).await;
    }
    tokio::time::timeout(WAIT_BOUND, joined)
        .await
        .expect("the sidecar did not stop at the end of its grace")
        .unwrap();
}

// A destination that refuses the tunnels of an Allow network without
// routes is logged as an endpoint is: at warn for the first failed connect
// of a streak, at debug for the rest, not a warning per CONNECT.
#[tokio::test(flavor = "multi_thread")]
async fn a_destination_that_refuses_is_warned_of_once_per_streak() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, network("net", "Allow", "")).unwrap();
    let outbound = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "outbound:\n  listen: {outbound}\nadmin:\n  listen: 127.0.0.1:0\n\
             server:\n  threads: 1\n\
             policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
            policy.display()
        ),
    )
    .unwrap();
    let (mut child, lines) = run_logging(&config, "info");
    wait_for(&lines, "sidecar started");
    let refused = refused_port();
    let dead = format!("127.0.0.1:{refused}");
    for _ in 0..3 {
        let (_conn, head) = connect_head(outbound, &dead).await;
        assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
    }
    // Another destination that refuses: its warning comes after theirs.
    let other = format!("127.0.0.2:{refused}");
    let (_conn, head) = connect_head(outbound, &other).await;
    assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
    let log = wait_for(&lines, &other);
    child.kill().unwrap();
    child.wait().unwrap();
    let warned = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("cannot connect") && l.contains(&dead))
        .count();
    assert_eq!(warned, 1, "{log}");
}

// A route's destination that refuses after the early 200: the client's
// tunnel is closed, and the tunnel is counted open and closed once, with
// error="unexpected", on a TLSRoute's port (its ClientHello read first)
// and on a TCPRoute's alike.
#[tokio::test]
async fn a_destination_that_refuses_after_the_200_closes_the_tunnel_counted_unexpected() {
    let dir = tempfile::tempdir().unwrap();
    let tls_port = refused_port();
    let tcp_port = std::iter::repeat_with(refused_port)
        .find(|&port| port != tls_port)
        .unwrap();
    let policy = format!(
        "{}---\n{}---\n{}",
        network("net", "Deny", ""),
        tls_route("https", "[httpbin.test]", tls_port, TO_NETWORK),
        tcp_route("db", tcp_port, TO_NETWORK)
    );
    let running = egress_sidecar(dir.path(), &policy, "60s");

    let (mut tcp, head) = connect_head(running.outbound, &format!("127.0.0.1:{tls_port}")).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let hello = client_hello_bytes("httpbin.test");
    tcp.write_all(&hello).await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");

    let (mut tcp, head) = connect_head(running.outbound, &format!("127.0.0.1:{tcp_port}")).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(read_to_close(&mut tcp).await, b"");

    let https = format!(
        "{},hostname=\"httpbin.test\"",
        route_labels("net", tls_port, "TLSRoute", "https")
    );
    let db = labels(tcp_port, "TCPRoute", "db");
    let done = |m: &str| {
        series(m, "outbound_tls_route_close_total", &[&https]) == 1
            && series(m, "outbound_tcp_route_close_total", &[&db]) == 1
    };
    let metrics = scrape_until(running.admin, done).await;
    for (family, labels) in [("tls", &https), ("tcp", &db)] {
        let open = format!("outbound_{family}_route_open_total");
        let close = format!("outbound_{family}_route_close_total");
        assert_eq!(series(&metrics, &open, &[labels]), 1, "{metrics}");
        assert_eq!(series(&metrics, &close, &[labels]), 1, "{metrics}");
        let unexpected = [labels.as_str(), "error=\"unexpected\""];
        assert_eq!(series(&metrics, &close, &unexpected), 1, "{metrics}");
    }
    stop(running).await;
}

/// The first bytes a rustls client sends for `name`.
fn client_hello_bytes(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

// A CONNECT that declares content is refused by egress as mesh-core's
// ConnectTunnel refuses it (RFC 9110 §9.3.6: a CONNECT has none, and
// whether the bytes after its head are a body or the tunnel's is in
// doubt): 400, `mesh-error: connect with content`, the connection closed
// and nothing sent, on an Allow network's port without routes and on a
// Deny network's port that a TCPRoute opens alike.
#[tokio::test]
async fn a_connect_with_content_is_refused_400_and_sent_nowhere() {
    let (open, open_accepted) = tcp_echo().await;
    let (routed, routed_accepted) = tcp_echo().await;
    let allow = network("net", "Allow", "");
    let deny = format!(
        "{}---\n{}",
        network("net", "Deny", ""),
        tcp_route("db", routed.port(), TO_NETWORK)
    );
    for (policy, target) in [(allow, open), (deny, routed)] {
        let dir = tempfile::tempdir().unwrap();
        let running = egress_sidecar(dir.path(), &policy, "200ms");
        for framing in [
            "content-length: 5\r\n\r\n",
            "transfer-encoding: chunked\r\n\r\n",
        ] {
            let request = format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n{framing}hello");
            // A tunnel would stay open: the answer is bounded.
            let answer = tokio::time::timeout(WAIT_BOUND, raw_exchange(running.outbound, &request))
                .await
                .expect("not refused and closed: tunnelled");
            assert!(answer.starts_with("HTTP/1.1 400 "), "{framing}: {answer}");
            assert!(
                answer.contains("mesh-error: connect with content\r\n"),
                "{answer}"
            );
        }
        stop(running).await;
    }
    assert_eq!(open_accepted.load(Ordering::SeqCst), 0);
    assert_eq!(routed_accepted.load(Ordering::SeqCst), 0);
}
