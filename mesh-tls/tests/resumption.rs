//! No session is ever resumed: a resumed TLS 1.3 session skips certificate
//! verification, so it would carry a peer's identity past a rotation, a
//! trust bundle change or its certificate's expiry. Real sockets on
//! 127.0.0.1; the peers are raw rustls configured to resume if they can.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use mesh_core::{Tls, serve::Accept};
use mesh_tls::{AcceptConfig, InboundMode, TlsAccept};
use rustls::{HandshakeKind, client::Resumption};
use rustls_pki_types::ServerName;
use support::*;
use tokio::{io::AsyncReadExt, net::TcpListener};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

#[tokio::test]
async fn a_client_that_would_resume_gets_a_full_handshake_and_its_certificate_checked_each_time() {
    let ca = ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(
        store(&ca, API),
        AcceptConfig::with_mode(InboundMode::Strict),
    );
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (tcp, _) = listener.accept().await.unwrap();
            let accepted = accept.accept(tcp).await.unwrap();
            let kind = accepted.io.tls().unwrap().handshake_kind();
            seen.push((kind, accepted.tls));
        }
        seen
    });

    let web = ca.issue(&id(WEB), HOUR).unwrap();
    let mut config = Arc::unwrap_or_clone(raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((web.chain_pem(), web.key_pem())),
    ));
    config.resumption = Resumption::in_memory_sessions(16);
    let config = Arc::new(config);
    for _ in 0..3 {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
        // Reading lets any session ticket the server sent arrive before the
        // next connection; the server closes once it has accepted.
        let _ = tls.read(&mut [0u8; 1]).await;
    }
    for (kind, tls) in server.await.unwrap() {
        assert_eq!(kind, Some(HandshakeKind::Full));
        assert!(
            matches!(tls, Tls::Mutual { ref peer } if peer == &id(WEB)),
            "{tls:?}"
        );
    }
}
