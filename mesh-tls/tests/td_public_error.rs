//! The refusal of a SPIFFE ID whose chain leads only to trust anchors of
//! other trust domains is a public error type, as `IdentityMismatch` is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::NoAnchorOfTrustDomain;
use support::*;

const API: &str = "spiffe://example.org/ns/shop/sa/api";

#[test]
fn the_refusal_is_a_public_error_naming_the_identity_and_its_trust_domain() {
    let refusal = NoAnchorOfTrustDomain { identity: id(API) };
    assert_eq!(
        refusal.to_string(),
        format!(
            "{API} is vouched for by no trust anchor of trust domain example.org: the chain \
             leads only to anchors of other trust domains"
        )
    );
    // An error callers can box and find again in a chain of causes.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(refusal.clone());
    assert_eq!(find::<NoAnchorOfTrustDomain>(&*boxed), Some(&refusal));
}
