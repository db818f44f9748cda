//! What the CA refuses, and that each refusal says what is wrong with the
//! input and where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{
    CredentialSource, CredentialStore,
    ca::{self, CaError, CertificateAuthority, MAX_LIFETIME, MIN_RENEWED_TTL},
};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// A ttl the renewal loop refuses is refused for what is wrong with it:
/// one under 15 s is too short to renew in time, and one over the longest
/// lifetime the CA signs is too long, not "too short".
#[test]
fn a_renewed_ttl_out_of_range_is_refused_as_too_short_or_too_long() {
    let ca = ca();
    let web = id(WEB);

    let short = ca
        .issue_within_issuer(&web, Duration::from_secs(14))
        .unwrap_err();
    assert!(matches!(short, CaError::UnrenewableTtl { .. }), "{short:?}");
    let short = short.to_string();
    assert!(short.contains("14s"), "{short}");
    assert!(short.contains("too short"), "{short}");

    let long = MAX_LIFETIME + Duration::from_secs(86_400);
    let long = ca.issue_within_issuer(&web, long).unwrap_err();
    assert!(matches!(long, CaError::UnrenewableTtl { .. }), "{long:?}");
    let long = long.to_string();
    assert!(long.contains("7301d"), "{long}");
    assert!(!long.contains("too short"), "{long}");
    assert!(long.contains("too long"), "{long}");
    assert!(long.contains("7300d"), "{long}");
    assert!(
        long.contains(&format!("{}s", MIN_RENEWED_TTL.as_secs())),
        "{long}"
    );
}

/// The same through a CA source, as the sidecar starts one: nothing is
/// issued, and the error says the ttl is too long.
#[tokio::test]
async fn a_ca_source_with_an_overlong_ttl_is_refused_as_too_long() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let store = CredentialStore::default();
    let error = store
        .start(CredentialSource::Ca {
            dir: dir.path().to_owned(),
            identity: id(WEB),
            ttl: Duration::from_secs(30 * 365 * 86_400),
        })
        .err()
        .unwrap();
    let error = joined(&error);
    assert!(error.contains("too long"), "{error}");
    assert!(store.credentials().is_none());
}

/// Lifetimes `issue` refuses (zero, past the longest) name the lifetime
/// and the allowed range; an identity outside the trust domain, or the
/// trust domain's own ID, names the identity.
#[test]
fn bad_lifetimes_and_identities_are_refused_naming_them() {
    let ca = ca();
    let web = id(WEB);
    for (ttl, shown) in [
        (Duration::ZERO, "0ns"),
        (MAX_LIFETIME + Duration::from_secs(1), "630720001s"),
    ] {
        let error = ca.issue(&web, ttl).unwrap_err();
        assert!(matches!(error, CaError::InvalidLifetime(_)), "{error:?}");
        let error = error.to_string();
        assert!(error.contains(shown), "{error}");
        assert!(error.contains("from 1s to 7300d"), "{error}");
    }
    let other = ca
        .issue(&id("spiffe://other.org/ns/shop/sa/web"), HOUR)
        .unwrap_err()
        .to_string();
    assert!(
        other.contains("spiffe://other.org/ns/shop/sa/web"),
        "{other}"
    );
    assert!(other.contains("outside"), "{other}");
    let root = ca
        .issue(&id("spiffe://example.org"), HOUR)
        .unwrap_err()
        .to_string();
    assert!(root.contains("not a workload"), "{root}");
}

/// A CA directory whose issuer key is not the issuer certificate's is
/// refused naming `issuer.key` and the mismatch.
#[test]
fn a_ca_whose_issuer_key_is_not_its_certificates_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
    let other = tempfile::tempdir().unwrap();
    ca::write_ca(other.path(), &"example.org".parse().unwrap()).unwrap();
    std::fs::copy(
        other.path().join(ca::ISSUER_KEY_FILE),
        dir.path().join(ca::ISSUER_KEY_FILE),
    )
    .unwrap();
    let error = CertificateAuthority::load(dir.path()).unwrap_err();
    let error = joined(&error);
    let key = dir.path().join(ca::ISSUER_KEY_FILE);
    assert!(error.contains(&key.display().to_string()), "{error}");
    assert!(
        error.contains("issuer key does not match the issuer certificate"),
        "{error}"
    );
}
