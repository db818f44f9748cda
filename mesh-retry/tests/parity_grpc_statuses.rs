//! A `GRPCRoute`'s retries look at gRPC codes only, an `HTTPRoute`'s at
//! HTTP statuses only. linkerd2-proxy builds
//! the retry policy of a gRPC route with `retryable_http_statuses: None`
//! (`linkerd/app/outbound/src/http/logical/policy/route/extensions.rs`),
//! and Linkerd's policy controller reads no HTTP statuses for one: a call
//! answered with HTTP 503 and no `grpc-status` is not retried, whatever
//! turned the route's retries on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::classify::{GrpcCodes, StatusRanges};
use mesh_retry::config;

fn grpc_route(annotations: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: books, namespace: shop, annotations: {{{annotations}}}}}
spec:
  parentRefs: [{{kind: Service, group: core, name: books}}]
  rules:
  - matches: [{{method: {{service: shop.Books, method: List}}}}]
"
    )
}

#[test]
fn a_grpc_route_retries_no_http_status() {
    for annotations in [
        "retry.linkerd.io/limit: \"2\"",
        "retry.linkerd.io/grpc: unavailable",
        "retry.linkerd.io/timeout: 1s",
    ] {
        let loaded = config::load("routes.yaml", &grpc_route(annotations)).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let retry = &loaded.service("books", Some("shop")).unwrap().routes[0].retry;
        assert!(retry.retries(), "{annotations}: {retry:?}");
        assert_eq!(
            retry.http_statuses(),
            &StatusRanges::empty(),
            "{annotations}"
        );
    }
    // The codes are still those written, or Linkerd's default.
    let loaded = config::load(
        "routes.yaml",
        &grpc_route("retry.linkerd.io/grpc: unavailable"),
    )
    .unwrap();
    let retry = &loaded.service("books", Some("shop")).unwrap().routes[0].retry;
    assert_eq!(retry.grpc_codes(), "unavailable".parse().unwrap());
}

#[test]
fn an_http_route_still_retries_its_http_statuses() {
    let route = grpc_route("retry.linkerd.io/limit: \"2\"")
        .replace("kind: GRPCRoute", "kind: HTTPRoute")
        .replace(
            "[{method: {service: shop.Books, method: List}}]",
            "[{path: {type: PathPrefix, value: /}}]",
        );
    let loaded = config::load("routes.yaml", &route).unwrap();
    let retry = &loaded.service("books", Some("shop")).unwrap().routes[0].retry;
    assert!(retry.retries());
    assert_eq!(retry.http_statuses(), &StatusRanges::server_errors());
    // And no gRPC code: linkerd2-proxy gives an HTTP route's retries
    // `retryable_grpc_statuses: None`, so a response's `grpc-status`
    // retries nothing there.
    assert_eq!(retry.grpc_codes(), GrpcCodes::empty());
}
