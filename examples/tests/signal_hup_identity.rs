//! SIGHUP reads the identity's certificate files at once, rather than at
//! the next `identity.watch_interval` (an hour here): a newly issued pair
//! is served at the next handshake, and a bad certificate file is refused
//! and named in the log while the certificate in service stays. These run
//! the `sidecar` binary (`cargo build -p mesh-examples --example sidecar`
//! first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use mesh_examples::sidecar::certs;
use mesh_tls::{
    ca::{CA_CERT_FILE, CertificateAuthority},
    creds::{BUNDLE_FILE, CERT_FILE},
};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use support::{signal, wait_for};
use tokio::net::TcpStream;

/// The sidecar's identity, DNS-style, so that a plain rustls client
/// verifies the certificate it is served.
const WEB: &str = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";

/// The workload certificate in `dir`'s certificate file.
fn leaf_in(dir: &Path) -> CertificateDer<'static> {
    let pem = std::fs::read(dir.join(CERT_FILE)).unwrap();
    CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap()
}

/// The certificate the sidecar serves at `inbound`, in a handshake that
/// verifies it against the trust anchors in `bundle` for [`WEB`].
async fn served(inbound: SocketAddr, bundle: &Path) -> CertificateDer<'static> {
    let bundle = std::fs::read(bundle).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for anchor in CertificateDer::pem_slice_iter(&bundle) {
        roots.add(anchor.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(inbound).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(WEB).unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_certificate_files_now_and_a_bad_one_keeps_the_certificate_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("cluster.local", &ca).unwrap();
    let files = dir.path().join("web");
    certs::issue(&ca, WEB, Duration::from_secs(3600), &files).unwrap();
    let app = support::ok_app(false).await;
    let inbound: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    // Read every hour: within the test, only SIGHUP reads them again.
    let (_config_dir, config) = support::config::file(format!(
        "identity:\n  dir: {}\n  watch_interval: 1h\n\
         inbound:\n  listen: {inbound}\n  app: {app}\n  tls: permissive\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: {admin}\n\
         server:\n  threads: 1\n  shutdown_grace: 0s\n",
        files.display(),
    ));
    let (mut child, lines) = support::run_logging(&config, "info");
    wait_for(&lines, "sidecar started");
    let first = leaf_in(&files);
    assert_eq!(served(inbound, &files.join(BUNDLE_FILE)).await, first);

    // A newly issued pair, served once SIGHUP has read it.
    certs::issue(&ca, WEB, Duration::from_secs(7200), &files).unwrap();
    let next = leaf_in(&files);
    assert_ne!(next, first);
    signal(&child, "-HUP");
    let log = wait_for(&lines, "certificate files reloaded, as asked");
    assert!(
        log.contains("SIGHUP: reading the certificate files again"),
        "{log}"
    );
    assert_eq!(served(inbound, &files.join(BUNDLE_FILE)).await, next);
    let metrics = support::scrape(admin).await;
    assert!(
        metrics.contains("identity_cert_rotations_total 1"),
        "{metrics}"
    );

    // A bad certificate file: refused, named in the log, and the
    // certificate in service stays.
    support::replace_file(&files.join(CERT_FILE), "not a certificate\n");
    signal(&child, "-HUP");
    let refused = wait_for(&lines, "certificate files refused, as asked");
    assert!(
        refused.contains("rejected identity credentials"),
        "{refused}"
    );
    assert!(refused.contains(CERT_FILE), "{refused}");
    assert_eq!(served(inbound, &files.join(BUNDLE_FILE)).await, next);
    let metrics = support::scrape(admin).await;
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("identity_cert_last_update_successful 0"),
        "{metrics}"
    );

    // It still serves, and stops on SIGTERM as before.
    signal(&child, "-TERM");
    wait_for(&lines, "sidecar stopped");
    assert!(child.wait().unwrap().success());
}

/// An identity issued from a CA directory: SIGHUP reads the directory,
/// issues nothing while it is unchanged, and issues from a CA replaced in
/// it at once, long before the renewal is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_ca_directory_and_a_replaced_ca_issues_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("cluster.local", &ca).unwrap();
    let app = support::ok_app(false).await;
    let inbound: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let (_config_dir, config) = support::config::file(format!(
        "identity:\n  ca: {}\n  identity: {WEB}\n  ttl: 24h\n\
         inbound:\n  listen: {inbound}\n  app: {app}\n  tls: permissive\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  shutdown_grace: 0s\n",
        ca.display(),
    ));
    let (mut child, lines) = support::run_logging(&config, "info");
    wait_for(&lines, "sidecar started");
    let first = served(inbound, &ca.join(CA_CERT_FILE)).await;

    signal(&child, "-HUP");
    let log = wait_for(&lines, "ca directory unchanged, as asked");
    assert!(
        log.contains("SIGHUP: reading the CA directory again"),
        "{log}"
    );
    assert_eq!(served(inbound, &ca.join(CA_CERT_FILE)).await, first);

    // Another CA in the directory: it issues the certificate served.
    let next = CertificateAuthority::generate("cluster.local".parse().unwrap()).unwrap();
    next.write(&ca).unwrap();
    signal(&child, "-HUP");
    wait_for(&lines, "ca directory reloaded, as asked");
    assert_ne!(served(inbound, &ca.join(CA_CERT_FILE)).await, first);

    signal(&child, "-TERM");
    wait_for(&lines, "sidecar stopped");
    assert!(child.wait().unwrap().success());
}

/// Without policy files or an identity, SIGHUP says there is nothing to
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_an_identity_says_there_are_no_certificate_files_to_read() {
    let (_config_dir, config) = support::config::file(
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  shutdown_grace: 0s\n",
    );
    let (mut child, lines) = support::run_logging(&config, "info");
    wait_for(&lines, "sidecar started");
    signal(&child, "-HUP");
    wait_for(
        &lines,
        "SIGHUP: no policy files to read again, nor certificate files",
    );
    signal(&child, "-TERM");
    wait_for(&lines, "sidecar stopped");
    assert!(child.wait().unwrap().success());
}
