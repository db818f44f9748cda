//! Mutual TLS clients an inbound port must refuse at the handshake: one
//! whose certificate another mesh's CA issued (another trust root), as
//! Linkerd's proxy fails the handshake of a certificate its trust anchors
//! do not vouch for, rather than admitting the client as one without an
//! identity. The refusal never reaches the application, and is counted
//! once in `inbound_tcp_errors_total` (`i/o`) and in
//! `tls_handshake_failures_total`; so is one whose certificate has
//! expired. A client of the right trust root, on the same port, is served
//! with its identity, and under `all-authenticated` a plaintext client,
//! or a TLS one without a certificate, is admitted at the TLS layer and
//! then denied by authorization (`403`), as in Linkerd; on an opaque
//! port, closed and counted as denied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mesh_examples::sidecar::certs;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";
const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const HOUR: Duration = Duration::from_secs(3600);

/// The client's side of the server's certificate is not under test here:
/// every one is taken.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        mesh_tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client presenting the certificate in `dir`, or none.
fn client(dir: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    let mut config = match dir {
        Some(dir) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(dir.join(mesh_tls::creds::CERT_FILE))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
            let key = PrivateKeyDer::from_pem_file(dir.join(mesh_tls::creds::KEY_FILE)).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Sends an HTTP/1.1 request over TLS with `config`; the answer, or the
/// error that ended the exchange.
async fn exchange(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("emoji.example.org").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    tls.write_all(b"GET /headers HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n")
        .await?;
    let mut got = Vec::new();
    tokio::time::timeout(support::WAIT_BOUND, tls.read_to_end(&mut got))
        .await
        .expect("the sidecar never closed")?;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// An application answering every request with its headers, and the
/// count of the requests it got.
async fn app() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    support::serve(listener, move |req| {
        seen.fetch_add(1, Ordering::Relaxed);
        let headers: String = req
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}\n", v.to_str().unwrap_or("?")))
            .collect();
        async move { Ok(http::Response::new(support::full(headers))) }
    });
    (addr, count)
}

#[tokio::test]
async fn a_client_certificate_of_another_trust_root_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ca");
    certs::create_ca("example.org", &ours).unwrap();
    // Another mesh's CA for the same trust domain: the identity it names
    // is one this mesh knows, but no anchor of this mesh vouches for it.
    let theirs = dir.path().join("other-ca");
    certs::create_ca("example.org", &theirs).unwrap();
    certs::issue(&ours, EMOJI, HOUR, &dir.path().join("emoji")).unwrap();
    certs::issue(&ours, WEB, HOUR, &dir.path().join("web")).unwrap();
    certs::issue(&theirs, WEB, HOUR, &dir.path().join("impostor")).unwrap();

    let (app, requests) = app().await;
    let sidecar = support::sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n  tls: permissive\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  default_policy: all-authenticated\n",
        dir.path().join("emoji").display()
    ));
    let inbound = sidecar.inbound[0];

    let refused = exchange(inbound, client(Some(&dir.path().join("impostor")))).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(requests.load(Ordering::Relaxed), 0);

    let served = exchange(inbound, client(Some(&dir.path().join("web"))))
        .await
        .unwrap();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(
        served.contains(&format!("mesh-client-id: {WEB}\n")),
        "{served}"
    );
    assert!(
        served.contains(&format!("l5d-client-id: {WEB}\n")),
        "{served}"
    );
    assert_eq!(requests.load(Ordering::Relaxed), 1);

    // Admitted without an identity, then denied by the policy.
    let anonymous = exchange(inbound, client(None)).await.unwrap();
    assert!(anonymous.starts_with("HTTP/1.1 403"), "{anonymous}");
    let plaintext = support::raw_exchange(
        inbound,
        "GET / HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(plaintext.starts_with("HTTP/1.1 403"), "{plaintext}");
    assert_eq!(requests.load(Ordering::Relaxed), 1);

    let metrics = support::scrape_until(sidecar.admin, |m| {
        support::series(m, "inbound_tcp_errors_total", &[]) >= 1
    })
    .await;
    assert_counted(&metrics, "inbound_tcp_errors_total", &["error=\"i/o\""], 1);
    assert_counted(
        &metrics,
        "tls_handshake_failures_total",
        &["direction=\"inbound\""],
        1,
    );
    support::stop(sidecar).await;
}

