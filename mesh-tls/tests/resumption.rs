//! No session is ever resumed: a resumed TLS 1.3 session skips certificate
//! verification, so it would carry a peer's identity past a rotation, a
//! trust bundle change or its certificate's expiry. Real sockets on
//! 127.0.0.1; the peers of the mesh's acceptor and connector are raw
//! rustls configured to resume if they can.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

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

/// Writes a byte and reads to the end, so that any session ticket the
/// server sends reaches the client before its next connection.
async fn settle<S>(mut io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::io::AsyncWriteExt::write_all(&mut io, b"x")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = io.read_to_end(&mut rest).await;
}

#[tokio::test]
async fn the_connector_never_resumes_even_with_a_server_that_would() {
    let ca = ca();
    let api = ca.issue(&id(API), HOUR).unwrap();
    // A plain rustls server, which sends tickets and resumes sessions.
    let addr = serve_raw_tls(api.chain_pem(), api.key_pem()).await;

    // It does resume for a client that asks: otherwise this test could
    // not tell a connector that resumes from one that does not.
    let mut resuming = Arc::unwrap_or_clone(raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        None,
    ));
    resuming.resumption = Resumption::in_memory_sessions(16);
    let resuming = tokio_rustls::TlsConnector::from(Arc::new(resuming));
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = resuming
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        kinds.push(tls.get_ref().1.handshake_kind());
        settle(tls).await;
    }
    assert_eq!(
        kinds,
        [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)]
    );

    let connector = connector(store(&ca, WEB), addr, API);
    for _ in 0..2 {
        let uri = format!("http://{addr}/").parse().unwrap();
        let io = tower::ServiceExt::oneshot(connector.clone(), uri)
            .await
            .unwrap();
        let kind = io.tls().unwrap().handshake_kind();
        assert_eq!(kind, Some(HandshakeKind::Full));
        settle(hyper_util::rt::TokioIo::new(io)).await;
    }
}
