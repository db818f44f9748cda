//! A trust-bundle rotation done in the order that keeps the mesh up: every
//! workload first trusts the old and the new anchor, then workloads move
//! to certificates of the new issuer one by one. Peers on either side must
//! reach each other throughout, over real mutual TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_tls::{CredentialStore, Credentials, InboundMode, StoreConfig, ca::CertificateAuthority};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// Credentials for `identity` signed by `ca`, trusting `bundle`.
fn signed(ca: &CertificateAuthority, identity: &str, bundle: &str) -> Credentials {
    let issued = ca.issue(&id(identity), HOUR).unwrap();
    Credentials::from_pem(
        issued.chain_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        bundle.as_bytes(),
    )
    .unwrap()
}

/// `client` calls the server at `addr` as `API`; the server must see the
/// caller as `WEB` over mutual TLS.
async fn calls(client_store: &CredentialStore, addr: std::net::SocketAddr) -> Result<(), String> {
    let mut mesh = client(connector(client_store.clone(), addr, API));
    let reply = get(&mut mesh, addr).await.map_err(|e| format!("{e:?}"))?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, format!("mutual {WEB}"));
    Ok(())
}

#[tokio::test]
async fn a_new_anchor_trusted_before_its_issuer_signs_lets_old_and_new_peers_meet() {
    let old = ca();
    let new = ca();
    let old_only = old.bundle_pem().to_owned();
    let both = format!("{}{}", old.bundle_pem(), new.bundle_pem());
    let store = |creds| CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap();

    // Before: everyone on the old issuer, trusting the old anchor only. A
    // workload already on the new issuer is refused: the bundle matters.
    let server = store(signed(&old, API, &old_only));
    let running = serve(server.clone(), InboundMode::Strict).await;
    let old_client = store(signed(&old, WEB, &old_only));
    calls(&old_client, running.addr).await.unwrap();
    let early = store(signed(&new, WEB, &both));
    assert!(calls(&early, running.addr).await.is_err());

    // Step one: the new anchor joins every bundle; certificates stay.
    server.update(signed(&old, API, &both)).unwrap();
    old_client.update(signed(&old, WEB, &both)).unwrap();
    calls(&old_client, running.addr).await.unwrap();
    // A workload already moved to the new issuer reaches a server still on
    // the old one.
    calls(&early, running.addr).await.unwrap();

    // Step two: the server moves to the new issuer. Clients on either
    // issuer reach it.
    server.update(signed(&new, API, &both)).unwrap();
    calls(&old_client, running.addr).await.unwrap();
    calls(&early, running.addr).await.unwrap();
    running.stop().await;
}