/// A certificate for `WEB` from the issuer in `ca`, valid for a minute
/// that ended an hour ago, written where [`client`] reads it.
fn expired(ca: &Path, out: &Path) {
    use rcgen::{
        CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
    };
    let issuer_pem = std::fs::read_to_string(ca.join("issuer.crt")).unwrap();
    let issuer_key =
        KeyPair::from_pem(&std::fs::read_to_string(ca.join("issuer.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&issuer_pem, issuer_key).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(WEB.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let ended = std::time::SystemTime::now() - HOUR;
    params.not_before = (ended - Duration::from_secs(60)).into();
    params.not_after = ended.into();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(
        out.join(mesh_tls::creds::CERT_FILE),
        format!("{}{issuer_pem}", cert.pem()),
    )
    .unwrap();
    std::fs::write(out.join(mesh_tls::creds::KEY_FILE), key.serialize_pem()).unwrap();
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    certs::issue(&ca, EMOJI, HOUR, &dir.path().join("emoji")).unwrap();
    expired(&ca, &dir.path().join("expired"));

    let (app, requests) = app().await;
    // The default policy admits any client: one refused is refused by
    // the handshake, not by authorization.
    let sidecar = support::sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n  tls: permissive\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        dir.path().join("emoji").display()
    ));
    let refused = exchange(
        sidecar.inbound[0],
        client(Some(&dir.path().join("expired"))),
    )
    .await;
    assert!(refused.is_err(), "admitted: {refused:?}");
    assert_eq!(requests.load(Ordering::Relaxed), 0);
    let metrics = support::scrape_until(sidecar.admin, |m| {
        support::series(m, "tls_handshake_failures_total", &[]) >= 1
    })
    .await;
    assert_counted(&metrics, "inbound_tcp_errors_total", &["error=\"i/o\""], 1);
    support::stop(sidecar).await;
}

/// Writes `ping` on `io`, closes once it is echoed, and reads until
/// the close: what came back.
async fn ping<T>(mut io: T) -> Vec<u8>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = io.write_all(b"ping").await;
    let mut got = Vec::new();
    let mut buf = [0; 64];
    loop {
        let read = tokio::time::timeout(support::WAIT_BOUND, io.read(&mut buf))
            .await
            .expect("the sidecar never closed");
        match read {
            Ok(0) | Err(_) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 4 {
                    // Closed as a client closes, TLS's close_notify
                    // first: the connection ends without an error.
                    let _ = io.shutdown().await;
                }
            }
        }
    }
}

/// An opaque port under `all-authenticated`: a mutual-TLS client is
/// carried through; a plaintext client, or a TLS one without a
/// certificate, is closed without reaching the application, and counted
/// as denied, as Linkerd closes an unauthorized TCP connection.
#[tokio::test]
async fn an_opaque_port_that_requires_identity_closes_clients_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    certs::issue(&ca, EMOJI, HOUR, &dir.path().join("emoji")).unwrap();
    certs::issue(&ca, WEB, HOUR, &dir.path().join("web")).unwrap();
    let (echo, accepted) = support::tcp_echo().await;
    let sidecar = support::sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {echo}\n  protocol: opaque\n  tls: permissive\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  detect_timeout: 1s\n\
         policy:\n  default_policy: all-authenticated\n",
        dir.path().join("emoji").display()
    ));
    let inbound = sidecar.inbound[0];
    let connect = |config| async move {
        let tcp = TcpStream::connect(inbound).await.unwrap();
        tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("emoji.example.org").unwrap(), tcp)
            .await
            .unwrap()
    };

    let meshed = ping(connect(client(Some(&dir.path().join("web")))).await).await;
    assert_eq!(meshed, b"ping");
    let anonymous = ping(connect(client(None)).await).await;
    assert_eq!(
        anonymous, b"",
        "a TLS client without a certificate was carried"
    );
    let plaintext = ping(TcpStream::connect(inbound).await.unwrap()).await;
    assert_eq!(plaintext, b"", "a plaintext client was carried");
    assert_eq!(accepted.load(Ordering::Relaxed), 1);

    let metrics = support::scrape_until(sidecar.admin, |m| {
        support::series(m, "inbound_tcp_authz_deny_total", &[]) >= 2
    })
    .await;
    assert_counted(&metrics, "inbound_tcp_authz_deny_total", &[], 2);
    assert_counted(&metrics, "inbound_tcp_authz_allow_total", &[], 1);
    assert_counted(&metrics, "inbound_tcp_errors_total", &[], 0);
    support::stop(sidecar).await;
}

/// Asserts that `family`'s series with `labels` add up to `want`, showing
/// the TLS, error and authorization series when they do not.
fn assert_counted(metrics: &str, family: &str, labels: &[&str], want: u64) {
    let shown: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.contains("errors_total")
                || l.contains("handshake_failures")
                || l.starts_with("inbound_tcp_authz")
        })
        .collect();
    assert_eq!(
        support::series(metrics, family, labels),
        want,
        "{family} {labels:?}:\n{}",
        shown.join("\n")
    );
}
