//! A CA whose anchor does not vouch for what its issuer signs is refused,
//! and the refusal says why: an issuer from another anchor and an issuer
//! limited to one purpose are different faults with different fixes, so
//! the operator reading the error (or its "caused by:" chain) must be able
//! to tell them apart.

use mesh_tls::ca::{self, CaError, CertificateAuthority};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

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

#[test]
fn an_untrusted_issuer_says_which_check_of_the_chain_failed() {
    // An issuer (certificate and key) from another CA: its anchor is not
    // this CA's.
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ca::write_ca(other.path(), &"example.org".parse().unwrap()).unwrap();
    for file in [ca::ISSUER_CERT_FILE, ca::ISSUER_KEY_FILE] {
        std::fs::copy(other.path().join(file), dir.path().join(file)).unwrap();
    }
    let foreign = chain(&CertificateAuthority::load(dir.path()).unwrap_err());

    // An issuer the anchor signed, limited to server authentication:
    // what it signs is refused for client authentication.
    let params = |name: &str, path_len, ekus| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = ekus;
        params
    };
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = params("anchor", 1, Vec::new());
    let anchor = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor_signer = rcgen::Issuer::new(anchor_params, anchor_key);
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = params("issuer", 0, vec![ExtendedKeyUsagePurpose::ServerAuth])
        .signed_by(&issuer_key, &anchor_signer)
        .unwrap()
        .pem();
    let one_purpose = chain(
        &CertificateAuthority::from_pem(&anchor, &issuer, &issuer_key.serialize_pem()).unwrap_err(),
    );

    for text in [&foreign, &one_purpose] {
        assert!(
            text.contains("the trust anchor does not vouch for what the issuer signs"),
            "{text}"
        );
    }
    assert!(foreign.contains("unknown issuer"), "{foreign}");
    assert!(!foreign.contains("extended key usage"), "{foreign}");
    assert!(
        one_purpose.contains("for client authentication")
            && one_purpose.contains("extended key usage"),
        "{one_purpose}"
    );
    assert!(!one_purpose.contains("unknown issuer"), "{one_purpose}");
}
