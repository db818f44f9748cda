//! `identity_cert_info`: the identity in service, as the exposition shows
//! it before credentials are loaded, once they are, and after rotations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::{CredentialStore, StoreConfig, ca::CertificateAuthority};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// The lines of `identity_cert_info` in the store's exposition, whole.
fn identity_info(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| {
            let l = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            l.strip_prefix("identity_cert_info")
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn family(identity: &str) -> String {
    format!(
        "# HELP identity_cert_info The identity the certificate in service names.\n\
         # TYPE identity_cert_info gauge\n\
         identity_cert_info{{identity=\"{identity}\"}} 1\n"
    )
}

#[test]
fn the_exposition_names_exactly_the_identity_in_service() {
    let ca = ca();
    let store = CredentialStore::new(StoreConfig::default());
    let mut registry = Registry::default();
    store.metrics().register(&mut registry);
    // Before any credentials, no series and no descriptor.
    assert_eq!(identity_info(&registry), "");

    store.update(creds(&ca, WEB)).unwrap();
    assert_eq!(identity_info(&registry), family(WEB));

    // A renewal for the same identity keeps the one series.
    store.update(creds(&ca, WEB)).unwrap();
    assert_eq!(identity_info(&registry), family(WEB));

    // A pushed credential for another identity replaces the series.
    store.update(creds(&ca, API)).unwrap();
    assert_eq!(identity_info(&registry), family(API));

    // A refused update leaves the identity in service named.
    let other = CertificateAuthority::generate("other.org".parse().unwrap()).unwrap();
    let other = other
        .issue(&id("spiffe://other.org/ns/shop/sa/web"), HOUR)
        .unwrap()
        .credentials()
        .unwrap();
    store.update(other).unwrap_err();
    assert_eq!(identity_info(&registry), family(API));
    assert_eq!(store.subscribe().borrow().loaded, 3);
}
