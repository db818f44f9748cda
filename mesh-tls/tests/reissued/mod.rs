//! A chain that sends an expired copy of its issuer along: the issuer was
//! reissued (same name, same key, new dates) and the old certificate left
//! in the chain file before the new one.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::SystemTime;

use crate::support::{HOUR, RawIssuer, uri_san};

/// A chain for `identity` (leaf, the issuer's expired old certificate, the
/// issuer's current one), its key, and the anchor as the bundle. webpki
/// tries the old copy, finds it expired, and builds the path through the
/// current one, so the chain verifies, until the current one expires.
pub(crate) fn chain_sending_an_expired_copy_of_its_issuer(
    identity: &str,
) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let now = SystemTime::now();
    let ca_params = |name: &str, not_before: SystemTime, not_after: SystemTime| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params
    };
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = ca_params("anchor", now - 100 * HOUR, now + 100 * HOUR);
    let anchor_pem = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor = rcgen::Issuer::new(anchor_params, anchor_key);

    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let old = ca_params("issuer", now - 48 * HOUR, now - HOUR)
        .signed_by(&issuer_key, &anchor)
        .unwrap()
        .pem();
    let current_params = ca_params("issuer", now - HOUR, now + 24 * HOUR);
    let current = current_params
        .signed_by(&issuer_key, &anchor)
        .unwrap()
        .pem();
    let issuer = rcgen::Issuer::new(current_params, issuer_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = RawIssuer::params(vec![uri_san(identity)]);
    leaf.not_before = (now - HOUR).into();
    leaf.not_after = (now + 12 * HOUR).into();
    let leaf = leaf.signed_by(&key, &issuer).unwrap().pem();
    (leaf + &old + &current, key.serialize_pem(), anchor_pem)
}
