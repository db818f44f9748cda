//! `sidecar authz` for opaque Servers, against a live sidecar: two opaque
//! ports, one Server open to loopback clients and one that refuses every
//! connection, show `authz`'s TCP rows, connections allowed per
//! authorization and refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use mesh_examples::sidecar::views;
use mesh_metrics::query::{
    self, Delta, Format, Target,
    authz::{authz_rows, render_authz},
};
use serde_json::Value;
use support::*;

/// The window the view measures over.
const WINDOW: Duration = Duration::from_millis(800);

/// Two opaque Servers: `emoji-tcp`, which loopback clients may use, and
/// `emoji-db`, which no authorization names, so that its Server's default
/// (`deny`) refuses every connection.
const OPAQUE_POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: emoji-tcp, namespace: emojivoto }
spec: { podSelector: { matchLabels: { app: emoji } }, port: tcp, proxyProtocol: opaque }
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: emoji-db, namespace: emojivoto }
spec: { podSelector: { matchLabels: { app: emoji } }, port: db, proxyProtocol: opaque }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: { name: loopback, namespace: emojivoto }
spec: { networks: [{ cidr: 127.0.0.0/8 }] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: emoji-tcp-clients, namespace: emojivoto }
spec:
  targetRef: { group: policy.linkerd.io, kind: Server, name: emoji-tcp }
  requiredAuthenticationRefs:
    - { group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback }
";

/// Opens a connection to `port`, says `ping`, and reads until the echo or
/// the close: whether the bytes came back.
async fn ping(port: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(port).await.unwrap();
    let _ = tcp.write_all(b"ping").await;
    let mut echoed = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut echoed)).await;
    matches!(read, Ok(Ok(_))) && &echoed == b"ping"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_counts_an_opaque_servers_connections_allowed_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, OPAQUE_POLICY).unwrap();
    let (tcp_app, db_app) = (tcp_echo().await.0, tcp_echo().await.0);
    let emoji = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {tcp_app}\n  protocol: opaque\n  ports:\n\
         \x20   - listen: 127.0.0.1:0\n      app: {db_app}\n      protocol: opaque\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
         \x20   ports: {{tcp: {}, db: {}}}\n  files: [{}]\n",
        tcp_app.port(),
        db_app.port(),
        policy.display(),
    ));
    let (tcp_port, db_port) = (emoji.inbound[0], emoji.inbound[1]);
    let admin = format!("emoji={}", emoji.admin);
    let targets = Target::parse_list(&admin).unwrap();

    // Three connections allowed and two refused between two scrapes.
    let before = query::scrape(&targets[0]).await.unwrap();
    let mut echoed = Vec::new();
    for port in [tcp_port, db_port, tcp_port, db_port, tcp_port] {
        echoed.push(ping(port).await);
    }
    let after = query::scrape(&targets[0]).await.unwrap();
    assert_eq!(echoed, [true, false, true, false, true]);
    let delta = Delta::between(&before, &after, Duration::from_secs(1));
    let rows = authz_rows(&targets, &[Some(delta)]);
    let keys: Vec<_> = rows
        .iter()
        .map(|r| {
            let authz = r.authorization.as_deref();
            (
                r.server.as_str(),
                r.route.as_deref(),
                authz,
                r.tcp_connections,
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("emoji-db", None, None, Some(2)),
            ("emoji-tcp", None, Some("emoji-tcp-clients"), Some(3)),
        ]
    );
    let table = render_authz(&rows, Format::Table).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].ends_with(" TCP_CONN"), "{table}");
    assert!(
        lines[1].contains(" [unauthorized] ") && lines[1].ends_with(" 2"),
        "{table}"
    );
    assert!(
        lines[2].contains(" emoji-tcp-clients ") && lines[2].ends_with(" 3"),
        "{table}"
    );

    // The command's view, while clients keep connecting to both ports.
    let view = views::authz(&admin, WINDOW, Format::Json);
    let mut view = std::pin::pin!(view);
    let json = loop {
        tokio::select! {
            json = &mut view => break json.unwrap(),
            _ = async { ping(tcp_port).await; ping(db_port).await } => {}
        }
    };
    stop(emoji).await;
    let rows: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    for (row, server) in rows.iter().zip(["emoji-db", "emoji-tcp"]) {
        assert_eq!(row["server"], server, "{json}");
        assert!(row["route"].is_null() && row["success"].is_null(), "{json}");
        assert!(row["tcp_connections"].as_u64().unwrap() >= 1, "{json}");
    }
}
