//! Chains that reach their trust anchor through a cross-signature: the
//! root was reissued with a new key under its old name, and the new
//! root's certificate, signed by the old one, travels in the chain for
//! peers whose bundle holds only the old root. webpki tries the anchor of
//! that name, finds its key did not sign the certificate below, and builds
//! the path through the cross-signature, so the chain verifies only while
//! the cross-signature is valid: local credentials are usable, and a
//! connection authenticated by such a chain lives, until then, not until
//! the workload certificate's own `notAfter`.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use mesh_core::serve::{Server, ServerConfig, shutdown};
use mesh_tls::{
    AcceptConfig, CredentialStore, Credentials, InboundMode, StoreConfig, TlsAccept,
    connect::ConnectionExpired, creds::OutsideValidity,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::{net::TcpStream, sync::Notify};

use crate::{
    support::{RawIssuer, accept_one, connector, encode, find, raw_client, uri_san},
    validity::{API, DAY, JAN_1, TestClock, WEB, assert_alerted, at, handshake, refusal},
};

/// When the cross-signature expires: 2030-01-03.
const CROSS_SIGNATURE_ENDS: u64 = JAN_1 + 2 * DAY;

/// A minute, the longest the retirement timers wait before the store's
/// clock is read again, and a second to spare.
const RECHECK: Duration = Duration::from_secs(61);

/// A CA certificate named `name`, valid from a day before 2030 until
/// `not_after`.
fn ca_params(name: &str, not_after: u64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![uri_san("spiffe://example.org")];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = at(JAN_1 - DAY).into();
    params.not_after = at(not_after).into();
    params
}

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

/// An old root, valid through 2031, and under the new root (its name,
/// another key) an issuer, valid through 2030; the new root's
/// certificate cross-signed by the old one expires on 2030-01-03.
struct CrossSigned {
    old_root: Issuer<'static, KeyPair>,
    old_root_cert: CertificateDer<'static>,
    cross_signature: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
    issuer_cert: rcgen::Certificate,
}

impl CrossSigned {
    fn new() -> Self {
        let old_root_params = ca_params("example.org root", JAN_1 + 730 * DAY);
        let old_root_key = key();
        let old_root_cert = old_root_params.self_signed(&old_root_key).unwrap();
        let old_root = Issuer::new(old_root_params, old_root_key);

        let new_root_params = ca_params("example.org root", CROSS_SIGNATURE_ENDS);
        let new_root_key = key();
        let cross_signature = new_root_params.signed_by(&new_root_key, &old_root).unwrap();
        let new_root = Issuer::new(new_root_params, new_root_key);

        let issuer_params = ca_params("example.org issuer", JAN_1 + 365 * DAY);
        let issuer_key = key();
        let issuer_cert = issuer_params.signed_by(&issuer_key, &new_root).unwrap();
        Self {
            old_root,
            old_root_cert: old_root_cert.der().clone(),
            cross_signature,
            issuer: Issuer::new(issuer_params, issuer_key),
            issuer_cert,
        }
    }

    /// A workload certificate for `identity` valid from 2030-01-01 to
    /// 2030-01-11, signed by `issuer`, and its key.
    fn leaf(identity: &str, issuer: &Issuer<'_, KeyPair>) -> (rcgen::Certificate, KeyPair) {
        let mut params = RawIssuer::params(vec![uri_san(identity)]);
        params.not_before = at(JAN_1).into();
        params.not_after = at(JAN_1 + 10 * DAY).into();
        let key = key();
        (params.signed_by(&key, issuer).unwrap(), key)
    }

    /// The chain through the cross-signature (leaf, issuer,
    /// cross-signature) for `identity`, and its key.
    fn chain(&self, identity: &str) -> (Vec<&rcgen::Certificate>, rcgen::Certificate, KeyPair) {
        let (leaf, key) = Self::leaf(identity, &self.issuer);
        (vec![&self.issuer_cert, &self.cross_signature], leaf, key)
    }

    /// Credentials through the cross-signature, trusting the old root.
    fn cross_signed(&self, identity: &str) -> Credentials {
        let (issuers, leaf, key) = self.chain(identity);
        let chain = std::iter::once(&leaf)
            .chain(issuers)
            .map(|cert| cert.der().clone())
            .collect();
        self.credentials(chain, &key)
    }

    /// Credentials signed by the old root itself, trusting it.
    fn direct(&self, identity: &str) -> Credentials {
        let (leaf, key) = Self::leaf(identity, &self.old_root);
        self.credentials(vec![leaf.der().clone()], &key)
    }

    fn credentials(&self, chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Credentials {
        Credentials::from_der(
            chain,
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            vec![self.old_root_cert.clone()],
        )
        .unwrap()
    }
}

fn store_at(clock: &Arc<TestClock>, creds: Credentials) -> CredentialStore {
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    store.update(creds).unwrap();
    store
}

#[test]
fn a_chain_through_a_cross_signed_root_is_usable_until_the_cross_signature_expires() {
    let creds = CrossSigned::new().cross_signed(WEB);
    creds.check(at(JAN_1 + DAY)).unwrap();
    assert_eq!(
        creds.usable_at(at(JAN_1 + DAY)).unwrap(),
        at(CROSS_SIGNATURE_ENDS)
    );
    // Past it, the chain no longer verifies, and is not presented.
    let unusable = creds.usable_at(at(JAN_1 + 3 * DAY)).unwrap_err();
    assert_eq!(
        unusable.validity,
        OutsideValidity::Expired {
            not_after: at(CROSS_SIGNATURE_ENDS)
        }
    );
    assert!(creds.check(at(JAN_1 + 3 * DAY)).is_err());
}

#[tokio::test]
async fn a_store_stops_presenting_it_once_the_cross_signature_expires() {
    let clock = TestClock::at(JAN_1 + DAY);
    let store = store_at(&clock, CrossSigned::new().cross_signed(WEB));
    assert!(store.is_ready());

    clock.set(JAN_1 + 3 * DAY);
    assert!(!store.is_ready());
    let accept = TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Permissive));
    let (verdict, client) = handshake(&accept).await;
    assert_alerted(client);
    assert_eq!(
        refusal(verdict).validity,
        OutsideValidity::Expired {
            not_after: at(CROSS_SIGNATURE_ENDS)
        }
    );
}

