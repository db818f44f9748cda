//! A local chain that reaches its trust anchor through a cross-signature:
//! the root was reissued with a new key under its old name, and the new
//! root's certificate, signed by the old one, travels in the chain for
//! peers whose bundle holds only the old root. webpki tries the anchor of
//! that name, finds its key did not sign the certificate below, and builds
//! the path through the cross-signature, so the chain verifies only while
//! the cross-signature is valid: the credentials are usable until then,
//! not until the workload certificate's own `notAfter`.

use mesh_tls::{
    AcceptConfig, CredentialStore, Credentials, InboundMode, StoreConfig, TlsAccept,
    creds::OutsideValidity,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{
    support::{RawIssuer, uri_san},
    validity::{DAY, JAN_1, TestClock, WEB, assert_alerted, at, handshake, refusal},
};

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

/// When the cross-signature expires: 2030-01-03.
const CROSS_SIGNATURE_ENDS: u64 = JAN_1 + 2 * DAY;

/// Credentials for `WEB` valid from 2030-01-01 to 2030-01-11: the leaf,
/// an issuer signed by the new root's key, and the new root
/// cross-signed by the old one (same name, another key), which expires
/// on 2030-01-03; the bundle holds the old root alone.
fn cross_signed() -> Credentials {
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
    let issuer = Issuer::new(issuer_params, issuer_key);

    let mut params = RawIssuer::params(vec![uri_san(WEB)]);
    params.not_before = at(JAN_1).into();
    params.not_after = at(JAN_1 + 10 * DAY).into();
    let leaf_key = key();
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    Credentials::from_der(
        vec![
            leaf.der().clone(),
            issuer_cert.der().clone(),
            cross_signature.der().clone(),
        ],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        vec![old_root_cert.der().clone()],
    )
    .unwrap()
}

#[test]
fn a_chain_through_a_cross_signed_root_is_usable_until_the_cross_signature_expires() {
    let creds = cross_signed();
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
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    store.update(cross_signed()).unwrap();
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
