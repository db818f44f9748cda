//! A peer whose SPIFFE ID is vouched for by no trust anchor of its trust
//! domain is counted as an unknown issuer on both ends of a connection:
//! the anchors of its trust domain did not issue its chain, which is what
//! `unknown_issuer` means, whether the acceptor or the connector refused it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::Uri;
use mesh_tls::{AcceptConfig, ConnectError, CredentialStore, StoreConfig, TlsAccept};
use support::*;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn handshake_failures(store: &CredentialStore) -> Vec<String> {
    encode(store)
        .lines()
        .filter(|l| l.starts_with("tls_handshake_failures_total{"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn both_ends_count_a_chain_outside_the_identitys_trust_domain_as_an_unknown_issuer() {
    let (ours, theirs) = (Signer::new("example.org"), Signer::new("other.org"));
    let local = || {
        CredentialStore::with_credentials(
            StoreConfig::default(),
            creds_trusting(&ours.ca, WEB, HOUR, &[&ours.ca, &theirs.ca]),
        )
        .unwrap()
    };

    // Outbound: the other trust domain's CA names a server of ours.
    let connecting = local();
    let (chain, key) = theirs.sign(API);
    let addr = serve_raw_tls(&chain, &key).await;
    let mut connector = connector(connecting.clone(), addr, API);
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
        matches!(&err, ConnectError::NoAnchorOfTrustDomain { refusal, .. } if refusal.identity.as_str() == API),
        "{err:?}"
    );

    // Inbound: the same CA names a client of ours.
    let accepting = local();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = accept_one(
        listener,
        TlsAccept::new(accepting.clone(), AcceptConfig::default()),
    );
    let (chain, key) = theirs.sign(WEB);
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((&chain, &key)),
    );
    let client = tokio::spawn(raw_get(config, addr));
    assert!(server.await.unwrap().is_err());
    client.abort();

    assert_eq!(
        handshake_failures(&connecting),
        ["tls_handshake_failures_total{direction=\"outbound\",reason=\"unknown_issuer\"} 1"]
    );
    assert_eq!(
        handshake_failures(&accepting),
        ["tls_handshake_failures_total{direction=\"inbound\",reason=\"unknown_issuer\"} 1"]
    );
}
