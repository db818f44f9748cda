//! An `HTTPRoute` written without `rules`, through a real sidecar: the
//! Gateway API defaults its rules to one taking every request, so it takes
//! every request of its parent, counted under its own name, and lets a
//! `Deny` `EgressNetwork`'s traffic out as Linkerd does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, StatusCode};
use support::{
    upstreams::{named, sidecar_yaml},
    *,
};

/// Sends `GET path` for `host` to the outbound listener at `outbound`:
/// the status, the `mesh-error`, and the body.
async fn get(outbound: SocketAddr, host: &str, path: &str) -> (StatusCode, Option<String>, String) {
    let req = Request::get(format!("http://{outbound}{path}"))
        .header("host", host)
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status();
    let error = res
        .headers()
        .get("mesh-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, error, body)
}

/// The lines of `outbound_http_route_request_statuses_total` of parent
/// `parent`.
fn statuses<'m>(metrics: &'m str, parent: &str) -> Vec<&'m str> {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("outbound_http_route_request_statuses_total{")
                && l.contains(&format!("parent_name=\"{parent}\""))
        })
        .collect()
}

#[tokio::test]
async fn a_services_route_without_rules_counts_its_requests_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-all, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
";
    let running = sidecar(&sidecar_yaml(dir.path(), v1, v2, route));

    for path in ["/", "/api/list"] {
        let (status, error, body) = get(running.outbound, "emoji", path).await;
        assert_eq!((status, error, body.as_str()), (StatusCode::OK, None, "v1"));
    }
    assert_eq!(v2_hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let metrics = scrape(running.admin).await;
    let lines = statuses(&metrics, "emoji");
    let expected = "route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",\
                    route_namespace=\"emojivoto\",route_name=\"emoji-all\"";
    assert!(
        lines.len() == 1
            && lines[0].contains(expected)
            && lines[0].contains("http_status=\"200\"")
            && lines[0].ends_with(" 2"),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_route_without_rules_lets_a_deny_networks_traffic_out() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("httpbin").await;
    let port = upstream.port();
    let policy = "apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: all-egress-traffic, namespace: emojivoto}
spec:
  trafficPolicy: Deny
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: everything-out, namespace: emojivoto}
spec:
  parentRefs:
  - {name: all-egress-traffic, kind: EgressNetwork, group: policy.linkerd.io, namespace: emojivoto}
";
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let running = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ));

    let host = format!("localhost:{port}");
    let (status, error, body) = get(running.outbound, &host, "/ip").await;
    assert_eq!(
        (status, error, body.as_str()),
        (StatusCode::OK, None, "httpbin")
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    let metrics = scrape(running.admin).await;
    let lines = statuses(&metrics, "all-egress-traffic");
    assert!(
        lines.len() == 1
            && lines[0].contains("route_kind=\"HTTPRoute\",route_namespace=\"emojivoto\",route_name=\"everything-out\"")
            && lines[0].contains("http_status=\"200\"")
            && lines[0].ends_with(" 1"),
        "{lines:#?}"
    );
}
