//! What makes a certificate a valid identity certificate (an X.509-SVID),
//! checked on both ends of a connection with certificates the mesh's CA
//! would never issue: real sockets on 127.0.0.1, a raw rustls peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::BoxError;
use mesh_tls::{ConnectError, NoIdentity, accept::AcceptError, metrics::HandshakeFailure};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn accept_error(result: Result<impl Sized, BoxError>) -> AcceptError {
    match result {
        Ok(_) => panic!("the server accepted the connection"),
        Err(e) => *e.downcast::<AcceptError>().unwrap(),
    }
}

/// Dials a raw server presenting `chain` and `key` with a mesh connector
/// that expects `expected`, and returns the connect error.
async fn dial(raw: &RawIssuer, (chain, key): (String, String), expected: &str) -> ConnectError {
    let addr = serve_raw_tls(&chain, &key).await;
    let connector = connector(store(&raw.ca, WEB), addr, expected);
    let uri = format!("http://{addr}/").parse().unwrap();
    tower::ServiceExt::oneshot(connector, uri)
        .await
        .expect_err("the connector refuses the server")
}

// SPIFFE X.509-SVID §2: "An X.509 SVID MUST contain exactly one URI SAN
// [...] Validators encountering an SVID containing more than one URI SAN
// MUST reject the SVID."

#[tokio::test]
async fn the_client_refuses_a_server_certificate_with_two_spiffe_ids_even_if_one_is_expected() {
    let raw = RawIssuer::new();
    let two = raw.sign(&RawIssuer::params(vec![
        uri_san(API),
        uri_san("spiffe://example.org/ns/shop/sa/impostor"),
    ]));
    let error = dial(&raw, two, API).await;
    assert!(error.is_identity_mismatch(), "{error:?}");
    assert_names_no_identity_because(&error, API, NoIdentity::Ambiguous);

    let one = raw.sign(&RawIssuer::params(vec![uri_san(API)]));
    let addr = serve_raw_tls(&one.0, &one.1).await;
    let connector = connector(store(&raw.ca, WEB), addr, API);
    let uri = format!("http://{addr}/").parse().unwrap();
    tower::ServiceExt::oneshot(connector, uri)
        .await
        .expect("the same server with one spiffe id is accepted");
}

#[tokio::test]
async fn the_client_refuses_a_server_certificate_with_a_second_uri_san() {
    let raw = RawIssuer::new();
    let cert = raw.sign(&RawIssuer::params(vec![
        uri_san(API),
        uri_san("https://example.org/api"),
    ]));
    let error = dial(&raw, cert, API).await;
    assert!(error.is_identity_mismatch(), "{error:?}");
    assert_names_no_identity_because(&error, API, NoIdentity::Ambiguous);
}

/// `error` is the client's refusal of a server certificate that names no
/// identity, and it says why, as the server's refusal of such a client
/// certificate does: in its message and as its source.
#[track_caller]
fn assert_names_no_identity_because(error: &ConnectError, expected: &str, why: NoIdentity) {
    assert_eq!(find::<NoIdentity>(error), Some(&why), "{error:?}");
    let mismatch = find::<mesh_tls::IdentityMismatch>(error).unwrap();
    let message = mismatch.to_string();
    assert!(message.contains(&why.to_string()), "{message}");
    assert!(message.contains(expected), "{message}");
}

#[tokio::test]
async fn the_server_refuses_a_client_certificate_with_a_second_uri_san() {
    let raw = RawIssuer::new();
    let cert = raw.sign(&RawIssuer::params(vec![
        uri_san(WEB),
        uri_san("https://example.org/web"),
    ]));
    let error = accept_error(present_client_cert(&raw, API, cert).await);
    assert!(
        matches!(error, AcceptError::NoPeerIdentity(NoIdentity::Ambiguous)),
        "{error:?}"
    );
    assert_eq!(error.failure(), Some(HandshakeFailure::NoPeerIdentity));
}

#[test]
fn credentials_with_a_second_uri_san_are_refused() {
    let raw = RawIssuer::new();
    let (chain, key) = raw.sign(&RawIssuer::params(vec![
        uri_san(WEB),
        uri_san("https://example.org/web"),
    ]));
    let error = mesh_tls::Credentials::from_pem(
        chain.as_bytes(),
        key.as_bytes(),
        raw.bundle_pem().as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            mesh_tls::CredentialError::NoIdentity(NoIdentity::Ambiguous)
        ),
        "{error:?}"
    );
}

// SPIFFE X.509-SVID §3.1: "Leaf certificate SPIFFE IDs MUST have a non-root
// path component"; §5.2: the validator "MUST ensure that the SPIFFE ID has
// a non-root path component". `spiffe://example.org` names the trust
// domain (its signing certificates carry it), not a workload.

const TRUST_DOMAIN_ID: &str = "spiffe://example.org";

