//! Which of a route's timeouts ended a request, as the Linkerd-named route
//! families label it: linkerd2-proxy's `error` (its route metrics'
//! `Error`, `linkerd/app/outbound/src/http/logical/policy/route/metrics/labels.rs`)
//! is `REQUEST_TIMEOUT` for the request's deadline (its `StreamDeadlineError`)
//! and `RESPONSE_HEADERS_TIMEOUT` for an attempt's own timeout (its
//! `ResponseHeadersTimeoutError`), in the route's family and in its
//! backend's alike, since its timeouts are enforced under both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, StatusCode, Version};
use support::*;

/// Two routes of `emoji` to `/hold`, which answers nothing: one whose
/// request timeout is 300 ms, one whose attempts' timeout is (without
/// retries).
const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-deadline, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: deadline}]}]
    timeouts: {request: 300ms}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-attempt, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: attempt}]}]
    timeouts: {request: 1h, backendRequest: 300ms}
";

fn plain(case: &str) -> Request<Body> {
    Request::get("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("x-case", case)
        .body(full(""))
        .unwrap()
}

fn grpc_call(case: &str) -> Request<Body> {
    Request::post("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-case", case)
        .body(full(""))
        .unwrap()
}

/// Sends a plain request and a gRPC call on `case`'s route and expects
/// the mesh's timeout answer to each.
async fn both_time_out(outbound: SocketAddr, case: &str) {
    let res = h2_via(outbound, plain(case)).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    let res = h2_via(outbound, grpc_call(case)).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "4");
}

#[tokio::test]
async fn the_request_timeout_is_request_timeout_and_an_attempts_is_response_headers_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _gate) = backend().await;
    let sidecar = sidecar(&emoji_routes_yaml(dir.path(), backend, ROUTES, 2));

    both_time_out(sidecar.outbound, "deadline").await;
    both_time_out(sidecar.outbound, "attempt").await;

    let once = [Some(1); 4];
    let metrics = scrape_until(sidecar.admin, |m| {
        timeouts_counted(m, "emoji-deadline", "REQUEST_TIMEOUT") == once
            && timeouts_counted(m, "emoji-attempt", "RESPONSE_HEADERS_TIMEOUT") == once
    })
    .await;
    assert_eq!(
        timeouts_counted(&metrics, "emoji-deadline", "REQUEST_TIMEOUT"),
        once,
        "{metrics}"
    );
    assert_eq!(
        timeouts_counted(&metrics, "emoji-attempt", "RESPONSE_HEADERS_TIMEOUT"),
        once,
        "{metrics}"
    );
    assert!(!metrics.contains("error=\"CANCEL\""), "{metrics}");
    stop(sidecar).await;
}
