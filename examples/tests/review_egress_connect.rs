//! Egress `CONNECT` tunnels through a real sidecar, where the client's
//! first bytes cannot or need not pick the route: a port whose routes are
//! all `TCPRoute`s is opaque, connected at once without waiting for the
//! client to speak; and a tunnel of an `Allow` network without routes is
//! counted open by the detection timeout, whether its client has spoken
//! or not. 127.0.0.1 is outside the default cluster networks, so a
//! network without `networks` captures a local upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;

use mesh_examples::sidecar::Running;
use support::*;
use tokio::io::AsyncWriteExt;

/// An `EgressNetwork` `net` of `emojivoto` with `policy`, capturing every
/// address outside the cluster networks.
fn network(policy: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\n\
         metadata: {{name: net, namespace: emojivoto}}\n\
         spec:\n  trafficPolicy: {policy}\n"
    )
}

/// A `TCPRoute` `name` on `port` of network `net`, to the network (the
/// original destination).
fn tcp_route(name: &str, port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n\
         metadata: {{name: {name}, namespace: emojivoto}}\n\
         spec:\n\
         \x20 parentRefs: [{{name: net, kind: EgressNetwork, group: policy.linkerd.io, port: {port}}}]\n\
         \x20 rules: [{{backendRefs: [{{kind: EgressNetwork, group: policy.linkerd.io, name: net}}]}}]\n"
    )
}

/// A plaintext sidecar in `emojivoto` on two runtimes, with `policy` as its
/// policy file and `detect_timeout` as its detection timeout.
fn egress_sidecar(dir: &Path, policy: &str, detect_timeout: &str) -> Running {
    let file = dir.join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n  detect_timeout: {detect_timeout}\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ))
}

/// The labels of default route `route` of network `net` on `port`, and the
/// address `127.0.0.1:port`.
fn labels(port: u16, kind: &str, route: &str) -> String {
    let (group, namespace) = if kind == "default" {
        ("", "")
    } else {
        ("gateway.networking.k8s.io", "emojivoto")
    };
    format!(
        "parent_group=\"policy.linkerd.io\",parent_kind=\"EgressNetwork\",\
         parent_namespace=\"emojivoto\",parent_name=\"net\",parent_port=\"{port}\",\
         parent_section_name=\"\",route_group=\"{group}\",route_kind=\"{kind}\",\
         route_namespace=\"{namespace}\",route_name=\"{route}\",\
         target_ip=\"127.0.0.1\",target_port=\"{port}\""
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
    let policy = format!("{}---\n{}", network("Deny"), tcp_route("smtp", port));
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
    let running = egress_sidecar(dir.path(), &network("Allow"), "200ms");
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