#[tokio::test]
async fn the_server_refuses_a_client_certificate_naming_only_the_trust_domain() {
    let raw = RawIssuer::new();
    let cert = raw.sign(&RawIssuer::params(vec![uri_san(TRUST_DOMAIN_ID)]));
    let error = accept_error(present_client_cert(&raw, API, cert).await);
    assert!(
        matches!(
            error,
            AcceptError::NoPeerIdentity(NoIdentity::TrustDomainOnly)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_client_refuses_a_server_certificate_naming_only_the_trust_domain() {
    let raw = RawIssuer::new();
    let cert = raw.sign(&RawIssuer::params(vec![uri_san(TRUST_DOMAIN_ID)]));
    let error = dial(&raw, cert, TRUST_DOMAIN_ID).await;
    assert!(error.is_identity_mismatch(), "{error:?}");
    assert_names_no_identity_because(&error, TRUST_DOMAIN_ID, NoIdentity::TrustDomainOnly);
}

#[test]
fn the_ca_refuses_to_issue_a_workload_certificate_for_the_trust_domain_itself() {
    let ca = ca();
    let error = ca.issue(&id(TRUST_DOMAIN_ID), HOUR).unwrap_err();
    assert!(
        matches!(&error, mesh_tls::ca::CaError::NoWorkloadPath(found) if found == &id(TRUST_DOMAIN_ID)),
        "{error:?}"
    );
}

// SPIFFE X.509-SVID §4.3: "The key usage extension MUST be set on all
// SVIDs [...] Leaf SVIDs MUST set digitalSignature [...] MUST NOT set
// keyCertSign or cRLSign"; §5.2: the validator "MUST ensure [...] that
// keyCertSign and cRLSign are not set in the key usage extension".
// webpki leaves key usage unchecked on end-entity certificates.

fn with_key_usages(usages: Vec<rcgen::KeyUsagePurpose>) -> rcgen::CertificateParams {
    let mut params = RawIssuer::params(vec![uri_san(WEB)]);
    params.key_usages = usages;
    params
}

#[tokio::test]
async fn the_server_refuses_a_client_certificate_that_may_sign_certificates() {
    use rcgen::KeyUsagePurpose::{CrlSign, DigitalSignature, KeyCertSign};
    let raw = RawIssuer::new();
    for usages in [
        vec![DigitalSignature, KeyCertSign],
        vec![DigitalSignature, CrlSign],
    ] {
        let cert = raw.sign(&with_key_usages(usages.clone()));
        let error = accept_error(present_client_cert(&raw, API, cert).await);
        assert!(
            matches!(error, AcceptError::NoPeerIdentity(NoIdentity::NotALeaf)),
            "{usages:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn the_server_refuses_a_client_svid_without_digital_signature() {
    use rcgen::KeyUsagePurpose::KeyAgreement;
    let raw = RawIssuer::new();
    for usages in [vec![], vec![KeyAgreement]] {
        let cert = raw.sign(&with_key_usages(usages.clone()));
        let error = accept_error(present_client_cert(&raw, API, cert).await);
        assert!(
            matches!(error, AcceptError::NoPeerIdentity(NoIdentity::NotALeaf)),
            "{usages:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn the_client_refuses_a_server_certificate_that_may_sign_certificates() {
    use rcgen::KeyUsagePurpose::{DigitalSignature, KeyCertSign};
    let raw = RawIssuer::new();
    let mut params = with_key_usages(vec![DigitalSignature, KeyCertSign]);
    params.subject_alt_names = vec![uri_san(API)];
    let error = dial(&raw, raw.sign(&params), API).await;
    assert!(error.is_identity_mismatch(), "{error:?}");
    assert_names_no_identity_because(&error, API, NoIdentity::NotALeaf);
}

#[test]
fn credentials_whose_certificate_may_sign_certificates_are_refused() {
    use rcgen::KeyUsagePurpose::{DigitalSignature, KeyCertSign};
    let raw = RawIssuer::new();
    let (chain, key) = raw.sign(&with_key_usages(vec![DigitalSignature, KeyCertSign]));
    let error = mesh_tls::Credentials::from_pem(
        chain.as_bytes(),
        key.as_bytes(),
        raw.bundle_pem().as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            mesh_tls::CredentialError::NoIdentity(NoIdentity::NotALeaf)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_client_expecting_a_dns_identity_refuses_a_certificate_with_two_spiffe_ids() {
    let dns = "api.shop.serviceaccount.identity.linkerd.example.org";
    let raw = RawIssuer::new();
    let mut params = RawIssuer::params(vec![
        uri_san(API),
        uri_san("spiffe://example.org/ns/shop/sa/impostor"),
    ]);
    params
        .subject_alt_names
        .push(rcgen::SanType::DnsName(dns.try_into().unwrap()));
    let error = dial(&raw, raw.sign(&params), dns).await;
    assert!(error.is_identity_mismatch(), "{error:?}");
}

// A URI SAN with the spiffe scheme makes the certificate an X.509-SVID,
// whose identity is that SPIFFE ID. One that does not parse (a trailing
// slash, a port, userinfo, a query, a fragment, percent-encoding,
// uppercase) is a malformed SVID: it names nothing, and a DNS SAN beside
// it must not stand in for it.

const MALFORMED: &[&str] = &[
    "spiffe://example.org/ns/shop/sa/web/",
    "spiffe://example.org:443/ns/shop/sa/web",
    "spiffe://user@example.org/ns/shop/sa/web",
    "spiffe://example.org/ns/shop/sa/web?x=1",
    "spiffe://example.org/ns/shop/sa/web#x",
    "spiffe://example.org/ns/shop/sa/w%65b",
    "spiffe://Example.org/ns/shop/sa/web",
    "SPIFFE://example.org/ns/shop/sa/web",
];

const DNS_ID: &str = "web.shop.serviceaccount.identity.linkerd.example.org";

fn malformed_svid_with_dns(spiffe: &str) -> rcgen::CertificateParams {
    RawIssuer::params(vec![
        uri_san(spiffe),
        rcgen::SanType::DnsName(DNS_ID.try_into().unwrap()),
    ])
}

#[tokio::test]
async fn the_server_refuses_a_malformed_spiffe_id_and_reads_no_dns_san_in_its_place() {
    let raw = RawIssuer::new();
    for spiffe in MALFORMED {
        let cert = raw.sign(&malformed_svid_with_dns(spiffe));
        let error = accept_error(present_client_cert(&raw, API, cert).await);
        assert!(
            matches!(
                error,
                AcceptError::NoPeerIdentity(NoIdentity::MalformedSpiffeId)
            ),
            "{spiffe}: {error:?}"
        );
    }
}

#[tokio::test]
async fn the_client_expecting_a_dns_identity_refuses_a_malformed_svid_carrying_it() {
    let raw = RawIssuer::new();
    for spiffe in MALFORMED {
        let error = dial(&raw, raw.sign(&malformed_svid_with_dns(spiffe)), DNS_ID).await;
        assert!(error.is_identity_mismatch(), "{spiffe}: {error:?}");
        assert_names_no_identity_because(&error, DNS_ID, NoIdentity::MalformedSpiffeId);
    }
}

#[test]
fn credentials_with_a_malformed_spiffe_id_are_refused() {
    let raw = RawIssuer::new();
    for spiffe in MALFORMED {
        let (chain, key) = raw.sign(&malformed_svid_with_dns(spiffe));
        let error = mesh_tls::Credentials::from_pem(
            chain.as_bytes(),
            key.as_bytes(),
            raw.bundle_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                mesh_tls::CredentialError::NoIdentity(NoIdentity::MalformedSpiffeId)
            ),
            "{spiffe}: {error:?}"
        );
    }
}

// A SPIFFE ID travels in a URI SAN (X.509-SVID spec §2). A DNS SAN holds a
// DNS name: one spelled `spiffe://...` is not a valid one, and names no
// identity, let alone the SPIFFE ID it spells.

const ADMIN: &str = "spiffe://example.org/ns/shop/sa/admin";

fn spiffe_id_in_a_dns_san(spiffe: &str) -> rcgen::CertificateParams {
    RawIssuer::params(vec![rcgen::SanType::DnsName(spiffe.try_into().unwrap())])
}

#[tokio::test]
async fn the_server_reads_no_spiffe_id_from_a_dns_san() {
    let raw = RawIssuer::new();
    let cert = raw.sign(&spiffe_id_in_a_dns_san(ADMIN));
    let error = accept_error(present_client_cert(&raw, API, cert).await);
    assert!(
        matches!(error, AcceptError::NoPeerIdentity(NoIdentity::Missing)),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_client_expecting_a_spiffe_id_refuses_a_server_spelling_it_in_a_dns_san() {
    let raw = RawIssuer::new();
    let error = dial(&raw, raw.sign(&spiffe_id_in_a_dns_san(ADMIN)), ADMIN).await;
    assert!(error.is_identity_mismatch(), "{error:?}");
    // Beside a DNS identity, the spelled SPIFFE ID is skipped, not read.
    let params = RawIssuer::params(vec![
        rcgen::SanType::DnsName(ADMIN.try_into().unwrap()),
        rcgen::SanType::DnsName(DNS_ID.try_into().unwrap()),
    ]);
    let error = dial(&raw, raw.sign(&params), ADMIN).await;
    assert!(error.is_identity_mismatch(), "{error:?}");
}

#[test]
fn credentials_naming_a_spiffe_id_only_in_a_dns_san_are_refused() {
    let raw = RawIssuer::new();
    let (chain, key) = raw.sign(&spiffe_id_in_a_dns_san(WEB));
    let error = mesh_tls::Credentials::from_pem(
        chain.as_bytes(),
        key.as_bytes(),
        raw.bundle_pem().as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            mesh_tls::CredentialError::NoIdentity(NoIdentity::Missing)
        ),
        "{error:?}"
    );
}
