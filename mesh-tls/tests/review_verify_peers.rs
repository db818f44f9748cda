//! What a peer's certificate must be, checked on both ends of a real
//! connection: SPIFFE IDs spelled every way the SPIFFE ID spec forbids (and
//! the edges it allows), a chain deeper than verification follows, a CA
//! constrained by URI names, and dates judged by the store's clock rather
//! than the machine's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{support, validity};

use std::sync::Arc;

use mesh_core::BoxError;
use mesh_tls::{
    AcceptConfig, ConnectError, CredentialStore, InboundMode, NoIdentity, StoreConfig, TlsAccept,
    accept::AcceptError, metrics::HandshakeFailure,
};
use rcgen::{BasicConstraints, IsCa};
use support::*;
use tokio::net::TcpListener;
use validity::{DAY, JAN_1, Pki, TestClock};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn accept_error(result: Result<impl Sized, BoxError>) -> AcceptError {
    match result {
        Ok(_) => panic!("the server accepted the connection"),
        Err(e) => *e.downcast::<AcceptError>().unwrap(),
    }
}

/// Dials a raw server presenting `chain` and `key` with a mesh connector
/// trusting `raw`'s CA that expects `expected`.
async fn dial(
    raw: &RawIssuer,
    (chain, key): &(String, String),
    expected: &str,
) -> Result<(), ConnectError> {
    let addr = serve_raw_tls(chain, key).await;
    let connector = connector(store(&raw.ca, WEB), addr, expected);
    let uri = format!("http://{addr}/").parse().unwrap();
    tower::ServiceExt::oneshot(connector, uri).await.map(drop)
}

/// A SPIFFE ID of exactly `len` bytes in example.org, of path segments
/// of at most 60 bytes.
fn spiffe_id_of_len(len: usize) -> String {
    let mut id = String::from("spiffe://example.org");
    while id.len() < len {
        let room = len - id.len() - 1;
        id.push('/');
        id.push_str(&"s".repeat(room.clamp(1, 60)));
    }
    assert_eq!(id.len(), len);
    id
}

