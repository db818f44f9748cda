//! Rotation: credentials replaced on disk or pushed in while traffic runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::Request;
use hyper::body::Incoming;
use mesh_tls::{
    AcceptConfig, CredentialFiles, CredentialStore, InboundMode, TlsAccept,
    ca::CertificateAuthority,
};
use support::*;
use tower::{Service, ServiceExt};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";
const WATCH: Duration = Duration::from_millis(10);

/// Issues `identity` into `dir`; returns the new workload certificate's DER.
fn issue_into(ca: &CertificateAuthority, identity: &str, dir: &std::path::Path) -> Vec<u8> {
    let issued = ca.issue(&id(identity), HOUR).unwrap();
    issued.write(dir).unwrap();
    issued.credentials().unwrap().chain()[0].to_vec()
}

fn watched(dir: &std::path::Path) -> CredentialStore {
    let store = CredentialStore::default();
    let files = CredentialFiles::in_dir(dir);
    store.load_files(&files).unwrap();
    tokio::spawn(store.clone().watch_files(files, WATCH));
    store
}

fn leaf(store: &CredentialStore) -> Vec<u8> {
    store.credentials().unwrap().chain()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_drops_no_request_and_new_handshakes_use_the_new_certificates() {
    const WORKERS: usize = 4;
    const REQUESTS: usize = 2_400;
    let ca = ca();
    let dirs = tempfile::tempdir().unwrap();
    let (server_dir, client_dir) = (dirs.path().join("api"), dirs.path().join("web"));
    issue_into(&ca, API, &server_dir);
    issue_into(&ca, WEB, &client_dir);
    let server_store = watched(&server_dir);
    let client_store = watched(&client_dir);

    let accept = RecordingAccept::new(server_store.clone());
    let server = serve_with(accept.clone()).await;
    let addr = server.addr;
    let connector = connector(client_store.clone(), addr, API);
    let mesh = client(connector.clone());

    let done = Arc::new(AtomicUsize::new(0));
    let (progress, mut watch_progress) = tokio::sync::watch::channel(0usize);
    let progress = Arc::new(progress);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (mut mesh, done, progress) = (mesh.clone(), done.clone(), progress.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while done.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                    match get(&mut mesh, addr).await {
                        Ok(r) if r.status == 200 && r.body == format!("mutual {WEB}") => {}
                        Ok(r) => failures.push(format!("{} {}", r.status, r.body)),
                        Err(e) => failures.push(format!("{e:?}")),
                    }
                    progress.send_modify(|n| *n += 1);
                }
                failures
            })
        })
        .collect();

    for (round, at) in [(1u64, REQUESTS / 4), (2, REQUESTS / 2)] {
        watch_progress.wait_for(|n| *n >= at).await.unwrap();
        let new_server = issue_into(&ca, API, &server_dir);
        let new_client = issue_into(&ca, WEB, &client_dir);
        wait_for(&server_store, round + 1, 0).await;
        wait_for(&client_store, round + 1, 0).await;
        assert_eq!(leaf(&server_store), new_server);
        assert_eq!(leaf(&client_store), new_client);

        // A new handshake sees the new server certificate...
        let uri = format!("http://{addr}/").parse().unwrap();
        let io = connector.clone().oneshot(uri).await.unwrap();
        let presented = io.tls().unwrap().peer_certificates().unwrap()[0].to_vec();
        assert_eq!(presented, new_server, "round {round}");
        drop(io);
        // ...while the load goes on over its pooled connections: each end
        // authenticated the other's previous certificate, valid for the
        // hour yet, under the same trust bundle.
        let target = progress.borrow().saturating_add(100).min(REQUESTS);
        watch_progress.wait_for(|n| *n >= target).await.unwrap();
        assert!(
            accept.saw_client(&new_client),
            "round {round}: the probe handshakes with the new client certificate"
        );
    }

    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    assert!(*watch_progress.borrow() >= REQUESTS);
    assert_eq!(failures, Vec::<String>::new(), "no request may fail");
    let metrics = encode(&client_store);
    assert!(
        metrics.contains("identity_cert_rotations_total 2"),
        "{metrics}"
    );
    assert!(
        !metrics
            .contains("tls_connections_retired_total{direction=\"outbound\",reason=\"rotation\"}"),
        "renewals retire no pooled connection: {metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_corrupt_replacement_keeps_the_old_credentials_and_traffic_goes_on() {
    let ca = ca();
    let dirs = tempfile::tempdir().unwrap();
    issue_into(&ca, API, dirs.path());
    let store = watched(dirs.path());
    let before = leaf(&store);
    let server = serve(store.clone(), InboundMode::Strict).await;
    let mut mesh = client(connector(support::store(&ca, WEB), server.addr, API));
    assert_eq!(get(&mut mesh, server.addr).await.unwrap().status, 200);

    let cert_file = dirs.path().join("tls.crt");
    let original = std::fs::read(&cert_file).unwrap();
    replace(&cert_file, b"-----BEGIN CERTIFICATE-----\nnot base64!\n");
    wait_for(&store, 1, 1).await;
    assert_eq!(leaf(&store), before);

    // The certificate back, beside a key from another issue: both parse,
    // but the key is not the certificate's.
    let other = ca.issue(&id(API), HOUR).unwrap();
    replace(&cert_file, &original);
    replace(&dirs.path().join("tls.key"), other.key_pem().as_bytes());
    wait_for(&store, 1, 2).await;
    assert_eq!(leaf(&store), before);

    // New handshakes still work, with the old credentials.
    let mut fresh = client(connector(support::store(&ca, WEB), server.addr, API));
    assert_eq!(get(&mut fresh, server.addr).await.unwrap().status, 200);
    assert_eq!(get(&mut mesh, server.addr).await.unwrap().status, 200);
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"key_mismatch\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("identity_cert_rotations_total 0"),
        "{metrics}"
    );
    server.stop().await;
}

