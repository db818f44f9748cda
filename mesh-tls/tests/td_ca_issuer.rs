//! A CA whose issuer names another trust domain than its trust anchor is
//! refused when it loads: the anchor vouches only for the SPIFFE IDs of
//! the trust domains it names, so every certificate such an issuer signs
//! would be refused by every credential store and every peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use mesh_tls::{
    CredentialStore, StoreConfig,
    ca::{self, CaError, CertificateAuthority},
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

const HOUR: Duration = Duration::from_secs(3600);

/// The error and every source below it, joined as the sidecar prints them.
fn chain(error: &CaError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str("\ncaused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn ca_params(name: &str, uris: &[&str], path_len: u8) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = uris
        .iter()
        .map(|uri| SanType::URI((*uri).try_into().unwrap()))
        .collect();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = SystemTime::now();
    params.not_before = (now - HOUR).into();
    params.not_after = (now + 24 * HOUR).into();
    params
}

/// An anchor whose URI SANs are `anchor_uris`, and an issuer for
/// `spiffe://example.org` it signs: the anchor's PEM, the issuer's PEM and
/// the issuer's key.
fn anchor_and_issuer(anchor_uris: &[&str]) -> (String, String, String) {
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = ca_params("anchor", anchor_uris, 1);
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let signer = rcgen::Issuer::new(anchor_params, anchor_key);
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = ca_params("issuer", &["spiffe://example.org"], 0)
        .signed_by(&issuer_key, &signer)
        .unwrap()
        .pem();
    (anchor, issuer, issuer_key.serialize_pem())
}

#[test]
fn an_issuer_of_another_trust_domain_than_its_anchor_is_refused_naming_both() {
    let (anchor, issuer, key) = anchor_and_issuer(&["spiffe://other.org"]);
    let err = CertificateAuthority::from_pem(&anchor, &issuer, &key).unwrap_err();
    assert!(
        matches!(
            &err,
            CaError::IssuerOutsideAnchorTrustDomain { issuer, anchor }
                if issuer.as_str() == "example.org"
                    && anchor.iter().map(|td| td.as_str()).eq(["other.org"])
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "invalid ca: the issuer's trust domain example.org is not its trust anchor's, \
         other.org: the anchor vouches only for identities of the trust domains it names, so \
         every certificate the issuer signs would be refused"
    );

    // Loaded from a directory, the error names the issuer's file.
    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [
        (ca::CA_CERT_FILE, &anchor),
        (ca::ISSUER_CERT_FILE, &issuer),
        (ca::ISSUER_KEY_FILE, &key),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let text = chain(&CertificateAuthority::load(dir.path()).unwrap_err());
    assert!(
        text.starts_with(&format!(
            "refused ca file {}\ncaused by: invalid ca: the issuer's trust domain example.org is \
             not its trust anchor's, other.org",
            dir.path().join(ca::ISSUER_CERT_FILE).display()
        )),
        "{text}"
    );
}

#[test]
fn an_anchor_of_the_issuers_trust_domain_elsewhere_in_the_bundle_is_not_named() {
    // The bundle also holds an anchor of example.org, which did not sign
    // the issuer: the one that did is other.org's.
    let (anchor, issuer, key) = anchor_and_issuer(&["spiffe://other.org"]);
    let (unrelated, _, _) = anchor_and_issuer(&["spiffe://example.org"]);
    let bundle = format!("{anchor}{unrelated}");
    let err = CertificateAuthority::from_pem(&bundle, &issuer, &key).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "invalid ca: the issuer's trust domain example.org is not its trust anchor's, \
             other.org:"
        ),
        "{err}"
    );
}

#[test]
fn an_anchor_naming_several_trust_domains_none_the_issuers_lists_them() {
    let (anchor, issuer, key) = anchor_and_issuer(&["spiffe://other.org", "spiffe://third.org"]);
    let err = CertificateAuthority::from_pem(&anchor, &issuer, &key).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "invalid ca: the issuer's trust domain example.org is none of those its trust \
             anchor names, other.org and third.org:"
        ),
        "{err}"
    );
}

#[test]
fn an_anchor_naming_the_issuers_trust_domain_or_none_loads_and_issues_usable_certificates() {
    for uris in [
        &["spiffe://example.org"][..],
        &["spiffe://other.org", "spiffe://example.org"],
        &[],
    ] {
        let (anchor, issuer, key) = anchor_and_issuer(uris);
        let ca = CertificateAuthority::from_pem(&anchor, &issuer, &key)
            .unwrap_or_else(|e| panic!("{uris:?}: {}", chain(&e)));
        let web = "spiffe://example.org/ns/shop/sa/web".parse().unwrap();
        let creds = ca.issue(&web, HOUR).unwrap().credentials().unwrap();
        CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap();
    }
}