/// Spellings the SPIFFE ID spec forbids, each in a URI SAN with the
/// `spiffe` scheme: a malformed SVID, which names no one.
fn malformed() -> Vec<String> {
    let mut ids: Vec<String> = [
        // The scheme in another case.
        "Spiffe://example.org/ns/shop/sa/web",
        // The trust domain: uppercase, a character outside a-z 0-9 . - _,
        // missing, a port, userinfo.
        "spiffe://EXAMPLE.org/ns/shop/sa/web",
        "spiffe://exa+mple.org/ns/shop/sa/web",
        "spiffe://exa%6Dple.org/ns/shop/sa/web",
        "spiffe:///ns/shop/sa/web",
        "spiffe://example.org:8443/ns/shop/sa/web",
        "spiffe://web@example.org/ns/shop/sa/web",
        // The path: dot segments, empty segments, a trailing slash,
        // percent-encoding, characters outside A-Z a-z 0-9 . - _.
        "spiffe://example.org/ns/./sa/web",
        "spiffe://example.org/ns/shop/sa/..",
        "spiffe://example.org/ns/../shop/sa/web",
        "spiffe://example.org//ns/shop/sa/web",
        "spiffe://example.org/ns//sa/web",
        "spiffe://example.org/ns/shop/sa/web/",
        "spiffe://example.org/ns/shop/sa/w%65b",
        "spiffe://example.org/ns/shop/sa/w+b",
        "spiffe://example.org/ns/shop/sa/w~b",
        // A query or a fragment.
        "spiffe://example.org/ns/shop/sa/web?x=1",
        "spiffe://example.org/ns/shop/sa/web#x",
        "spiffe://example.org/ns/shop/sa/web?",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // One byte longer than the 2048 the spec allows.
    ids.push(spiffe_id_of_len(2049));
    ids
}

/// Spellings at the edges the spec allows.
fn well_formed() -> Vec<String> {
    vec![
        "spiffe://example.org/NS/Shop/SA/Web".into(),
        "spiffe://example.org/ns/shop/sa/w.e.b-1_2".into(),
        "spiffe://example.org/...".into(),
        "spiffe://example.org/a".into(),
        spiffe_id_of_len(2048),
    ]
}

#[tokio::test]
async fn the_server_refuses_client_certificates_with_malformed_spiffe_ids() {
    let raw = RawIssuer::new();
    for bad in malformed() {
        let cert = raw.sign(&RawIssuer::params(vec![uri_san(&bad)]));
        let error = accept_error(present_client_cert(&raw, API, cert).await);
        assert!(
            matches!(
                error,
                AcceptError::NoPeerIdentity(NoIdentity::MalformedSpiffeId)
            ),
            "{bad}: {error:?}"
        );
        assert_eq!(error.failure(), Some(HandshakeFailure::NoPeerIdentity));
    }
}

#[tokio::test]
async fn the_server_takes_client_spiffe_ids_at_the_edges_of_the_spec() {
    let raw = RawIssuer::new();
    for good in well_formed() {
        let cert = raw.sign(&RawIssuer::params(vec![uri_san(&good)]));
        let accepted = present_client_cert(&raw, API, cert).await.unwrap();
        assert_eq!(
            accepted.tls,
            mesh_core::Tls::Mutual { peer: id(&good) },
            "{good}"
        );
    }
}

#[tokio::test]
async fn the_client_refuses_server_certificates_with_malformed_spiffe_ids() {
    let raw = RawIssuer::new();
    for bad in malformed() {
        let cert = raw.sign(&RawIssuer::params(vec![uri_san(&bad)]));
        let error = dial(&raw, &cert, API).await.unwrap_err();
        assert!(error.is_identity_mismatch(), "{bad}: {error:?}");
        assert_eq!(
            find::<NoIdentity>(&error),
            Some(&NoIdentity::MalformedSpiffeId),
            "{bad}: {error:?}"
        );
    }
}

#[tokio::test]
async fn the_client_takes_server_spiffe_ids_at_the_edges_of_the_spec() {
    let raw = RawIssuer::new();
    for good in well_formed() {
        let cert = raw.sign(&RawIssuer::params(vec![uri_san(&good)]));
        dial(&raw, &cert, &good)
            .await
            .unwrap_or_else(|e| panic!("{good}: {e:?}"));
    }
}

/// A chain (leaf first, anchor left out) through `depth` intermediates
/// under a fresh anchor, whose PEM is returned too, with the leaf's key.
fn chain_through(depth: usize, identity: &str) -> (String, String, String) {
    let ca = |name: String, issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert.pem(), rcgen::Issuer::new(params, key))
    };
    let (anchor, mut issuer) = ca("deep anchor".into(), None);
    let mut intermediates = Vec::new();
    for i in 0..depth {
        let (pem, next) = ca(format!("deep intermediate {i}"), Some(&issuer));
        intermediates.push(pem);
        issuer = next;
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = RawIssuer::params(vec![uri_san(identity)])
        .signed_by(&key, &issuer)
        .unwrap()
        .pem();
    let chain = intermediates.into_iter().rev().fold(leaf, |c, i| c + &i);
    (chain, key.serialize_pem(), anchor)
}

/// A store for `identity` from the mesh's CA whose bundle also trusts
/// `anchor`.
fn store_trusting(identity: &str, anchor: &str) -> CredentialStore {
    let ca = ca();
    let issued = ca.issue(&id(identity), HOUR).unwrap();
    let creds = mesh_tls::Credentials::from_pem(
        issued.chain_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        format!("{}{anchor}", ca.bundle_pem()).as_bytes(),
    )
    .unwrap();
    CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap()
}

/// The acceptor's verdict on a client presenting `chain` and `key`, the
/// acceptor trusting `anchor`.
async fn present_trusting(
    anchor: &str,
    chain: &str,
    key: &str,
) -> Result<mesh_core::serve::Accepted<mesh_tls::ServerIo<tokio::net::TcpStream>>, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(store_trusting(API, anchor), AcceptConfig::default());
    let server = accept_one(listener, accept);
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((chain, key)),
    );
    let client = tokio::spawn(raw_get(config, addr));
    let verdict = server.await.unwrap();
    client.abort();
    verdict
}

