//! The TLS labels of outbound traffic to a service that names no identity.
//!
//! Linkerd labels a connection to a destination for which discovery gave
//! no identity `tls="no_identity",no_tls_reason="not_provided_by_service_discovery"`
//! (`NoClientTls::NotProvidedByServiceDiscovery` in linkerd2-proxy's
//! `linkerd/tls/src/client.rs`), and writes `tls="disabled"` only when the
//! proxy itself has no identity to use. A dashboard or alert written for
//! Linkerd tells the two apart, so the sidecar does as well.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use support::*;

/// The outbound `request_total` and `tcp_open_total` series of `text`
/// (of the connections to the services: `peer="dst"`).
fn outbound_series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            l.starts_with("request_total{")
                || (l.starts_with("tcp_open_total{") && l.contains("peer=\"dst\""))
        })
        .filter(|l| l.contains("direction=\"outbound\""))
        .collect()
}

/// Sends one request through `outbound` to the `plain` service and
/// returns the sidecar's metrics afterwards.
async fn call_and_scrape(running: &mesh_examples::sidecar::Running) -> String {
    let req = Request::get(format!("http://{}/api/list", running.outbound))
        .header("host", "plain")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    body_bytes(res).await;
    scrape(running.admin).await
}

fn caller(identity: &str, app: std::net::SocketAddr) -> String {
    format!(
        "{identity}outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: plain\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_with_an_identity_labels_plaintext_as_not_provided_by_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let certs_for = issuer(dir.path());
    let app = ok_app(false).await;
    let running = sidecar(&caller(
        &format!("identity:\n  dir: {}\n", certs_for("web").display()),
        app,
    ));
    let text = call_and_scrape(&running).await;
    stop(running).await;

    let series = outbound_series(&text);
    for family in ["request_total{", "tcp_open_total{"] {
        let found: Vec<&&str> = series.iter().filter(|l| l.starts_with(family)).collect();
        assert!(!found.is_empty(), "no outbound {family}: {text}");
        for line in found {
            assert!(
                line.contains("tls=\"no_identity\"")
                    && line.contains("no_tls_reason=\"not_provided_by_service_discovery\""),
                "{line}"
            );
        }
    }
    assert!(!text.contains("tls=\"disabled\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_without_an_identity_labels_plaintext_disabled() {
    let app = ok_app(false).await;
    let running = sidecar(&caller("", app));
    let text = call_and_scrape(&running).await;
    stop(running).await;

    let series = outbound_series(&text);
    for family in ["request_total{", "tcp_open_total{"] {
        let found: Vec<&&str> = series.iter().filter(|l| l.starts_with(family)).collect();
        assert!(!found.is_empty(), "no outbound {family}: {text}");
        for line in found {
            assert!(
                line.contains("tls=\"disabled\"") && !line.contains("no_tls_reason"),
                "{line}"
            );
        }
    }
}