/// Replaces a file atomically, as certificate writers do: a watcher sees
/// the old contents or the new, never a truncated file.
fn replace(path: &std::path::Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_style_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let first = issue_into(&ca, API, &root.join("..v1"));
    symlink("..v1", root.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        symlink(format!("..data/{file}"), root.join(file)).unwrap();
    }
    let store = watched(root);
    assert_eq!(leaf(&store), first);

    // What the kubelet does: write a new directory, then atomically swap
    // the `..data` symlink to it.
    let second = issue_into(&ca, API, &root.join("..v2"));
    symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    wait_for(&store, 2, 0).await;
    assert_eq!(leaf(&store), second);
}

#[tokio::test]
async fn in_flight_requests_finish_on_a_retired_connection_and_later_ones_use_a_new_one() {
    let (ca, next) = (ca(), ca());
    let release = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = mesh_core::serve::shutdown::channel();
    let (r, e) = (release.clone(), entered.clone());
    let handler = tower::service_fn(move |req: Request<Incoming>| {
        let (release, entered) = (r.clone(), e.clone());
        async move {
            if req.uri().path() == "/slow" {
                entered.notify_one();
                release.notified().await;
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("done")))
        }
    });
    // Midway through a CA rotation: both ends trust the old anchor and
    // the next, and hold certificates of the old CA.
    let both = [&ca, &next];
    let server_store = loaded(creds_trusting(&ca, API, HOUR, &both));
    let accept = TlsAccept::new(server_store.clone(), AcceptConfig::default());
    let server = mesh_core::serve::Server::new(Default::default()).with_accept(accept);
    let server = tokio::spawn(server.serve_http(listener, handler, shutdown));

    let client_store = loaded(creds_trusting(&ca, WEB, HOUR, &both));
    let mut mesh = client(connector(client_store.clone(), addr, API));
    let first = get(&mut mesh, addr).await.unwrap().server.unwrap();

    let mut slow_client = mesh.clone();
    let slow = tokio::spawn(async move {
        let req = Request::get(format!("http://{addr}/slow"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let res = slow_client.ready().await.unwrap().call(req).await.unwrap();
        let conn = res
            .extensions()
            .get::<mesh_tls::ServerTls>()
            .unwrap()
            .connection_id();
        (res.status(), conn)
    });
    entered.notified().await;

    // Its end: both move to the next CA, and the client's bundle drops
    // the old anchor, to which the pooled connection's server chain leads.
    server_store
        .update(creds_trusting(&next, API, HOUR, &both))
        .unwrap();
    client_store
        .update(creds_trusting(&next, WEB, HOUR, &[&next]))
        .unwrap();
    assert!(
        first.is_retired(),
        "a bundle that no longer trusts the server retires the pooled connection at once"
    );

    release.notify_one();
    let (status, conn) = slow.await.unwrap();
    assert_eq!(status, 200, "the request in flight finished");
    assert_eq!(conn, first.connection_id());
    let next = get(&mut mesh, addr).await.unwrap().server.unwrap();
    assert_ne!(next.connection_id(), first.connection_id());
    assert!(!next.is_retired());
    stop.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn connections_are_retired_before_a_certificate_expires() {
    let ca = ca();
    let server = serve(store(&ca, API), InboundMode::Strict).await;
    let targets = mesh_tls::TlsTargets::new(mesh_tls::OutboundTls::Mtls(id(API)));
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    // Certificates live an hour; retiring two hours ahead retires every
    // connection as soon as it is used.
    let config = mesh_tls::ConnectConfig {
        retire_before_expiry: 2 * HOUR,
        ..Default::default()
    };
    let client_store = store(&ca, WEB);
    let connector =
        mesh_tls::TlsConnector::with_connector(http, client_store.clone(), targets, config)
            .unwrap();
    let mut mesh = client(connector);
    let first = get(&mut mesh, server.addr).await.unwrap().server.unwrap();
    let second = get(&mut mesh, server.addr).await.unwrap().server.unwrap();
    assert!(first.is_retired());
    assert_ne!(first.connection_id(), second.connection_id());
    assert!(
        encode(&client_store)
            .contains("tls_connections_retired_total{direction=\"outbound\",reason=\"expiry\"}")
    );
    server.stop().await;
}

/// An issuer whose clock runs ahead of this node's writes a certificate
/// that is not valid yet here. The watcher refuses it, but must try again once it is
/// valid: the files will not change again until the next renewal, by
/// which time the certificate in service may have expired.
#[tokio::test]
async fn a_certificate_written_before_its_not_before_is_put_in_service_once_valid() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    issue_into(&ca, API, dir.path());
    let store = watched(dir.path());

    let ahead = std::time::SystemTime::now() + Duration::from_secs(2);
    let next = ca
        .issue_with(&mesh_tls::ca::IssueRequest::new(id(API)).with_not_before(ahead))
        .unwrap();
    let next_leaf = next.credentials().unwrap().chain()[0].to_vec();
    next.write(dir.path()).unwrap();

    // The validity check reads the system clock, so this waits for the
    // two seconds to pass; it asserts nothing about how long they take.
    wait_for(&store, 2, 1).await;
    assert_eq!(leaf(&store), next_leaf);
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"not_yet_valid\"} 1"),
        "refused once, logged once: {metrics}"
    );
}