/// The connector's verdict on a server presenting `chain` and `key`, the
/// connector trusting `anchor`.
async fn dial_trusting(anchor: &str, chain: &str, key: &str) -> Result<(), ConnectError> {
    let addr = serve_raw_tls(chain, key).await;
    let uri = format!("http://{addr}/").parse().unwrap();
    tower::ServiceExt::oneshot(connector(store_trusting(WEB, anchor), addr, API), uri)
        .await
        .map(drop)
}

// webpki follows at most six intermediates from a leaf to its anchor: a
// deeper chain is refused on both ends, whatever its constraints allow,
// and the error says the path is too deep.
#[tokio::test]
async fn a_chain_deeper_than_verification_follows_is_refused_on_both_ends() {
    let (chain, key, anchor) = chain_through(6, WEB);
    present_trusting(&anchor, &chain, &key).await.unwrap();
    let (chain, key, anchor) = chain_through(7, WEB);
    let error = accept_error(present_trusting(&anchor, &chain, &key).await);
    let message = format!("{error}: {:?}", find::<rustls::Error>(&error));
    assert!(message.contains("MaximumPathDepthExceeded"), "{message}");
    assert_eq!(error.failure(), Some(HandshakeFailure::BadCertificate));

    let (chain, key, anchor) = chain_through(6, API);
    dial_trusting(&anchor, &chain, &key).await.unwrap();
    let (chain, key, anchor) = chain_through(7, API);
    let error = dial_trusting(&anchor, &chain, &key).await.unwrap_err();
    assert!(matches!(error, ConnectError::Handshake { .. }), "{error:?}");
    let message = format!("{:?}", find::<rustls::Error>(&error));
    assert!(message.contains("MaximumPathDepthExceeded"), "{message}");
}

/// An anchor whose name constraints permit `dns` (a DNS subtree) or
/// `uri` (a URI subtree, which rcgen cannot write: the extension is
/// encoded here), and leaves it signs naming `identity`.
struct ConstrainedAnchor {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl ConstrainedAnchor {
    fn dns(dns: &str) -> Self {
        Self::new(|params| {
            params.name_constraints = Some(rcgen::NameConstraints {
                permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName(dns.into())],
                excluded_subtrees: vec![],
            });
        })
    }

    fn uri(uri: &str) -> Self {
        // NameConstraints { permittedSubtrees [0] { GeneralSubtree {
        // uniformResourceIdentifier [6] uri } } } (RFC 5280 §4.2.1.10).
        let tlv = |tag: u8, body: Vec<u8>| {
            let mut out = vec![tag, u8::try_from(body.len()).unwrap()];
            out.extend(body);
            out
        };
        let der = tlv(
            0x30,
            tlv(0xA0, tlv(0x30, tlv(0x86, uri.as_bytes().to_vec()))),
        );
        Self::new(|params| {
            let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 30], der.clone());
            ext.set_criticality(true);
            params.custom_extensions = vec![ext];
        })
    }

    fn new(constrain: impl FnOnce(&mut rcgen::CertificateParams)) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "constrained anchor");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        constrain(&mut params);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn sign(&self, identity: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = RawIssuer::params(vec![uri_san(identity)])
            .signed_by(&key, &self.issuer)
            .unwrap()
            .pem();
        (leaf, key.serialize_pem())
    }
}

