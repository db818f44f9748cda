//! Mutual TLS between sidecars: real sockets on 127.0.0.1, real TLS, and
//! certificates from the development CA the `certs` subcommands write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use http::{Request, StatusCode, Version};
use mesh_examples::sidecar::{certs, certs::CertsError};
use support::*;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";
const HOUR: Duration = Duration::from_secs(3600);

/// A CA and one certificate directory per identity, in a temporary
/// directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        certs::create_ca("example.org", &dir.path().join("ca")).unwrap();
        Self { dir }
    }

    fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca")
    }

    /// Issues a certificate for `identity` into a directory named `name`.
    fn issue(&self, name: &str, identity: &str) -> std::path::PathBuf {
        let out = self.dir.path().join(name);
        certs::issue(&self.ca(), identity, HOUR, &out).unwrap();
        out
    }
}

/// A sidecar in front of `app`, with its identity from `certs`.
fn server_side(certs: &Path, app: std::net::SocketAddr, mode: &str) -> String {
    format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  tls: {mode}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n",
        certs.display()
    )
}

/// A sidecar that issues its own identity `WEB` from the CA and reaches
/// `emoji` at `endpoint`, expecting `server_identity`.
fn client_side(pki: &Pki, endpoint: std::net::SocketAddr, server_identity: &str) -> String {
    format!(
        "identity:\n  ca: {}\n  identity: {WEB}\n  ttl: 1h\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{endpoint}]\n      identity: {server_identity}\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n",
        pki.ca().display()
    )
}

fn headers_request(path: &str, version: Version) -> Request<Body> {
    Request::get(format!("http://emoji{path}"))
        .version(version)
        .header(
            "mesh-client-id",
            "spiffe://example.org/ns/emojivoto/sa/admin",
        )
        .body(full(""))
        .unwrap()
}

/// Sends `req` to `addr` over HTTP/1.1 or HTTP/2, as its version says.
async fn send(
    addr: std::net::SocketAddr,
    req: Request<Body>,
) -> http::Response<hyper::body::Incoming> {
    if req.version() == Version::HTTP_2 {
        return h2_via(addr, req).await.unwrap();
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    h1.send_request(req).await.unwrap()
}

async fn text(res: http::Response<hyper::body::Incoming>) -> String {
    String::from_utf8(body_bytes(res).await.to_vec()).unwrap()
}

#[tokio::test]
async fn two_sidecars_talk_mtls_and_the_app_sees_the_callers_identity() {
    let pki = Pki::new();
    let (app, _) = backend().await;
    let emoji = sidecar(&server_side(&pki.issue("emoji", EMOJI), app, "strict"));
    let web = sidecar(&client_side(&pki, emoji.inbound[0], EMOJI));
    let outbound = web.outbound;

    for version in [Version::HTTP_11, Version::HTTP_2] {
        let res = send(outbound, headers_request("/headers", version)).await;
        assert_eq!(res.status(), StatusCode::OK, "{version:?}");
        let seen = text(res).await;
        // Exactly one mesh-client-id, naming the calling sidecar; the
        // forged one the application sent is gone.
        let ids: Vec<&str> = seen
            .lines()
            .filter_map(|l| l.strip_prefix("mesh-client-id: "))
            .collect();
        assert_eq!(ids, [WEB], "{version:?}: {seen}");
    }
    stop(web).await;
    stop(emoji).await;
}

#[tokio::test]
async fn a_forged_client_id_from_a_plaintext_peer_never_reaches_the_app() {
    let pki = Pki::new();
    let (app, _) = backend().await;
    let emoji = sidecar(&server_side(&pki.issue("emoji", EMOJI), app, "permissive"));
    let inbound = emoji.inbound[0];
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let res = send(inbound, headers_request("/headers", version)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let seen = text(res).await;
        assert!(!seen.contains("mesh-client-id"), "{version:?}: {seen}");
    }
    stop(emoji).await;
}

#[tokio::test]
async fn strict_inbound_refuses_plaintext_and_permissive_serves_it() {
    let pki = Pki::new();
    let certs = pki.issue("emoji", EMOJI);
    let (app, _) = backend().await;
    let strict = sidecar(&server_side(&certs, app, "strict"));
    let permissive = sidecar(&server_side(&certs, app, "permissive"));

    let url = |addr: std::net::SocketAddr| format!("http://{addr}/");
    let refused = http1()
        .request(Request::get(url(strict.inbound[0])).body(full("")).unwrap())
        .await;
    assert!(refused.is_err(), "strict served plaintext: {refused:?}");

    let res = http1()
        .request(
            Request::get(url(permissive.inbound[0]))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res).await, "hello");
    stop(strict).await;
    stop(permissive).await;
}

