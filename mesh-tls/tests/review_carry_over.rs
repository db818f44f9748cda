//! A pooled client connection kept across a credential update is still
//! retired before every certificate through which the bundle in service
//! trusts its server expires.
//!
//! A bundle that holds an issuing CA's certificate beside its root ends
//! the server's path at that certificate, whose own `notAfter` webpki
//! never reads (it is an anchor), so the connection is timed by the
//! server's leaf alone. Once an update drops it from the bundle, the
//! server is trusted through the issuer as an intermediate: a connection
//! still held to the leaf's `notAfter` would outlive the issuer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{CredentialStore, Credentials, InboundMode};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn retired(store: &CredentialStore) -> String {
    encode(store)
        .lines()
        .filter(|line| line.starts_with("tls_connections_retired_total{direction=\"outbound\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(start_paused = true)]
async fn a_connection_kept_when_the_bundle_drops_an_issuer_anchor_is_retired_before_the_issuer_expires()
 {
    // The server's issuer lives two hours, its leaf a day.
    let (api_ca, api_chain, api_key) = leaf_outliving_its_issuer(API, 2 * HOUR, 24 * HOUR);
    let web_ca = ca();
    let web = web_ca.issue(&id(WEB), 24 * HOUR).unwrap();
    // Both sides trust the server's issuer as an anchor beside its root,
    // so neither holds the server's connections to the issuer's end.
    let with_issuer = format!(
        "{}{}{}",
        api_ca.bundle_pem(),
        api_ca.issuer_pem(),
        web_ca.bundle_pem()
    );
    let server_store = loaded(
        Credentials::from_pem(
            api_chain.as_bytes(),
            api_key.as_bytes(),
            with_issuer.as_bytes(),
        )
        .unwrap(),
    );
    let server = serve(server_store, InboundMode::Strict).await;
    let client_creds = |bundle: &str| {
        Credentials::from_pem(
            web.chain_pem().as_bytes(),
            web.key_pem().as_bytes(),
            bundle.as_bytes(),
        )
        .unwrap()
    };
    let client_store = loaded(client_creds(&with_issuer));
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let connector = connector(client_store.clone(), server.addr, API);
    let io = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
    let mut extras = http::Extensions::new();
    hyper_util::client::legacy::connect::Connection::connected(&io).get_extras(&mut extras);
    let tls = extras.get::<mesh_tls::ServerTls>().cloned().unwrap();

    // The issuer leaves the client's bundle; its root still verifies the
    // server's chain, now through the issuer's certificate.
    let roots = format!("{}{}", api_ca.bundle_pem(), web_ca.bundle_pem());
    client_store.update(client_creds(&roots)).unwrap();

    // Half a minute before the issuer's notAfter, inside the connector's
    // minute of retirement ahead of it; a read polls the connection's
    // timers.
    tokio::time::advance(2 * HOUR - Duration::from_secs(30)).await;
    let mut io = hyper_util::rt::TokioIo::new(io);
    let _ = tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1]).await;
    assert!(
        tls.is_retired(),
        "kept past the notAfter of the issuer the bundle trusts the server through\n{}",
        retired(&client_store)
    );
    server.stop().await;
}
