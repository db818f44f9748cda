//! A sidecar's inbound `detect` port whose client sends too little to
//! decide before `server.detect_timeout`: as Linkerd's proxy does, it
//! goes on as opaque TCP, with what was read replayed and the
//! connection's authorization applied; an `http` port still closes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, sync::atomic::Ordering};

use tokio::{io::AsyncWriteExt, net::TcpStream};

use support::*;

/// A plaintext sidecar in front of `app` whose port is served as
/// `protocol`, detecting for 200 ms; `extra` is appended.
fn inbound(app: SocketAddr, protocol: &str, extra: &str) -> String {
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: {protocol}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  detect_timeout: 200ms\n{extra}"
    )
}

#[tokio::test]
async fn a_server_first_app_behind_a_detect_port_greets_after_the_timeout() {
    let app = greeting_app().await;
    let sidecar = sidecar(&inbound(app.addr, "detect", ""));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    read_greeting(&mut tcp).await;
    tcp.write_all(b"HELO web\r\n").await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"HELO web\r\n");
    assert_eq!(app.accepted.load(Ordering::Relaxed), 1);

    // Served as opaque TCP: counted as a connection, not a request.
    let metrics = scrape(sidecar.admin).await;
    let inbound = ["direction=\"inbound\""];
    let accepted = ["direction=\"inbound\"", "peer=\"src\""];
    assert_eq!(
        series(&metrics, "tcp_open_total", &accepted),
        1,
        "{metrics}"
    );
    assert_eq!(series(&metrics, "request_total", &inbound), 0, "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn bytes_sent_before_the_timeout_reach_the_app_once() {
    let app = greeting_app().await;
    let sidecar = sidecar(&inbound(app.addr, "detect", ""));

    // A partial line that could still become a request line: detection
    // reads it, cannot decide, and hands it on when it gives up.
    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    tcp.write_all(b"HELO par").await.unwrap();
    read_greeting(&mut tcp).await;
    tcp.write_all(b"tial\r\n").await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"HELO partial\r\n");
    assert_eq!(*app.read.lock().unwrap(), b"HELO partial\r\n");
    stop(sidecar).await;
}

#[tokio::test]
async fn an_http_port_still_closes_at_the_timeout() {
    let app = greeting_app().await;
    let sidecar = sidecar(&inbound(app.addr, "http", ""));

    for first in [&b""[..], b"HELO par"] {
        let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
        tcp.write_all(first).await.unwrap();
        assert_eq!(read_to_close(&mut tcp).await, b"", "{first:?}");
    }
    assert_eq!(app.accepted.load(Ordering::Relaxed), 0);
    stop(sidecar).await;
}

/// Two detecting Servers: `db-open`, which loopback clients may use, and
/// `db-shut`, which no authorization names, so its default (`deny`)
/// refuses every connection.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: db-open, namespace: emojivoto }
spec: { podSelector: { matchLabels: { app: db } }, port: open, proxyProtocol: unknown }
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: db-shut, namespace: emojivoto }
spec: { podSelector: { matchLabels: { app: db } }, port: shut, proxyProtocol: unknown }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: { name: loopback, namespace: emojivoto }
spec: { networks: [{ cidr: 127.0.0.0/8 }] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: db-open-clients, namespace: emojivoto }
spec:
  targetRef: { group: policy.linkerd.io, kind: Server, name: db-open }
  requiredAuthenticationRefs:
    - { group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback }
";

#[tokio::test]
async fn a_client_not_authorized_for_opaque_traffic_is_refused_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let (open, shut) = (greeting_app().await, greeting_app().await);
    let extra = format!(
        "policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: db}}\n\
         \x20   ports: {{open: {}, shut: {}}}\n  files: [{}]\n",
        open.addr.port(),
        shut.addr.port(),
        policy.display(),
    );
    let ports = format!(
        "  ports:\n    - listen: 127.0.0.1:0\n      app: {}\n      protocol: detect\n",
        shut.addr
    );
    let yaml = inbound(open.addr, "detect", &extra).replacen(
        "outbound:\n",
        &format!("{ports}outbound:\n"),
        1,
    );
    let sidecar = sidecar(&yaml);

    // Past the timeout, the connection is authorized as an opaque one:
    // the Server that allows the client greets it...
    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    read_greeting(&mut tcp).await;
    drop(tcp);
    // ...and the one that does not closes it, its application never
    // connected to.
    let mut tcp = TcpStream::connect(sidecar.inbound[1]).await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    assert_eq!(shut.accepted.load(Ordering::Relaxed), 0);

    let metrics = scrape(sidecar.admin).await;
    let denied = series(
        &metrics,
        "inbound_tcp_authz_deny_total",
        &["srv_name=\"db-shut\""],
    );
    assert_eq!(denied, 1, "{metrics}");
    let allowed = series(
        &metrics,
        "inbound_tcp_authz_allow_total",
        &["srv_name=\"db-open\""],
    );
    assert_eq!(allowed, 1, "{metrics}");
    stop(sidecar).await;
}
