//! Fixtures for the tests of local credentials outside their validity:
//! a clock the test sets, and certificates of fixed dates signed by a
//! trust anchor generated with rcgen.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use mesh_core::{BoxError, serve::Accepted};
use mesh_tls::{
    CredentialStore, Credentials, ServerIo, StoreConfig, TlsAccept, accept::AcceptError,
    creds::UnusableCredentials,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::{AlertDescription, time_provider::TimeProvider};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{RawIssuer, accept_one, find, raw_client, uri_san};

pub const API: &str = "spiffe://example.org/ns/shop/sa/api";
pub const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// 2030-01-01T00:00:00Z.
pub const JAN_1: u64 = 1_893_456_000;
pub const DAY: u64 = 86_400;

pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A clock the test sets.
#[derive(Debug)]
pub struct TestClock(AtomicU64);

impl TestClock {
    pub fn at(secs: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(secs)))
    }

    pub fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl TimeProvider for TestClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            self.0.load(Ordering::SeqCst),
        )))
    }
}

/// A trust anchor for example.org, valid through 2030 and 2031, and the
/// workload certificates it signs with the validity asked for.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    anchor: rustls_pki_types::CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "example.org anchor");
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = at(JAN_1 - DAY).into();
        params.not_after = at(JAN_1 + 730 * DAY).into();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let anchor = params.self_signed(&key).unwrap().der().clone();
        Self {
            issuer: Issuer::new(params, key),
            anchor,
        }
    }

    /// Credentials naming `identity`, valid from `not_before` to
    /// `not_after` (seconds since the epoch).
    pub fn creds(&self, identity: &str, not_before: u64, not_after: u64) -> Credentials {
        let mut params = RawIssuer::params(vec![uri_san(identity)]);
        params.not_before = at(not_before).into();
        params.not_after = at(not_after).into();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        Credentials::from_der(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            vec![self.anchor.clone()],
        )
        .unwrap()
    }

    /// Credentials naming `identity` whose chain sends two certificates of
    /// its issuer (same name, same key): an old one that expires on
    /// 2030-01-03, then the reissued one, valid through 2030. The leaf is
    /// valid from 2030-01-01 to 2030-01-11. Until 2030-01-03 webpki builds
    /// the path through the old one; after, through the reissued one.
    pub fn creds_with_a_reissued_issuer(&self, identity: &str) -> Credentials {
        self.creds_with_a_second_issuer(identity, true)
    }

    /// As [`Pki::creds_with_a_reissued_issuer`], but when `same_key` is
    /// false the second certificate of the issuer's name has another key:
    /// it did not sign the workload certificate, and no path through it
    /// verifies.
    pub fn creds_with_a_second_issuer(&self, identity: &str, same_key: bool) -> Credentials {
        let issuer_params = |not_after: u64| {
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, "example.org issuer");
            params.subject_alt_names = vec![uri_san("spiffe://example.org")];
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_before = at(JAN_1 - DAY).into();
            params.not_after = at(not_after).into();
            params
        };
        let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let old = issuer_params(JAN_1 + 2 * DAY)
            .signed_by(&issuer_key, &self.issuer)
            .unwrap();
        let reissued_params = issuer_params(JAN_1 + 365 * DAY);
        let other_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let reissued = reissued_params
            .signed_by(
                if same_key { &issuer_key } else { &other_key },
                &self.issuer,
            )
            .unwrap();
        let issuer = Issuer::new(reissued_params, issuer_key);
        let mut params = RawIssuer::params(vec![uri_san(identity)]);
        params.not_before = at(JAN_1).into();
        params.not_after = at(JAN_1 + 10 * DAY).into();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = params.signed_by(&key, &issuer).unwrap();
        Credentials::from_der(
            vec![
                leaf.der().clone(),
                old.der().clone(),
                reissued.der().clone(),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            vec![self.anchor.clone()],
        )
        .unwrap()
    }

    /// A store on `clock` serving credentials for `identity` valid on
    /// 2030-01-01, loaded at its noon.
    pub fn store(&self, clock: &Arc<TestClock>, identity: &str) -> CredentialStore {
        let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
        clock.set(JAN_1 + DAY / 2);
        store
            .update(self.creds(identity, JAN_1, JAN_1 + DAY))
            .unwrap();
        store
    }
}

/// One TLS handshake to `accept`, from a rustls client that trusts any
/// server and presents no certificate (a peer as lax as can be): the
/// acceptor's verdict, and the client's.
pub async fn handshake(
    accept: &TlsAccept,
) -> (
    Result<Accepted<ServerIo<TcpStream>>, BoxError>,
    std::io::Result<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = accept_one(listener, accept.clone());
    let config = raw_client(mesh_tls::provider(), mesh_tls::PROTOCOL_VERSIONS, None);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map(drop);
    (server.await.unwrap(), client)
}

/// The refusal the acceptor reported.
pub fn refusal(verdict: Result<Accepted<ServerIo<TcpStream>>, BoxError>) -> UnusableCredentials {
    let error = match verdict {
        Ok(accepted) => panic!("served, as {:?}", accepted.tls),
        Err(error) => error,
    };
    match error.downcast_ref::<AcceptError>() {
        Some(AcceptError::CredentialsUnusable(unusable)) => unusable.clone(),
        _ => panic!("another refusal: {error:?}"),
    }
}

/// The client was told, with a fatal alert, that the server would not
/// finish the handshake.
#[track_caller]
pub fn assert_alerted(client: std::io::Result<()>) {
    let error = client.expect_err("the client finished the handshake");
    assert_eq!(
        find::<rustls::Error>(&error),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::AccessDenied
        )),
        "{error:?}"
    );
}
