//! Denied and audited requests are logged at `info`, naming the client's
//! address and TLS, as linkerd2-proxy logs "Request denied" and an audited
//! "Request allowed" (`linkerd/app/inbound/src/policy/http.rs`): an
//! operator tightening a policy sees whom it turns away, or would, without
//! raising the log level.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    convert::Infallible,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http::{Request, Response, StatusCode};
use mesh_core::{ConnectionInfo, Tls, conn::NoTlsReason};
use mesh_policy::{AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore};
use prometheus_client::registry::Registry;
use support::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Log lines written on this thread, at the fmt subscriber's default
/// level (`info`).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// What the layer logs at `info` for one plaintext GET of `path` to
/// `port` from 10.1.1.1, and the status it answers.
async fn logged(port: u16, path: &str) -> (StatusCode, String) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

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
    (rsp.status(), lines.text())
}

#[tokio::test]
async fn a_denied_request_is_logged_at_info_with_its_client() {
    let (status, text) = logged(8080, "/authors").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let line = text
        .lines()
        .find(|l| l.contains("request denied"))
        .unwrap_or_else(|| panic!("no denial at info: {text}"));
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("server=\"books-http\""), "{line}");
    assert!(line.contains("10.1.1.1"), "{line}");
    assert!(line.contains("Plaintext"), "{line}");
}

#[tokio::test]
async fn an_audited_request_is_logged_at_info_with_its_client() {
    let (status, text) = logged(9990, "/admin").await;
    assert_eq!(status, StatusCode::OK, "audit allows");
    let line = text
        .lines()
        .find(|l| l.contains("request allowed by audit mode"))
        .unwrap_or_else(|| panic!("no audit line at info: {text}"));
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("10.1.1.1"), "{line}");
}
