//! Linkerd's `control_identity_cert_refresh_timestamp_seconds` and
//! `control_identity_cert_refreshes_total{result="ok"}` tell when the
//! workload certificate was last renewed: an alert on the time since the
//! refresh finds a renewal that is stuck. New credentials that keep the
//! workload certificate in service and change only the trust bundle (an
//! anchor added ahead of a CA rotation) or the intermediates beside it
//! renew nothing, and must not reset that alert; the older families still
//! count them as a rotation of the credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::{CredentialStore, Credentials, StoreConfig};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const REFRESH: &str = "control_identity_cert_refresh_timestamp_seconds";
const OK: &str = r#"control_identity_cert_refreshes_total{result="ok"}"#;

/// The value of the series `name` in the store's exposition.
fn value(store: &CredentialStore, name: &str) -> String {
    let text = encode(store);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .to_owned()
}

#[test]
fn a_new_trust_bundle_beside_the_same_certificate_is_no_refresh() {
    let ca = ca();
    let next_ca = support::ca();
    let issued = ca.issue(&id(WEB), HOUR).unwrap();
    let store = CredentialStore::new(StoreConfig::default());
    store.update(issued.credentials().unwrap()).unwrap();
    let refreshed_at = value(&store, REFRESH);
    assert_eq!(value(&store, OK), "1");

    // The next CA's anchor joins the bundle; the certificate stays.
    let bundle = format!("{}{}", ca.bundle_pem(), next_ca.bundle_pem());
    let widened = Credentials::from_pem(
        issued.chain_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        bundle.as_bytes(),
    )
    .unwrap();
    store.update(widened).unwrap();
    assert_eq!(store.credentials().unwrap().roots().len(), 2);
    assert_eq!(value(&store, "identity_cert_rotations_total"), "1");
    assert_eq!(value(&store, OK), "1", "no certificate was renewed");
    assert_eq!(value(&store, REFRESH), refreshed_at);

    // The workload certificate alone, without its issuer beside it, under
    // a bundle holding the issuer too: still the same certificate.
    let end = "-----END CERTIFICATE-----\n";
    let chain = issued.chain_pem();
    let (leaf, issuer) = chain.split_at(chain.find(end).unwrap() + end.len());
    let bundle = format!("{bundle}{issuer}");
    let leaf_alone = Credentials::from_pem(
        leaf.as_bytes(),
        issued.key_pem().as_bytes(),
        bundle.as_bytes(),
    )
    .unwrap();
    store.update(leaf_alone).unwrap();
    assert_eq!(value(&store, "identity_cert_rotations_total"), "2");
    assert_eq!(value(&store, OK), "1", "no certificate was renewed");
    assert_eq!(value(&store, REFRESH), refreshed_at);

    // A renewal is a refresh.
    store.update(creds(&ca, WEB)).unwrap();
    assert_eq!(value(&store, OK), "2");
    assert_ne!(value(&store, REFRESH), refreshed_at);
}