#[tokio::test]
async fn outbound_to_a_wrong_identity_fails_closed_with_a_502() {
    let pki = Pki::new();
    let (app, _) = backend().await;
    // Permissive: a plaintext fallback would be served, and answer 200.
    let emoji = sidecar(&server_side(&pki.issue("emoji", EMOJI), app, "permissive"));
    let impostor = "spiffe://example.org/ns/emojivoto/sa/voting";
    let web = sidecar(&client_side(&pki, emoji.inbound[0], impostor));
    let outbound = web.outbound;
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let res = send(outbound, headers_request("/", version)).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{version:?}");
        assert_eq!(res.headers()["mesh-error"], "upstream connect error");
    }
    // The server side counted the refused handshakes, once it had read
    // the client's alert, on its own threads.
    let failed = |metrics: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with("tls_handshake_failures_total{") && !l.ends_with(" 0"))
    };
    let metrics = scrape_until(emoji.admin, failed).await;
    assert!(failed(&metrics), "{metrics}");
    stop(web).await;
    stop(emoji).await;
}

#[tokio::test]
async fn ready_waits_for_the_certificate_files() {
    let pki = Pki::new();
    let certs = pki.dir.path().join("later");
    let (app, _) = backend().await;
    let yaml = server_side(&certs, app, "permissive")
        .replace("\ninbound:", "\n  watch_interval: 100ms\ninbound:");
    let emoji = sidecar(&yaml);
    let ready = |admin| async move {
        let res = http1()
            .request(
                Request::get(format!("http://{admin}/ready"))
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        res.status()
    };
    assert_eq!(ready(emoji.admin).await, StatusCode::SERVICE_UNAVAILABLE);

    pki.issue("later", EMOJI);
    tokio::time::timeout(Duration::from_secs(10), async {
        while ready(emoji.admin).await != StatusCode::OK {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("ready once the files exist");
    let metrics = scrape(emoji.admin).await;
    assert!(
        metrics.contains("identity_cert_expiration_timestamp_seconds "),
        "{metrics}"
    );
    stop(emoji).await;
}

#[test]
fn certs_subcommands_write_private_keys_readable_by_the_owner_only() {
    let pki = Pki::new();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for key in ["ca.key", "issuer.key"] {
        assert_eq!(mode(&pki.ca().join(key)), 0o600, "{key}");
    }
    let issued = certs::issue(&pki.ca(), WEB, HOUR, &pki.dir.path().join("web")).unwrap();
    assert_eq!(issued.identity, WEB);
    assert_eq!(mode(&issued.files.key), 0o600);
    for cert in [&issued.files.cert, &issued.files.bundle] {
        assert_eq!(mode(cert) & 0o600, 0o600, "{}", cert.display());
    }
    assert!(
        issued
            .to_string()
            .starts_with(&format!("issued {WEB} for 1h to ")),
        "{issued}"
    );

    // Another trust domain is refused, and so is a second CA in one place.
    let outside = certs::issue(
        &pki.ca(),
        "spiffe://other.org/ns/emojivoto/sa/web",
        HOUR,
        &pki.dir.path().join("other"),
    )
    .unwrap_err();
    assert!(
        matches!(
            &outside,
            CertsError::Ca(mesh_tls::ca::CaError::OutsideTrustDomain { .. })
        ),
        "{outside:?}"
    );
    assert!(!pki.dir.path().join("other").join("tls.key").exists());
    let again = certs::create_ca("example.org", &pki.ca()).unwrap_err();
    assert!(matches!(
        again,
        CertsError::Ca(mesh_tls::ca::CaError::AlreadyExists(_))
    ));
    assert!(matches!(
        certs::create_ca("not a domain", &pki.dir.path().join("x")),
        Err(CertsError::TrustDomain(_))
    ));
}
