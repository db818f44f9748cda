//! A sidecar with an identity, its inbound port `opaque` in front of an
//! application whose server speaks first (MySQL, SMTP): a plaintext client
//! sends nothing, waiting for the greeting. Under `tls: permissive` it is
//! served as plaintext once TLS detection times out (`server.detect_timeout`)
//! and authorized as any plaintext client; under `strict` it is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, path::Path, sync::atomic::Ordering};

use tokio::{io::AsyncWriteExt, net::TcpStream};

use support::*;

/// A sidecar with identity `certs` in front of `app` on an opaque port,
/// TLS `mode`, detecting for 200 ms; `extra` is appended.
fn inbound(certs: &Path, app: SocketAddr, mode: &str, extra: &str) -> String {
    format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: opaque\n  tls: {mode}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  detect_timeout: 200ms\n{extra}",
        certs.display()
    )
}

#[tokio::test]
async fn a_silent_plaintext_client_of_an_opaque_permissive_port_is_greeted() {
    let dir = tempfile::tempdir().unwrap();
    let certs = issuer(dir.path())("emoji");
    let app = greeting_app().await;
    let sidecar = sidecar(&inbound(&certs, app.addr, "permissive", ""));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    read_greeting(&mut tcp).await;
    tcp.write_all(b"HELO web\r\n").await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"HELO web\r\n");
    assert_eq!(app.accepted.load(Ordering::Relaxed), 1);

    let metrics = scrape(sidecar.admin).await;
    let plaintext = [
        "direction=\"inbound\"",
        "tls=\"no_identity\"",
        "no_tls_reason=\"no_tls_from_remote\"",
    ];
    assert_eq!(
        series(&metrics, "tcp_open_total", &plaintext),
        1,
        "{metrics}"
    );
    let timeouts = ["direction=\"inbound\"", "reason=\"timeout\""];
    assert_eq!(
        series(&metrics, "tls_handshake_failures_total", &timeouts),
        0,
        "{metrics}"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_silent_client_of_an_opaque_strict_port_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let certs = issuer(dir.path())("emoji");
    let app = greeting_app().await;
    let sidecar = sidecar(&inbound(&certs, app.addr, "strict", ""));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    assert_eq!(app.accepted.load(Ordering::Relaxed), 0);
    // The sidecar counts the failure on its own thread, which a busy
    // machine may leave until after the client has seen the close.
    let timeouts = ["direction=\"inbound\"", "reason=\"timeout\""];
    let metrics = scrape_until(sidecar.admin, |m| {
        series(m, "tls_handshake_failures_total", &timeouts) == 1
    })
    .await;
    assert_eq!(
        series(&metrics, "tls_handshake_failures_total", &timeouts),
        1,
        "{metrics}"
    );
    stop(sidecar).await;
}

/// An opaque Server whose only authorization requires a mesh identity.
fn identity_required(port: u16) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: db, namespace: emojivoto }}
spec: {{ podSelector: {{ matchLabels: {{ app: db }} }}, port: {port}, proxyProtocol: opaque }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{ name: web-only, namespace: emojivoto }}
spec: {{ identities: [\"{}\"] }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: db-from-web, namespace: emojivoto }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: db }}
  requiredAuthenticationRefs:
    - {{ group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-only }}
",
        identity("web")
    )
}

#[tokio::test]
async fn a_server_that_requires_an_identity_refuses_the_silent_plaintext_client() {
    let dir = tempfile::tempdir().unwrap();
    let certs = issuer(dir.path())("db");
    let app = greeting_app().await;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, identity_required(app.addr.port())).unwrap();
    let extra = format!(
        "policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: db}}\n  files: [{}]\n",
        policy.display(),
    );
    let sidecar = sidecar(&inbound(&certs, app.addr, "permissive", &extra));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, b"");
    assert_eq!(app.accepted.load(Ordering::Relaxed), 0);
    let metrics = scrape(sidecar.admin).await;
    let denied = series(
        &metrics,
        "inbound_tcp_authz_deny_total",
        &["srv_name=\"db\"", "tls=\"no_identity\""],
    );
    assert_eq!(denied, 1, "{metrics}");
    stop(sidecar).await;
}