/// The same for an issuer that was renewed on a clock running ahead: the
/// workload certificate is valid, but its intermediate is not yet, so the
/// chain does not verify until the intermediate's notBefore.
#[tokio::test]
async fn a_chain_whose_intermediate_is_not_valid_yet_is_put_in_service_once_valid() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = mesh_tls::ca::write_ca(ca_dir.path(), &"example.org".parse().unwrap()).unwrap();
    issue_into(&ca, API, dir.path());
    let store = watched(dir.path());

    let read = |name| std::fs::read_to_string(ca_dir.path().join(name)).unwrap();
    let anchor_key = rcgen::KeyPair::from_pem(&read(mesh_tls::ca::CA_KEY_FILE)).unwrap();
    let anchor =
        rcgen::Issuer::from_ca_cert_pem(&read(mesh_tls::ca::CA_CERT_FILE), anchor_key).unwrap();
    let now = std::time::SystemTime::now();
    let mut issuer_params = rcgen::CertificateParams::default();
    issuer_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "issuer renewed ahead");
    issuer_params.subject_alt_names = vec![uri_san("spiffe://example.org")];
    issuer_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    issuer_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    issuer_params.not_before = (now + Duration::from_secs(2)).into();
    issuer_params.not_after = (now + 24 * HOUR).into();
    let issuer_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer_pem = issuer_params.signed_by(&issuer_key, &anchor).unwrap().pem();
    let issuer = rcgen::Issuer::new(issuer_params, issuer_key);
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let next = RawIssuer::params(vec![uri_san(API)])
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let files = CredentialFiles::in_dir(dir.path());
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&files.cert, next.pem() + &issuer_pem).unwrap();

    // The validity check reads the system clock, so this waits for the
    // two seconds to pass; it asserts nothing about how long they take.
    wait_for(&store, 2, 1).await;
    assert_eq!(leaf(&store), next.der().to_vec());
    let metrics = encode(&store);
    assert!(
        metrics.contains("identity_cert_rejected_updates_total{reason=\"not_yet_valid\"}"),
        "refused as not valid yet: {metrics}"
    );
}