/// Whether `error`'s rustls error is webpki's name constraint violation.
fn breaks_name_constraints(error: &(dyn std::error::Error + 'static)) -> bool {
    find::<rustls::Error>(error)
        .is_some_and(|e| format!("{e:?}").contains("NameConstraintViolation"))
}

// Name constraints and SPIFFE IDs. webpki evaluates DNS (and IP)
// subtrees, which do not bind a URI SAN: a CA constrained to DNS names
// under example.org still vouches for any SPIFFE ID, its trust domain
// aside. URI subtrees it does not evaluate, and fails closed: every
// certificate under such a CA that carries a URI SAN, every SVID, is
// refused, on both ends. The `connect` module docs say so.
#[tokio::test]
async fn name_constraints_bind_spiffe_ids_only_by_failing_closed_on_uri_subtrees() {
    let dns = ConstrainedAnchor::dns("example.org");
    let (chain, key) = dns.sign(WEB);
    present_trusting(&dns.pem, &chain, &key).await.unwrap();
    let (chain, key) = dns.sign(API);
    dial_trusting(&dns.pem, &chain, &key).await.unwrap();

    let uri = ConstrainedAnchor::uri("spiffe://example.org");
    let (chain, key) = uri.sign(WEB);
    let error = accept_error(present_trusting(&uri.pem, &chain, &key).await);
    assert!(breaks_name_constraints(&error), "{error:?}");
    let (chain, key) = uri.sign(API);
    let error = dial_trusting(&uri.pem, &chain, &key).await.unwrap_err();
    assert!(breaks_name_constraints(&error), "{error:?}");
}

/// Two stores of one trust anchor, each on its own clock, serving
/// credentials valid on the days given (from `JAN_1`).
fn stores_on_clocks(
    pki: &Pki,
    server_days: (u64, u64),
    client_days: (u64, u64),
) -> (
    CredentialStore,
    Arc<TestClock>,
    CredentialStore,
    Arc<TestClock>,
) {
    let on = |identity, (from, to): (u64, u64)| {
        let clock = TestClock::at(JAN_1 + from * DAY + DAY / 2);
        let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
        store
            .update(pki.creds(identity, JAN_1 + from * DAY, JAN_1 + to * DAY))
            .unwrap();
        (store, clock)
    };
    let (server, server_clock) = on(API, server_days);
    let (client, client_clock) = on(WEB, client_days);
    (server, server_clock, client, client_clock)
}

// Both ends judge the peer's dates by the store's clock: certificates of
// 2030 verify when the stores say it is 2030, whatever the machine's
// clock says; and a peer whose certificate that clock finds expired, or
// not yet valid, is refused, the error naming the dates.
#[tokio::test]
async fn peer_certificates_are_judged_by_the_stores_clock_on_both_ends() {
    let pki = Pki::new();

    // Both valid on day 0 of 2030 by both clocks: served.
    let (server, _, client, _) = stores_on_clocks(&pki, (0, 2), (0, 2));
    let running = serve(server, InboundMode::Strict).await;
    let mut mesh = support::client(connector(client, running.addr, API));
    let reply = get(&mut mesh, running.addr).await.unwrap();
    assert_eq!(reply.body, format!("mutual {WEB}"));
    running.stop().await;

    // The server's clock says day 0; the client's certificate starts on
    // day 1 (and its own clock is there): not valid yet, to the server.
    let (server, _, client, _) = stores_on_clocks(&pki, (0, 3), (1, 3));
    let running = serve(server.clone(), InboundMode::Strict).await;
    let mut mesh = support::client(connector(client, running.addr, API));
    assert!(get(&mut mesh, running.addr).await.is_err());
    running.stop().await;
    assert!(
        encode(&server).contains(
            "tls_handshake_failures_total{direction=\"inbound\",reason=\"certificate_not_yet_valid\"} 1"
        ),
        "{}",
        encode(&server)
    );

    // The client's clock says day 2; the server's certificate ended on
    // day 1 (its own clock says day 0): expired, to the client.
    let (server, _, client, client_clock) = stores_on_clocks(&pki, (0, 1), (0, 3));
    client_clock.set(JAN_1 + 2 * DAY);
    let running = serve(server, InboundMode::Strict).await;
    let uri = format!("http://{}/", running.addr).parse().unwrap();
    let error = tower::ServiceExt::oneshot(connector(client.clone(), running.addr, API), uri)
        .await
        .unwrap_err();
    running.stop().await;
    let expired = find::<rustls::Error>(&error);
    assert!(
        matches!(
            expired,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ExpiredContext { time, not_after }
            )) if time.as_secs() == JAN_1 + 2 * DAY && not_after.as_secs() == JAN_1 + DAY
        ),
        "{error:?}"
    );
    assert!(
        encode(&client).contains(
            "tls_handshake_failures_total{direction=\"outbound\",reason=\"certificate_expired\"} 1"
        ),
        "{}",
        encode(&client)
    );
}
