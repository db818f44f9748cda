//! A server whose SPIFFE ID no trust anchor of its own trust domain vouches
//! for is refused with `ConnectError::NoAnchorOfTrustDomain`, which holds
//! the public `NoAnchorOfTrustDomain` and gives it as its source, as
//! `ConnectError::IdentityMismatch` does its refusal: a caller finds it in
//! the error's chain of causes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::Uri;
use mesh_tls::{ConnectError, CredentialStore, NoAnchorOfTrustDomain, StoreConfig};
use support::*;
use tower::{Service, ServiceExt};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn store_trusting(local: &Signer, identity: &str, bundle: &[&Signer]) -> CredentialStore {
    let bundle: Vec<_> = bundle.iter().map(|s| &s.ca).collect();
    CredentialStore::with_credentials(
        StoreConfig::default(),
        creds_trusting(&local.ca, identity, HOUR, &bundle),
    )
    .unwrap()
}

#[tokio::test]
async fn a_caller_finds_the_refusal_of_a_server_in_the_connect_errors_causes() {
    let (ours, theirs) = (Signer::new("example.org"), Signer::new("other.org"));
    let local = store_trusting(&ours, WEB, &[&ours, &theirs]);
    let (chain, key) = theirs.sign(API);
    let addr = serve_raw_tls(&chain, &key).await;
    let mut connector = connector(local, addr, API);
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    let err = connector
        .ready()
        .await
        .unwrap()
        .call(uri)
        .await
        .map(drop)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ConnectError::NoAnchorOfTrustDomain(refusal) if refusal.identity.as_str() == API
        ),
        "{err:?}"
    );
    let refusal = find::<NoAnchorOfTrustDomain>(&err);
    assert_eq!(refusal.map(|r| r.identity.as_str()), Some(API), "{err:?}");
}
