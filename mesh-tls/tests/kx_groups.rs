//! The mesh's server completes a handshake with a peer that offers any one
//! of the key exchange groups Linkerd's proxy offers (X25519MLKEM768,
//! X25519, P-256, P-384: `linkerd/rustls/src/crypto.rs` of linkerd2-proxy),
//! so a client restricted to one of them, such as a FIPS-minded one that
//! offers only P-384, is not refused with `handshake_failure`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;

use mesh_core::{Tls, serve::Accept};
use mesh_tls::{AcceptConfig, InboundMode, TlsAccept};
use rustls::{NamedGroup, crypto::CryptoProvider};
use rustls_pki_types::ServerName;
use support::*;
use tokio::net::TcpListener;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

#[tokio::test]
async fn a_client_offering_one_group_linkerd_offers_is_served_on_it() {
    let ca = ca();
    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let accept = TlsAccept::new(
        store(&ca, API),
        AcceptConfig::with_mode(InboundMode::Strict),
    );
    for group in [
        NamedGroup::X25519MLKEM768,
        NamedGroup::X25519,
        NamedGroup::secp256r1,
        NamedGroup::secp384r1,
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = {
            let accept = accept.clone();
            tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                accept.accept(tcp).await.map(|accepted| accepted.tls)
            })
        };
        let provider = Arc::new(CryptoProvider {
            kx_groups: rustls::crypto::aws_lc_rs::ALL_KX_GROUPS
                .iter()
                .copied()
                .filter(|kx| kx.name() == group)
                .collect(),
            ..Arc::unwrap_or_clone(mesh_tls::provider())
        });
        assert_eq!(provider.kx_groups.len(), 1, "{group:?}");
        let config = raw_client(
            provider,
            mesh_tls::PROTOCOL_VERSIONS,
            Some((web.chain_pem(), web.key_pem())),
        );
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap_or_else(|error| panic!("{group:?}: {error}"));
        let negotiated = tls.get_ref().1.negotiated_key_exchange_group();
        assert_eq!(negotiated.map(|kx| kx.name()), Some(group));
        let seen = server.await.unwrap().unwrap();
        assert!(
            matches!(seen, Tls::Mutual { ref peer } if peer == &id(WEB)),
            "{group:?}: {seen:?}"
        );
    }
}
