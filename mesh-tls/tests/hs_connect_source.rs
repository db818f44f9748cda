//! What a failed handshake's `ConnectError` says: the server's address
//! and the identity it was to prove, in its message, and the reason as its
//! source. A server whose SPIFFE ID no trust anchor of its own trust domain
//! vouches for is refused with `ConnectError::NoAnchorOfTrustDomain`,
//! which holds the public `NoAnchorOfTrustDomain` and gives it as its
//! source, as `ConnectError::IdentityMismatch` does its refusal: a caller
//! finds it in the error's chain of causes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::error::Error as _;

use http::Uri;
use mesh_core::client::ClientConfig;
use mesh_tls::{
    ConnectError, CredentialStore, InboundMode, NoAnchorOfTrustDomain, OutboundTls, StoreConfig,
    TlsConnector, TlsTargets,
};
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
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
            ConnectError::NoAnchorOfTrustDomain { refusal, server }
                if refusal.identity.as_str() == API && server.addr == Some(addr)
        ),
        "{err:?}"
    );
    let refusal = find::<NoAnchorOfTrustDomain>(&err);
    assert_eq!(refusal.map(|r| r.identity.as_str()), Some(API), "{err:?}");
    assert_eq!(
        joined(&err),
        format!(
            "tls handshake with {addr} (expecting {API}) failed: {API} is vouched for by no \
             trust anchor of trust domain example.org: the chain leads only to anchors of other \
             trust domains"
        )
    );
}

async fn dial(connector: TlsConnector, uri: String) -> ConnectError {
    connector
        .oneshot(uri.parse().unwrap())
        .await
        .map(drop)
        .expect_err("the connector refuses the server")
}

/// A server proving another identity is refused by an error that names
/// its address and the identity it was to prove, and whose cause is the
/// mismatch.
#[tokio::test]
async fn a_server_proving_another_identity_is_named_with_the_identity_expected() {
    let ca = ca();
    let impostor = "spiffe://example.org/ns/shop/sa/impostor";
    let server = serve(store(&ca, impostor), InboundMode::Permissive).await;
    let addr = server.addr;
    let err = dial(
        connector(store(&ca, WEB), addr, API),
        format!("http://{addr}/"),
    )
    .await;

    let ConnectError::IdentityMismatch {
        server: expected,
        mismatch,
    } = &err
    else {
        panic!("not a mismatch: {err:?}");
    };
    assert_eq!(expected.addr, Some(addr));
    assert_eq!(expected.identity.as_str(), API);
    assert_eq!(
        mismatch.presented.as_ref().map(|p| p.as_str()),
        Some(impostor)
    );
    assert!(err.is_identity_mismatch());
    assert_eq!(
        joined(&err),
        format!(
            "tls handshake with {addr} (expecting {API}) failed: server identity {impostor} is \
             not the expected {API}"
        )
    );
    server.stop().await;
}

/// A plaintext server answers the ClientHello with bytes that are no TLS.
/// Reached through a host name, the error names the address the name led
/// to, read from the connection.
#[tokio::test]
async fn a_plaintext_server_fails_the_handshake_naming_the_address_reached() {
    let ca = ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plaintext = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            // Read to the client's close: closing with bytes unread would
            // reset the connection, which then no longer says where it went.
            let _ = tokio::io::copy(&mut tcp, &mut tokio::io::sink()).await;
        }
    });
    let targets = TlsTargets::new(OutboundTls::Mtls(id(API)));
    let connector = TlsConnector::new(&ClientConfig::default(), store(&ca, WEB), targets).unwrap();
    let err = dial(connector, format!("http://localhost:{}/", addr.port())).await;

    let ConnectError::Handshake { server, error } = &err else {
        panic!("not a handshake failure: {err:?}");
    };
    assert_eq!(server.addr, Some(addr));
    assert_eq!(server.identity.as_str(), API);
    let message = joined(&err);
    let cause = format!("tls handshake with {addr} (expecting {API}) failed: {error}");
    assert!(message.starts_with(&cause), "{message}");
    // The cause is still there for callers that look for it.
    assert!(
        err.source()
            .and_then(|e| e.downcast_ref::<std::io::Error>())
            .is_some(),
        "{err:?}"
    );
    plaintext.abort();
}
