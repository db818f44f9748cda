//! An application that serves TLS itself, behind a sidecar whose identity
//! is DNS-style (Linkerd's form): a client of the application's TLS asks
//! for the application's own name, and the sidecar passes its connection
//! through untouched, as opaque TCP after the port's authorization, so the
//! handshake runs end to end between the client and the application. A
//! mesh client, which names the sidecar's identity or no server at all, is
//! still terminated by the sidecar; a strict port refuses the
//! application's TLS, and so does a Server that requires a mesh identity.
//! A port that serves HTTP only passes it on too: it is not detected.
//! Real sockets on 127.0.0.1, real rustls at each end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mesh_examples::sidecar;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use support::*;

/// The sidecar's identity.
const API: &str = "api.shop.serviceaccount.identity.linkerd.cluster.local";

/// Issues the sidecar's certificate for [`API`] from a new CA in `dir`,
/// and returns the directory it is in.
fn api_certs(dir: &Path) -> PathBuf {
    let ca = dir.join("ca");
    sidecar::certs::create_ca("cluster.local", &ca).unwrap();
    let out = dir.join("api");
    sidecar::certs::issue(&ca, API, Duration::from_secs(3600), &out).unwrap();
    out
}

/// An application serving TLS for `app.example` with a self-signed
/// certificate: it answers `ping` with `pong`.
struct App {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// A client of the application's TLS: it trusts the application's
    /// certificate, and nothing else.
    client: Arc<rustls::ClientConfig>,
}

async fn tls_app() -> App {
    let issued = rcgen::generate_simple_self_signed(vec!["app.example".to_owned()]).unwrap();
    let cert = CertificateDer::from(issued.cert.der().to_vec());
    let key = PrivateKeyDer::try_from(issued.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4];
                if tls.read_exact(&mut buf).await.is_ok() && &buf == b"ping" {
                    let _ = tls.write_all(b"pong").await;
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    App {
        addr,
        accepted,
        client: Arc::new(client),
    }
}

/// A sidecar with identity `certs` in front of `app`, whose port detects
/// its protocol, with TLS `mode`; `extra` is appended.
fn inbound(certs: &Path, app: SocketAddr, mode: &str, extra: &str) -> String {
    format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  tls: {mode}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n{extra}",
        certs.display()
    )
}

/// Connects to `addr` as a client of the application's TLS (asking for
/// `app.example`), sends `ping` and reads what comes back until the close.
async fn ping(addr: SocketAddr, client: &Arc<rustls::ClientConfig>) -> std::io::Result<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("app.example").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client.clone())
        .connect(name, tcp)
        .await?;
    tls.write_all(b"ping").await?;
    let mut got = Vec::new();
    tokio::time::timeout(WAIT_BOUND, tls.read_to_end(&mut got))
        .await
        .expect("the application never closed")?;
    Ok(got)
}

/// The value of the unlabelled counter `name` in `metrics`.
fn counter(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

const OPAQUE: [&str; 4] = [
    "direction=\"inbound\"",
    "peer=\"src\"",
    "tls=\"opaque\"",
    "sni=\"app.example\"",
];

#[tokio::test]
async fn a_client_of_the_applications_own_tls_reaches_it_through_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let app = tls_app().await;
    let sidecar = sidecar(&inbound(&api_certs(dir.path()), app.addr, "permissive", ""));

    let got = ping(sidecar.inbound[0], &app.client).await.unwrap();
    assert_eq!(got, b"pong", "the handshake and the bytes, end to end");
    assert_eq!(app.accepted.load(Ordering::Relaxed), 1);

    let metrics = scrape(sidecar.admin).await;
    assert_eq!(series(&metrics, "tcp_open_total", &OPAQUE), 1, "{metrics}");
    assert!(
        series(&metrics, "tcp_read_bytes_total", &OPAQUE) > 4,
        "the ClientHello and the ping were read: {metrics}"
    );
    assert_eq!(
        counter(&metrics, "tls_passthrough_connections_total"),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "tls_handshake_failures_total", &[]),
        0,
        "{metrics}"
    );
    stop(sidecar).await;
}

