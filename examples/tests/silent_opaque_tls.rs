//! A sidecar with an identity, its inbound port `opaque` in front of an
//! application whose server speaks first (MySQL, SMTP): a plaintext client
//! sends nothing, waiting for the greeting. Under `tls: permissive` it is
//! served as plaintext once TLS detection times out (`server.detect_timeout`)
//! and authorized as any plaintext client; under `strict` it is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use support::*;

const GREETING: &[u8] = b"220 db ready\r\n";

/// A bound on each wait, far above the 200 ms timeout: the tests wait for
/// events, and this only keeps a broken one from hanging.
const BOUND: Duration = Duration::from_secs(10);

/// An application that greets each connection, then echoes until the
/// client's end; counts its connections.
async fn greeting_app() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if tcp.write_all(GREETING).await.is_err() {
                    return;
                }
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    if tcp.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

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

/// Everything `tcp` reads until the sidecar's end.
async fn rest(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(BOUND, tcp.read_to_end(&mut got))
        .await
        .expect("the connection was not closed");
    got
}

fn series(metrics: &str, family: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_silent_plaintext_client_of_an_opaque_permissive_port_is_greeted() {
    let dir = tempfile::tempdir().unwrap();
    let certs = issuer(dir.path())("emoji");
    let (app, accepted) = greeting_app().await;
    let sidecar = sidecar(&inbound(&certs, app, "permissive", ""));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    let mut got = [0; GREETING.len()];
    tokio::time::timeout(BOUND, tcp.read_exact(&mut got))
        .await
        .expect("no greeting")
        .unwrap();
    assert_eq!(got, GREETING);
    tcp.write_all(b"HELO web\r\n").await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(rest(&mut tcp).await, b"HELO web\r\n");
    assert_eq!(accepted.load(Ordering::Relaxed), 1);

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
    let (app, accepted) = greeting_app().await;
    let sidecar = sidecar(&inbound(&certs, app, "strict", ""));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    assert_eq!(rest(&mut tcp).await, b"");
    assert_eq!(accepted.load(Ordering::Relaxed), 0);
    let metrics = scrape(sidecar.admin).await;
    let timeouts = ["direction=\"inbound\"", "reason=\"timeout\""];
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
    let (app, accepted) = greeting_app().await;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, identity_required(app.port())).unwrap();
    let extra = format!(
        "policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: db}}\n  files: [{}]\n",
        policy.display(),
    );
    let sidecar = sidecar(&inbound(&certs, app, "permissive", &extra));

    let mut tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
    assert_eq!(rest(&mut tcp).await, b"");
    assert_eq!(accepted.load(Ordering::Relaxed), 0);
    let metrics = scrape(sidecar.admin).await;
    let denied = series(
        &metrics,
        "inbound_tcp_authz_deny_total",
        &["srv_name=\"db\"", "tls=\"no_identity\""],
    );
    assert_eq!(denied, 1, "{metrics}");
    stop(sidecar).await;
}
