//! An `mtls` target the connector has no usable local credentials for
//! fails before it connects, with an error that names the target (the
//! authority dialled and the identity expected), as a failed connect or
//! handshake does: the line a forwarder logs for it tells an operator
//! which upstream went unreached, and why once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity;

use std::net::SocketAddr;

use mesh_tls::{ConnectError, CredentialStore, StoreConfig, TlsConnector};
use support::{connector, id, joined};
use tower::ServiceExt;
use validity::*;

/// An address that is never dialled: the connector fails first.
const ADDR: &str = "127.0.0.1:4143";

async fn dial(connector: TlsConnector, addr: SocketAddr) -> ConnectError {
    connector
        .oneshot(format!("http://{addr}/").parse().unwrap())
        .await
        .map(drop)
        .expect_err("no usable local credentials")
}

#[tokio::test]
async fn no_credentials_names_the_target() {
    let addr: SocketAddr = ADDR.parse().unwrap();
    let err = dial(connector(CredentialStore::default(), addr, API), addr).await;
    assert_eq!(
        joined(&err),
        format!("no local identity credentials loaded to connect to {addr} (expecting {API})")
    );
    let target = err.target().expect("a target");
    assert_eq!(target.identity, Some(id(API)));
    assert_eq!(target.authority.as_ref().map(|a| a.as_str()), Some(ADDR));
}

#[tokio::test]
async fn expired_credentials_name_the_target_and_say_why_once() {
    let addr: SocketAddr = ADDR.parse().unwrap();
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let store = CredentialStore::with_time_provider(StoreConfig::default(), clock.clone());
    store.update(pki.creds(WEB, JAN_1, JAN_1 + DAY)).unwrap();
    clock.set(JAN_1 + DAY + 3600);

    let err = dial(connector(store, addr, API), addr).await;
    assert!(
        matches!(&err, ConnectError::CredentialsUnusable { unusable, .. } if unusable.identity == id(WEB)),
        "{err:?}"
    );
    assert_eq!(
        joined(&err),
        format!(
            "local identity credentials unusable to connect to {addr} (expecting {API}): local \
             identity certificate of {WEB} expired at 2030-01-02T00:00:00Z (notAfter; it is now \
             2030-01-02T01:00:00Z) and no renewal replaced it"
        )
    );
}