/// An opaque port passes the application's TLS on as well, and so does a
/// port that serves HTTP only: a passed-through connection skips protocol
/// detection, which would close it there as a client that spoke no HTTP.
#[tokio::test]
async fn opaque_and_http_ports_pass_the_applications_tls_on() {
    let dir = tempfile::tempdir().unwrap();
    let certs = api_certs(dir.path());
    let app = tls_app().await;
    let opaque = sidecar(&inbound(&certs, app.addr, "permissive", "").replace(
        "  tls: permissive\n",
        "  tls: permissive\n  protocol: opaque\n",
    ));
    assert_eq!(ping(opaque.inbound[0], &app.client).await.unwrap(), b"pong");
    assert_eq!(app.accepted.load(Ordering::Relaxed), 1);
    stop(opaque).await;

    let http = sidecar(&inbound(&certs, app.addr, "permissive", "").replace(
        "  tls: permissive\n",
        "  tls: permissive\n  protocol: http\n",
    ));
    assert_eq!(ping(http.inbound[0], &app.client).await.unwrap(), b"pong");
    assert_eq!(app.accepted.load(Ordering::Relaxed), 2);
    let metrics = scrape(http.admin).await;
    assert_eq!(series(&metrics, "tcp_open_total", &OPAQUE), 1, "{metrics}");
    stop(http).await;
}

/// A client of the mesh names the sidecar's identity, or no server: the
/// sidecar terminates it with the mesh certificate, which a client that
/// expects the identity verifies.
#[tokio::test]
async fn a_mesh_client_is_still_terminated_by_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let app = tls_app().await;
    let certs = api_certs(dir.path());
    let sidecar = sidecar(&inbound(&certs, app.addr, "permissive", ""));

    let bundle = std::fs::read(certs.join(mesh_tls::creds::BUNDLE_FILE)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for anchor in CertificateDer::pem_slice_iter(&bundle) {
        roots.add(anchor.unwrap()).unwrap();
    }
    for send_name in [true, false] {
        let mut config = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
            .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.enable_sni = send_name;
        let tcp = TcpStream::connect(sidecar.inbound[0]).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(API).unwrap(), tcp)
            .await;
        assert!(tls.is_ok(), "sni {send_name}: {tls:?}");
    }
    assert_eq!(app.accepted.load(Ordering::Relaxed), 0);

    // The client's handshake ends before the sidecar's, which reads the
    // client's last flight: the count may come after.
    let terminated = ["direction=\"inbound\"", "tls=\"true\"", "client_id=\"\""];
    let metrics = scrape_until(sidecar.admin, |metrics| {
        series(metrics, "tcp_open_total", &terminated) >= 2
    })
    .await;
    assert_eq!(
        series(&metrics, "tcp_open_total", &terminated),
        2,
        "{metrics}"
    );
    assert_eq!(
        counter(&metrics, "tls_passthrough_connections_total"),
        Some(0),
        "{metrics}"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_strict_port_refuses_the_applications_own_tls() {
    let dir = tempfile::tempdir().unwrap();
    let app = tls_app().await;
    let sidecar = sidecar(&inbound(&api_certs(dir.path()), app.addr, "strict", ""));

    assert!(ping(sidecar.inbound[0], &app.client).await.is_err());
    assert_eq!(app.accepted.load(Ordering::Relaxed), 0);
    let metrics = scrape(sidecar.admin).await;
    let refused = ["direction=\"inbound\"", "reason=\"passthrough_refused\""];
    assert_eq!(
        series(&metrics, "tls_handshake_failures_total", &refused),
        1,
        "{metrics}"
    );
    stop(sidecar).await;
}

/// The application's TLS proves no mesh identity: a Server whose only
/// authorization requires one closes it before it reaches the
/// application, and counts the denial under `tls="opaque"`.
#[tokio::test]
async fn a_server_that_requires_a_mesh_identity_refuses_the_applications_own_tls() {
    let dir = tempfile::tempdir().unwrap();
    let app = tls_app().await;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: api, namespace: shop }}
spec: {{ podSelector: {{ matchLabels: {{ app: api }} }}, port: {}, proxyProtocol: TLS }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{ name: meshed, namespace: shop }}
spec: {{ identities: [\"*\"] }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: api-from-mesh, namespace: shop }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: api }}
  requiredAuthenticationRefs:
    - {{ group: policy.linkerd.io, kind: MeshTLSAuthentication, name: meshed }}
",
            app.addr.port()
        ),
    )
    .unwrap();
    let extra = format!(
        "policy:\n  workload:\n    namespace: shop\n    labels: {{app: api}}\n  files: [{}]\n",
        policy.display(),
    );
    let sidecar = sidecar(&inbound(
        &api_certs(dir.path()),
        app.addr,
        "permissive",
        &extra,
    ));

    assert!(ping(sidecar.inbound[0], &app.client).await.is_err());
    assert_eq!(app.accepted.load(Ordering::Relaxed), 0);
    let metrics = scrape(sidecar.admin).await;
    let denied = series(
        &metrics,
        "inbound_tcp_authz_deny_total",
        &["srv_name=\"api\"", "tls=\"opaque\""],
    );
    assert_eq!(denied, 1, "{metrics}");
    stop(sidecar).await;
}
