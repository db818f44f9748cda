//! An issuer reissued (same name and key, new dates) whose old, expired
//! certificate is still sent in the chain before the new one: webpki
//! verifies the chain through the new one, and the mesh serves it and
//! keeps its connections until the new one expires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::reissued;
use crate::support;

use mesh_tls::{CredentialStore, Credentials, InboundMode, StoreConfig};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// A mesh client calls a mesh server whose chain sends its issuer's
/// expired old certificate along: the server puts the chain in service,
/// and the client keeps one connection for several requests instead of
/// having it closed after the handshake as if it had expired.
#[tokio::test]
async fn a_server_sending_an_expired_copy_of_its_issuer_serves_mesh_clients() {
    let (chain, key, anchor) = reissued::chain_sending_an_expired_copy_of_its_issuer(API);
    let client_ca = ca();
    let both = format!("{anchor}{}", client_ca.bundle_pem());
    let server_creds =
        Credentials::from_pem(chain.as_bytes(), key.as_bytes(), both.as_bytes()).unwrap();
    let server_store =
        CredentialStore::with_credentials(StoreConfig::default(), server_creds).unwrap();
    let server = serve(server_store, InboundMode::Strict).await;

    let web = client_ca.issue(&id(WEB), HOUR).unwrap();
    let client_creds = Credentials::from_pem(
        web.chain_pem().as_bytes(),
        web.key_pem().as_bytes(),
        both.as_bytes(),
    )
    .unwrap();
    let client_store =
        CredentialStore::with_credentials(StoreConfig::default(), client_creds).unwrap();
    let mut mesh = client(connector(client_store.clone(), server.addr, API));
    for _ in 0..3 {
        let reply = get(&mut mesh, server.addr).await.unwrap();
        assert_eq!(reply.status, 200);
    }
    let metrics = encode(&client_store);
    assert!(
        !metrics
            .contains("tls_connections_retired_total{direction=\"outbound\",reason=\"expiry\"}"),
        "{metrics}"
    );
    server.stop().await;
}
