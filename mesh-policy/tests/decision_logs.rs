//! Denied and audited requests are logged at `info`, naming the client's
//! address and TLS, as linkerd2-proxy logs "Request denied" and an audited
//! "Request allowed" (`linkerd/app/inbound/src/policy/http.rs`): an
//! operator tightening a policy sees whom it turns away, or would, without
//! raising the log level.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{self, log_capture::Logs};

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, StatusCode};
use mesh_core::{ConnectionInfo, Tls, conn::NoTlsReason};
use mesh_policy::{AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore};
use prometheus_client::registry::Registry;
use support::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tracing::Level;

/// What the layer logs for one plaintext GET of `path` to `port` from
/// 10.1.1.1, and the status it answers.
async fn logged(port: u16, path: &str) -> (StatusCode, Logs) {
    let (logs, _guard) = Logs::capture();

    let store = PolicyStore::new(
        books_workload(),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut Registry::default()),
    );
    store
        .reload(&[PolicySource::new("books.yaml", BOOKS)])
        .unwrap();
    let mut req = Request::get(path).body(()).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: SocketAddr::from(([10, 0, 0, 1], port)),
        remote_addr: "10.1.1.1:4000".parse().unwrap(),
        tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
    });
    let rsp = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }))
        .oneshot(req)
        .await
        .unwrap();
    (rsp.status(), logs)
}

#[tokio::test]
async fn a_denied_request_is_logged_at_info_with_its_client() {
    let (status, logs) = logged(8080, "/authors").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let denied = logs.find_at(Level::INFO, "request denied");
    let [line] = denied.as_slice() else {
        panic!("one denial at info expected: {denied:?}");
    };
    assert!(line.contains("server=\"books-http\""), "{line}");
    assert!(line.contains("10.1.1.1"), "{line}");
    assert!(line.contains("Plaintext"), "{line}");
}

#[tokio::test]
async fn an_audited_request_is_logged_at_info_with_its_client() {
    let (status, logs) = logged(9990, "/admin").await;
    assert_eq!(status, StatusCode::OK, "audit allows");
    let audited = logs.find_at(Level::INFO, "request allowed by audit mode");
    let [line] = audited.as_slice() else {
        panic!("one audit line at info expected: {audited:?}");
    };
    assert!(line.contains("10.1.1.1"), "{line}");
}
