//! A target whose identity is a SPIFFE ID sends its URI's host as the TLS
//! server name; a host that is no DNS name cannot be sent, and the
//! connection fails before it is made. Its error names the host dialled
//! and the identity expected, as a failed connect's does, so that the
//! line a forwarder logs for it tells an operator which upstream's name
//! is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::error::Error as _;

use mesh_core::client::ClientConfig;
use mesh_tls::{ConnectError, OutboundTls, TlsConnector, TlsTargets};
use support::*;
use tower::ServiceExt;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

#[tokio::test]
async fn a_host_that_is_no_server_name_is_named_with_the_identity_expected() {
    let ca = ca();
    let targets = TlsTargets::new(OutboundTls::Mtls(id(API)));
    let connector = TlsConnector::new(&ClientConfig::default(), store(&ca, WEB), targets).unwrap();
    // A label that ends in a hyphen: a URI host, but no DNS name.
    let err = connector
        .oneshot("http://api-.shop:8080/".parse().unwrap())
        .await
        .map(drop)
        .expect_err("no server name to send");

    assert!(
        matches!(err, ConnectError::InvalidServerName { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("target host api-.shop:8080 is not a valid tls server name (expecting {API})")
    );
    let target = err.target().expect("the error names its target");
    assert_eq!(
        target.authority.as_ref().map(|a| a.as_str()),
        Some("api-.shop:8080")
    );
    assert_eq!(target.identity, Some(id(API)));
    // Why the host is no server name stays the error's source.
    assert!(err.source().is_some(), "{err:?}");
}
