//! What the chain checks refuse, on both ends of a connection, with
//! certificates the mesh's CA would never issue: a leaf that is a CA, the
//! wrong extended key usage, no SAN at all, dates outside the validity
//! window (of the leaf or of an intermediate), a chain longer than a path
//! length allows, a name outside a DNS name constraint, an issuer whose key usage forbids certificate signing.
//! rustls's webpki does these checks but the last, which the mesh adds, and
//! the mesh relies on them; these tests keep it so. Real sockets on 127.0.0.1, a raw rustls
//! peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::SystemTime;

use mesh_core::BoxError;
use mesh_tls::{AcceptConfig, NoIdentity, TlsAccept, accept::AcceptError};
use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa};
use support::*;
use tokio::net::TcpListener;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// Presents `chain` and `key` to a permissive mesh acceptor and returns
/// its verdict.
async fn present(raw: &RawIssuer, cert: (String, String)) -> Result<(), BoxError> {
    present_client_cert(raw, API, cert).await.map(|_| ())
}

/// Dials a raw server presenting `chain` and `key`, expecting `API`.
async fn dial(raw: &RawIssuer, (chain, key): (String, String)) -> Result<(), BoxError> {
    let addr = serve_raw_tls(&chain, &key).await;
    let connector = connector(store(&raw.ca, WEB), addr, API);
    let uri = format!("http://{addr}/").parse().unwrap();
    tower::ServiceExt::oneshot(connector, uri)
        .await
        .map(|_| ())
        .map_err(Into::into)
}

/// Whether `error` is a failed handshake whose rustls error `matches`.
fn rustls_error(error: &BoxError, matches: impl Fn(&rustls::Error) -> bool) -> bool {
    find::<rustls::Error>(&**error).is_some_and(matches)
}

fn certificate_error(e: &rustls::Error) -> Option<&rustls::CertificateError> {
    match e {
        rustls::Error::InvalidCertificate(c) => Some(c),
        _ => None,
    }
}

