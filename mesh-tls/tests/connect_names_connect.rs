//! What a connect that fails says: the connector's error names what the
//! connection was for (the authority dialled, and the identity an `mtls`
//! target's server was to prove), so that the line a forwarder logs for
//! it tells an operator which upstream could not be reached; the
//! underlying connector's error stays its source.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::error::Error as _;

use mesh_core::{client::ClientConfig, proxy::ForwardTcp};
use mesh_tls::{ConnectError, CredentialStore, OutboundTls, TlsConnector, TlsTargets};
use support::{refused::refused_addr, *};
use tower::ServiceExt;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

async fn dial(connector: TlsConnector, uri: String) -> ConnectError {
    connector
        .oneshot(uri.parse().unwrap())
        .await
        .map(drop)
        .expect_err("nothing listens")
}

#[tokio::test]
async fn a_plaintext_targets_failed_connect_names_the_address_dialled() {
    let addr = refused_addr();
    let targets = TlsTargets::new(OutboundTls::Plaintext);
    let connector = TlsConnector::new(
        &ClientConfig::default(),
        CredentialStore::default(),
        targets,
    )
    .unwrap();
    let err = dial(connector, format!("http://{addr}/")).await;

    let line = joined(&err);
    assert!(
        line.starts_with(&format!("connect to {addr} failed: ")),
        "{line}"
    );
    let target = err.target().expect("a connect error");
    assert_eq!(
        target.authority.as_ref().map(|a| a.as_str()),
        Some(addr.to_string().as_str())
    );
    assert_eq!(target.identity, None);
    // The underlying connector's error is still there for callers.
    assert!(err.source().is_some(), "{err:?}");
}

#[tokio::test]
async fn an_mtls_targets_failed_connect_names_the_address_and_the_identity_expected() {
    let ca = ca();
    let addr = refused_addr();
    let err = dial(
        connector(store(&ca, WEB), addr, API),
        format!("http://{addr}/"),
    )
    .await;

    let line = joined(&err);
    assert!(
        line.starts_with(&format!("connect to {addr} (expecting {API}) failed: ")),
        "{line}"
    );
    let target = err.target().expect("a connect error");
    assert_eq!(target.identity, Some(id(API)));
}

/// A host name is named as it was dialled: a connect that fails says
/// nothing of where the name led.
#[tokio::test]
async fn a_failed_connect_to_a_host_name_names_the_name() {
    let ca = ca();
    let addr = refused_addr();
    let targets = TlsTargets::new(OutboundTls::Mtls(id(API)));
    let connector = TlsConnector::new(&ClientConfig::default(), store(&ca, WEB), targets).unwrap();
    let err = dial(connector, format!("http://localhost:{}/", addr.port())).await;

    let line = joined(&err);
    assert!(
        line.starts_with(&format!(
            "connect to localhost:{} (expecting {API}) failed: ",
            addr.port()
        )),
        "{line}"
    );
}

/// What an operator reads: the warning of a forwarded connection's
/// failed connect names the endpoint, and its cause the identity the
/// endpoint was to prove.
#[tokio::test]
async fn a_forwarded_connects_warning_names_the_identity_expected() {
    let (events, _log) = Logs::capture();
    let ca = ca();
    let addr = refused_addr();
    let forward = ForwardTcp::new(connector(store(&ca, WEB), addr, API), [addr]).unwrap();
    let err = forward.connect().await.expect_err("nothing listens");
    assert!(
        joined(&*err).starts_with(&format!(
            "cannot connect to endpoint {addr}: connect to {addr} (expecting {API}) failed: "
        )),
        "{err}"
    );

    let warned = events.find_at(tracing::Level::WARN, "cannot connect to the endpoint");
    let [line] = warned.as_slice() else {
        panic!("one warning expected: {warned:?}");
    };
    assert!(line.contains(&format!("endpoint={addr}")), "{line}");
    assert!(
        line.contains(&format!("connect to {addr} (expecting {API}) failed")),
        "{line}"
    );
}
