//! Local credentials whose chain limits a certificate's extended key usage
//! to one end of a connection (cert-manager's `usages: [server auth]`, a
//! corporate CA's web server template) are refused, since a mesh
//! certificate serves both ends. The refusal names the certificate at
//! fault and the purpose it leaves out, and blames the certificate file
//! alone: the trust bundle is not at fault, and an error saying the chain
//! does not verify against it sends the operator to the wrong file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::{
    CredentialError, CredentialFiles, CredentialStore, Credentials, creds::RejectReason,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ExtendedKeyPurpose;
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// The chain, key and bundle written as a credentials directory, and what
/// loading it says.
fn load(chain: &str, key: &str, bundle: &str) -> (CredentialFiles, CredentialError) {
    let dir = tempfile::tempdir().unwrap().keep();
    let files = CredentialFiles::in_dir(&dir);
    std::fs::write(&files.cert, chain).unwrap();
    std::fs::write(&files.key, key).unwrap();
    std::fs::write(&files.bundle, bundle).unwrap();
    let error = CredentialStore::default().load_files(&files).unwrap_err();
    (files, error)
}

#[test]
fn a_workload_certificate_for_one_end_only_is_refused_naming_it_and_the_purpose() {
    let raw = RawIssuer::new();
    for (only, missing) in [
        (
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyPurpose::ClientAuth,
        ),
        (
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyPurpose::ServerAuth,
        ),
    ] {
        let mut params = RawIssuer::params(vec![uri_san(WEB)]);
        params.extended_key_usages = vec![only];
        let (chain, key) = raw.sign(&params);

        let creds = Credentials::from_pem(
            chain.as_bytes(),
            key.as_bytes(),
            raw.bundle_pem().as_bytes(),
        )
        .unwrap();
        let error = CredentialStore::default().update(creds).unwrap_err();
        assert!(
            matches!(&error, CredentialError::PurposeMissing { position: 1, purpose }
                if *purpose == missing),
            "{error:?}"
        );
        assert_eq!(error.reason(), RejectReason::Untrusted);

        let (files, error) = load(&chain, &key, raw.bundle_pem());
        let text = joined(&error);
        assert!(
            matches!(&error, CredentialError::InFiles { paths, .. } if *paths == [files.cert.clone()]),
            "the certificate file alone is at fault: {text}"
        );
        assert!(
            text.contains(&format!("leaves out {missing}"))
                && text.contains("workload certificate"),
            "{text}"
        );
        assert!(!text.contains("trust bundle"), "{text}");
        assert!(!text.contains("KeyPurposeId"), "{text}");
    }
}

#[test]
fn an_issuer_for_one_end_only_is_refused_naming_its_place_in_the_chain() {
    let now = std::time::SystemTime::now();
    let ca_params = |name: &str, ekus: Vec<ExtendedKeyUsagePurpose>| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.extended_key_usages = ekus;
        params.not_before = (now - HOUR).into();
        params.not_after = (now + 2 * HOUR).into();
        params
    };
    let key = || KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_key = key();
    let anchor_params = ca_params("anchor", Vec::new());
    let anchor_pem = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor = Issuer::new(anchor_params, anchor_key);
    let issuer_key = key();
    let issuer_params = ca_params("web servers", vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let issuer_pem = issuer_params.signed_by(&issuer_key, &anchor).unwrap().pem();
    let issuer = Issuer::new(issuer_params, issuer_key);
    let leaf_key = key();
    let leaf_pem = RawIssuer::params(vec![uri_san(WEB)])
        .signed_by(&leaf_key, &issuer)
        .unwrap()
        .pem();
    let chain = format!("{leaf_pem}{issuer_pem}");

    let (files, error) = load(&chain, &leaf_key.serialize_pem(), &anchor_pem);
    let text = joined(&error);
    assert!(
        matches!(&error, CredentialError::InFiles { paths, source }
        if *paths == [files.cert.clone()]
            && matches!(**source, CredentialError::PurposeMissing {
                position: 2,
                purpose: ExtendedKeyPurpose::ClientAuth,
            })),
        "{text}"
    );
    assert!(
        text.contains("certificate 2 of the chain")
            && text.contains("leaves out client authentication"),
        "{text}"
    );
}

/// What the new refusal must not swallow: a chain no anchor of the bundle
/// issued still does not verify against the bundle, and both files are
/// named.
#[test]
fn a_chain_of_another_ca_still_does_not_verify_against_the_bundle() {
    let ours = ca();
    let theirs = ca();
    let issued = theirs.issue(&id(WEB), HOUR).unwrap();
    let (files, error) = load(issued.chain_pem(), issued.key_pem(), ours.bundle_pem());
    let text = joined(&error);
    assert!(
        matches!(&error, CredentialError::InFiles { paths, source }
            if *paths == [files.cert.clone(), files.bundle.clone()]
                && matches!(**source, CredentialError::Untrusted(_))),
        "{text}"
    );
    assert!(
        text.contains("does not verify against the trust bundle"),
        "{text}"
    );
}