#[tokio::test]
async fn a_leaf_that_is_a_ca_is_refused_on_both_ends() {
    let raw = RawIssuer::new();
    for (identity, server_side) in [(WEB, true), (API, false)] {
        let mut params = RawIssuer::params(vec![uri_san(identity)]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = raw.sign(&params);
        let error = if server_side {
            present(&raw, cert).await
        } else {
            dial(&raw, cert).await
        }
        .unwrap_err();
        assert!(
            rustls_error(&error, |e| matches!(
                certificate_error(e),
                Some(rustls::CertificateError::Other(other))
                    if other.to_string().contains("CaUsedAsEndEntity")
            )),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn a_certificate_without_the_purpose_of_its_end_is_refused() {
    let raw = RawIssuer::new();
    let mut client = RawIssuer::params(vec![uri_san(WEB)]);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let error = present(&raw, raw.sign(&client)).await.unwrap_err();
    assert!(
        rustls_error(&error, |e| matches!(
            certificate_error(e),
            Some(rustls::CertificateError::InvalidPurposeContext { .. })
        )),
        "{error:?}"
    );

    let mut server = RawIssuer::params(vec![uri_san(API)]);
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let error = dial(&raw, raw.sign(&server)).await.unwrap_err();
    assert!(
        rustls_error(&error, |e| matches!(
            certificate_error(e),
            Some(rustls::CertificateError::InvalidPurposeContext { .. })
        )),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_certificate_without_a_san_names_no_one_on_either_end() {
    let raw = RawIssuer::new();
    let error = present(&raw, raw.sign(&RawIssuer::params(vec![])))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.downcast_ref::<AcceptError>(),
            Some(AcceptError::NoPeerIdentity(NoIdentity::Missing))
        ),
        "{error:?}"
    );
    let error = dial(&raw, raw.sign(&RawIssuer::params(vec![])))
        .await
        .unwrap_err();
    assert!(
        find::<mesh_tls::ConnectError>(&*error).is_some_and(|e| e.is_identity_mismatch()),
        "{error:?}"
    );
}

#[tokio::test]
async fn certificates_outside_their_validity_window_are_refused_on_both_ends() {
    let raw = RawIssuer::new();
    let now = SystemTime::now();
    for (not_before, not_after) in [(now + HOUR, now + 2 * HOUR), (now - 2 * HOUR, now - HOUR)] {
        for (identity, server_side) in [(WEB, true), (API, false)] {
            let mut params = RawIssuer::params(vec![uri_san(identity)]);
            params.not_before = not_before.into();
            params.not_after = not_after.into();
            let cert = raw.sign(&params);
            let error = if server_side {
                present(&raw, cert).await
            } else {
                dial(&raw, cert).await
            }
            .unwrap_err();
            assert!(
                rustls_error(&error, |e| matches!(
                    certificate_error(e),
                    Some(
                        rustls::CertificateError::NotValidYetContext { .. }
                            | rustls::CertificateError::ExpiredContext { .. }
                    )
                )),
                "{error:?}"
            );
        }
    }
}

/// A CA certificate named `name` with `constraints`, signed by `issuer`
/// (self-signed without one).
fn ca_cert(
    name: &str,
    constraints: BasicConstraints,
    name_constraints: Option<rcgen::NameConstraints>,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca_cert_with_usages(name, constraints, name_constraints, usages, vec![], issuer)
}

/// [`ca_cert`] with the key usages `usages` and the SANs `sans`.
fn ca_cert_with_usages(
    name: &str,
    constraints: BasicConstraints,
    name_constraints: Option<rcgen::NameConstraints>,
    usages: Vec<rcgen::KeyUsagePurpose>,
    sans: Vec<rcgen::SanType>,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = usages;
    params.subject_alt_names = sans;
    params.name_constraints = name_constraints;
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// Presents `chain` (leaf first) and `key` to a mesh server that trusts
/// `anchor`, and returns its verdict.
async fn present_to_trusting(anchor: &str, chain: &str, key: &str) -> Result<(), BoxError> {
    let server_ca = ca();
    let issued = server_ca.issue(&id(API), HOUR).unwrap();
    let creds = mesh_tls::Credentials::from_pem(
        issued.chain_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        format!("{}{anchor}", server_ca.bundle_pem()).as_bytes(),
    )
    .unwrap();
    let store = mesh_tls::CredentialStore::with_credentials(Default::default(), creds).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = accept_one(listener, TlsAccept::new(store, AcceptConfig::default()));
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((chain, key)),
    );
    let client = tokio::spawn(raw_get(config, addr));
    let verdict = server.await.unwrap();
    client.abort();
    verdict.map(|_| ())
}

fn leaf_signed_by(
    sans: Vec<rcgen::SanType>,
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = RawIssuer::params(sans).signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn a_chain_longer_than_its_issuers_path_length_allows_is_refused() {
    let (anchor, anchor_issuer) = ca_cert("anchor", BasicConstraints::Constrained(1), None, None);
    let (issuer, issuer_issuer) = ca_cert(
        "issuer",
        BasicConstraints::Constrained(0),
        None,
        Some(&anchor_issuer),
    );
    let (sub, sub_issuer) = ca_cert(
        "sub-issuer",
        BasicConstraints::Unconstrained,
        None,
        Some(&issuer_issuer),
    );
    let (leaf, key) = leaf_signed_by(vec![uri_san(WEB)], &sub_issuer);
    let error = present_to_trusting(&anchor, &format!("{leaf}{sub}{issuer}"), &key)
        .await
        .unwrap_err();
    // Refused for the path length, not for any fault of the chain.
    assert!(
        rustls_error(&error, |e| matches!(
            certificate_error(e),
            Some(rustls::CertificateError::Other(other))
                if other.to_string().contains("PathLenConstraintViolated")
        )),
        "{error:?}"
    );

    // One level less is within the constraint.
    let (leaf, key) = leaf_signed_by(vec![uri_san(WEB)], &issuer_issuer);
    present_to_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
        .await
        .unwrap();
}

#[tokio::test]
async fn dns_name_constraints_bind_dns_style_identities() {
    let dns = |name: &str| rcgen::SanType::DnsName(name.try_into().unwrap());
    let permitted = rcgen::NameConstraints {
        permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("example.org".into())],
        excluded_subtrees: vec![],
    };
    let (anchor, anchor_issuer) = ca_cert("anchor", BasicConstraints::Constrained(1), None, None);
    let (issuer, issuer_issuer) = ca_cert(
        "constrained issuer",
        BasicConstraints::Constrained(0),
        Some(permitted),
        Some(&anchor_issuer),
    );
    let inside = "web.shop.serviceaccount.identity.linkerd.example.org";
    let (leaf, key) = leaf_signed_by(vec![dns(inside)], &issuer_issuer);
    present_to_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
        .await
        .unwrap();
    let outside = "web.shop.serviceaccount.identity.linkerd.other.org";
    let (leaf, key) = leaf_signed_by(vec![dns(outside)], &issuer_issuer);
    let error = present_to_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
        .await
        .unwrap_err();
    // Refused for the name constraint, not for any fault of the chain.
    assert!(
        rustls_error(&error, |e| matches!(
            certificate_error(e),
            Some(rustls::CertificateError::Other(other))
                if other.to_string().contains("NameConstraintViolation")
        )),
        "{error:?}"
    );
}

// RFC 5280 §4.2.1.3: a key whose certificate has a key usage extension
// without keyCertSign "MUST NOT be used to verify signatures on
// certificates"; SPIFFE X.509-SVID §4.3: signing certificates MUST set it.
// webpki reads basic constraints but not an issuer's key usage, so the
// mesh checks it on every path webpki builds.

/// An anchor, and an issuer under it marked a CA (path length 0) but with
/// `usages`, naming the trust domain `example.org` as a CA's does: the
/// anchor's and the issuer's PEM, and the issuer's signer.
fn issuer_with_usages(
    usages: Vec<rcgen::KeyUsagePurpose>,
) -> (String, String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let (anchor, anchor_issuer) = ca_cert("anchor", BasicConstraints::Constrained(1), None, None);
    let (issuer, issuer_issuer) = ca_cert_with_usages(
        "issuer",
        BasicConstraints::Constrained(0),
        None,
        usages,
        vec![uri_san("spiffe://example.org")],
        Some(&anchor_issuer),
    );
    (anchor, issuer, issuer_issuer)
}

fn not_a_signer() -> Vec<rcgen::KeyUsagePurpose> {
    vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::CrlSign,
    ]
}

fn signer() -> Vec<rcgen::KeyUsagePurpose> {
    vec![rcgen::KeyUsagePurpose::KeyCertSign]
}

/// Dials a raw server presenting `chain` and `key` with a mesh connector
/// that trusts `anchor` and expects `API`.
async fn dial_trusting(anchor: &str, chain: &str, key: &str) -> Result<(), BoxError> {
    let client_ca = ca();
    let issued = client_ca.issue(&id(WEB), HOUR).unwrap();
    let creds = mesh_tls::Credentials::from_pem(
        issued.chain_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        format!("{}{anchor}", client_ca.bundle_pem()).as_bytes(),
    )
    .unwrap();
    let store = mesh_tls::CredentialStore::with_credentials(Default::default(), creds).unwrap();
    let addr = serve_raw_tls(chain, key).await;
    let uri = format!("http://{addr}/").parse().unwrap();
    tower::ServiceExt::oneshot(connector(store, addr, API), uri)
        .await
        .map(|_| ())
        .map_err(Into::into)
}

#[tokio::test]
async fn a_leaf_signed_by_a_ca_whose_key_usage_forbids_certificate_signing_is_refused_on_both_ends()
{
    let (anchor, issuer, issuer_signer) = issuer_with_usages(not_a_signer());
    let refused_for_key_usage = |e: &rustls::Error| {
        matches!(
            certificate_error(e),
            Some(rustls::CertificateError::Other(other))
                if other.to_string().contains("keyCertSign")
        )
    };
    let (leaf, key) = leaf_signed_by(vec![uri_san(WEB)], &issuer_signer);
    let error = present_to_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
        .await
        .unwrap_err();
    assert!(rustls_error(&error, refused_for_key_usage), "{error:?}");
    let (leaf, key) = leaf_signed_by(vec![uri_san(API)], &issuer_signer);
    let error = dial_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
        .await
        .unwrap_err();
    assert!(rustls_error(&error, refused_for_key_usage), "{error:?}");

    // The same chain with keyCertSign is accepted on both ends.
    let (anchor, issuer, issuer_signer) = issuer_with_usages(signer());
    let (leaf, key) = leaf_signed_by(vec![uri_san(WEB)], &issuer_signer);
    present_to_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
        .await
        .unwrap();
    let (leaf, key) = leaf_signed_by(vec![uri_san(API)], &issuer_signer);
    dial_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
        .await
        .unwrap();
}

#[test]
fn credentials_whose_issuer_may_not_sign_certificates_are_refused_as_untrusted() {
    let (anchor, issuer, issuer_signer) = issuer_with_usages(not_a_signer());
    let (leaf, key) = leaf_signed_by(vec![uri_san(WEB)], &issuer_signer);
    let creds = mesh_tls::Credentials::from_pem(
        format!("{leaf}{issuer}").as_bytes(),
        key.as_bytes(),
        anchor.as_bytes(),
    )
    .unwrap();
    let error = creds.check(SystemTime::now()).unwrap_err();
    assert_eq!(
        error.reason(),
        mesh_tls::creds::RejectReason::Untrusted,
        "{error:?}"
    );
}

#[test]
fn a_ca_whose_issuer_may_not_sign_certificates_is_refused_when_loaded() {
    let (anchor, issuer, issuer_signer) = issuer_with_usages(not_a_signer());
    let key = issuer_signer.key().serialize_pem();
    let error = mesh_tls::ca::CertificateAuthority::from_pem(&anchor, &issuer, &key).unwrap_err();
    assert!(
        matches!(error, mesh_tls::ca::CaError::IssuerNotTrusted(_)),
        "{error:?}"
    );
}

/// An anchor, and an issuer under it valid from `not_before` to
/// `not_after`: the anchor's and the issuer's PEM, and the issuer's signer.
fn issuer_valid(
    not_before: SystemTime,
    not_after: SystemTime,
) -> (String, String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let (anchor, anchor_issuer) = ca_cert("anchor", BasicConstraints::Constrained(1), None, None);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "issuer");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = signer();
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let issuer = params.signed_by(&key, &anchor_issuer).unwrap().pem();
    (anchor, issuer, rcgen::Issuer::new(params, key))
}

/// A leaf valid now is not enough: every certificate on the path to the
/// anchor must be. An intermediate that expired (its renewal missed) or is
/// not valid yet (issued by a clock ahead) fails the chain on both ends,
/// with the date that failed it.
#[tokio::test]
async fn a_chain_through_an_intermediate_outside_its_validity_is_refused_on_both_ends() {
    let now = SystemTime::now();
    for (not_before, not_after, expired) in [
        (now - 48 * HOUR, now - HOUR, true),
        (now + HOUR, now + 48 * HOUR, false),
    ] {
        let (anchor, issuer, issuer_signer) = issuer_valid(not_before, not_after);
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let outside = |e: &rustls::Error| match certificate_error(e) {
            Some(rustls::CertificateError::ExpiredContext { not_after: at, .. }) => {
                expired && at.as_secs() == secs(not_after)
            }
            Some(rustls::CertificateError::NotValidYetContext { not_before: at, .. }) => {
                !expired && at.as_secs() == secs(not_before)
            }
            _ => false,
        };
        let (leaf, key) = leaf_signed_by(vec![uri_san(WEB)], &issuer_signer);
        let error = present_to_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
            .await
            .unwrap_err();
        assert!(
            rustls_error(&error, outside),
            "server, expired {expired}: {error:?}"
        );
        let (leaf, key) = leaf_signed_by(vec![uri_san(API)], &issuer_signer);
        let error = dial_trusting(&anchor, &format!("{leaf}{issuer}"), &key)
            .await
            .unwrap_err();
        assert!(
            rustls_error(&error, outside),
            "client, expired {expired}: {error:?}"
        );
    }
}
