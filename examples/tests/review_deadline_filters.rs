//! A route filter that sets or removes the deadline header
//! (`mesh-deadline`, `grpc-timeout`): the route's timeouts read the
//! request after its filters, so the route's family, which counts the
//! request before them, labels the mesh's timeout answer by the deadline
//! the filters left, as the backend's family does: `REQUEST_TIMEOUT` for
//! the deadline a filter set, `RESPONSE_HEADERS_TIMEOUT` for the per-try
//! timeout that ended a request whose caller's deadline a filter removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::{Request, StatusCode, Version};
use support::*;

/// `emoji-strip` drops the caller's deadline headers and times each
/// attempt out after 400 ms; `emoji-set` gives every request a 300 ms
/// deadline and each attempt an hour.
const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-strip, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: strip}]}]
    timeouts: {backendRequest: 400ms}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        remove: [mesh-deadline, grpc-timeout]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-set, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: set}]}]
    timeouts: {backendRequest: 1h}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: mesh-deadline, value: \"300\"}
        - {name: grpc-timeout, value: 300m}
";

const ROUTE_HTTP: &str = "outbound_http_route_request_statuses_total";
const BACKEND_HTTP: &str = "outbound_http_route_backend_response_statuses_total";
const ROUTE_GRPC: &str = "outbound_grpc_route_request_statuses_total";
const BACKEND_GRPC: &str = "outbound_grpc_route_backend_response_statuses_total";

/// What each family counted for `route` with `error`: the route's and
/// the backend's, HTTP then gRPC.
fn counted(metrics: &str, route: &str, error: &str) -> [Option<u64>; 4] {
    let error = format!("error=\"{error}\"");
    [
        (ROUTE_HTTP, "http_status=\"504\""),
        (BACKEND_HTTP, "http_status=\"\""),
        (ROUTE_GRPC, "grpc_status=\"DEADLINE_EXCEEDED\""),
        (BACKEND_GRPC, "grpc_status=\"UNKNOWN\""),
    ]
    .map(|(family, status)| route_sample(metrics, family, route, &format!("{status},{error}")))
}

/// Sends a plain request and a gRPC call to `/hold` on `case`'s route,
/// with the deadline `mesh` and `grpc` if given, and expects the mesh's
/// timeout answer to each.
async fn both_time_out(outbound: SocketAddr, case: &str, deadlines: Option<(&str, &str)>) {
    let mut plain = Request::get("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("x-case", case);
    let mut call = Request::post("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-case", case);
    if let Some((mesh, grpc)) = deadlines {
        plain = plain.header("mesh-deadline", mesh);
        call = call.header("grpc-timeout", grpc);
    }
    // Bounded, so that a timeout not kept fails the test.
    let bound = Duration::from_secs(30);
    let res = tokio::time::timeout(bound, h2_via(outbound, plain.body(full("")).unwrap()))
        .await
        .expect("a timeout ends the request")
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT, "{case}");
    let res = tokio::time::timeout(bound, h2_via(outbound, call.body(full("")).unwrap()))
        .await
        .expect("a timeout ends the call")
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "4", "{case}");
}

#[tokio::test]
async fn the_route_family_labels_the_deadline_its_filters_left() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _gate) = backend().await;
    let sidecar = sidecar(&emoji_routes_yaml(dir.path(), backend, ROUTES, 1));
    // The caller's 100 ms is removed: the attempt's 400 ms ends it.
    both_time_out(sidecar.outbound, "strip", Some(("100", "100m"))).await;
    // The filter's 300 ms ends it, the caller having sent none.
    both_time_out(sidecar.outbound, "set", None).await;
    let once = [Some(1); 4];
    let expected = |m: &str| {
        counted(m, "emoji-strip", "RESPONSE_HEADERS_TIMEOUT") == once
            && counted(m, "emoji-set", "REQUEST_TIMEOUT") == once
    };
    let metrics = scrape_until(sidecar.admin, expected).await;
    assert_eq!(
        counted(&metrics, "emoji-strip", "RESPONSE_HEADERS_TIMEOUT"),
        once,
        "{metrics}"
    );
    assert_eq!(
        counted(&metrics, "emoji-set", "REQUEST_TIMEOUT"),
        once,
        "{metrics}"
    );
    stop(sidecar).await;
}