#[tokio::test]
async fn a_client_connection_to_a_server_sending_it_is_closed_when_the_cross_signature_expires() {
    let pki = CrossSigned::new();
    // The server's end is accepted and held, never served: nothing of the
    // server's closes the connection.
    let server_store = store_at(&TestClock::at(JAN_1 + DAY), pki.cross_signed(API));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = accept_one(
        listener,
        TlsAccept::new(server_store, AcceptConfig::with_mode(InboundMode::Strict)),
    );
    let clock = TestClock::at(JAN_1 + DAY);
    let client_store = store_at(&clock, pki.direct(WEB));
    let uri = format!("http://{addr}/").parse().unwrap();
    let io = tower::ServiceExt::oneshot(connector(client_store, addr, API), uri)
        .await
        .unwrap();
    let _held = accepted.await.unwrap().unwrap();
    let mut io = hyper_util::rt::TokioIo::new(io);

    // Both workload certificates have days left; the cross-signature
    // that verified the server's does not.
    tokio::time::pause();
    clock.set(CROSS_SIGNATURE_ENDS + 1);
    let read = tokio::time::timeout(
        RECHECK,
        tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1]),
    )
    .await
    .expect("still open a minute after the server's cross-signature expired");
    let error = read.expect_err("the connection's read succeeded");
    assert!(find::<ConnectionExpired>(&error).is_some(), "{error:?}");
}

#[tokio::test]
async fn a_server_connection_from_a_client_sending_it_is_drained_before_the_cross_signature_expires()
 {
    let pki = CrossSigned::new();
    let clock = TestClock::at(JAN_1 + DAY);
    let server_store = store_at(&clock, pki.direct(API));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrived = Arc::new(Notify::new());
    let handler = {
        let arrived = arrived.clone();
        tower::service_fn(move |_: Request<Incoming>| {
            let arrived = arrived.clone();
            async move {
                arrived.notify_one();
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
            }
        })
    };
    let (_stop, signal) = shutdown::channel();
    let accept = TlsAccept::new(
        server_store.clone(),
        AcceptConfig::with_mode(InboundMode::Strict),
    );
    let server = Server::new(ServerConfig::default()).with_accept(accept);
    tokio::spawn(server.serve_http(listener, handler, signal));

    // A client presenting the chain through the cross-signature, with a
    // request the handler holds.
    let (issuers, leaf, key) = pki.chain(WEB);
    let chain_pem = std::iter::once(&leaf)
        .chain(issuers)
        .map(rcgen::Certificate::pem)
        .collect::<String>();
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((&chain_pem, &key.serialize_pem())),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let held = tokio::spawn(async move { send.send_request(req).await });
    arrived.notified().await;

    // Past the drain 30 seconds before the cross-signature expires, both
    // workload certificates with days left.
    tokio::time::pause();
    clock.set(CROSS_SIGNATURE_ENDS - 10);
    tokio::time::sleep(RECHECK).await;
    let metrics = encode(&server_store);
    assert!(
        metrics.lines().any(|line| {
            line == "tls_connections_retired_total{direction=\"inbound\",reason=\"expiry\"} 1"
        }),
        "not drained before the client's cross-signature expired: {metrics}"
    );
    held.abort();
}
