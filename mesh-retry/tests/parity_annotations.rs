//! Linkerd reads `retry.linkerd.io/http` on `HTTPRoute`s only and
//! `retry.linkerd.io/grpc` on `GRPCRoute`s only (its retries reference:
//! "This annotation is not valid on GRPCRoute resources", and the other way
//! about); written on the other kind, each is ignored, with a warning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;

use http::{Method, Request};
use mesh_retry::config;

fn route(kind: &str, annotations: &str) -> String {
    let rule = match kind {
        "GRPCRoute" => "  - matches: [{method: {service: shop.Books, method: List}}]",
        _ => "  - matches: [{path: {type: PathPrefix, value: /}}]",
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: books, namespace: shop, annotations: {{{annotations}}}}}
spec:
  parentRefs: [{{kind: Service, group: core, name: books}}]
  rules:
{rule}
"
    )
}

fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap()
}

#[test]
fn a_grpc_annotation_on_an_http_route_is_ignored_with_a_warning() {
    // Alone, it turns nothing on: Linkerd's HTTPRoute has no retry then.
    let loaded = config::load(
        "routes.yaml",
        &route("HTTPRoute", "retry.linkerd.io/grpc: unavailable"),
    )
    .unwrap();
    let [warning] = &loaded.warnings[..] else {
        panic!("{:?}", loaded.warnings)
    };
    assert_eq!(warning.kind, "HTTPRoute");
    assert_eq!(warning.name.as_deref(), Some("books"));
    assert_eq!(warning.field, "metadata.annotations.retry.linkerd.io/grpc");
    for part in [
        "retry.linkerd.io/grpc is ignored on an HTTPRoute",
        "GRPCRoutes only",
        "retry.linkerd.io/http",
    ] {
        assert!(warning.message.contains(part), "{part}: {warning}");
    }
    let books = loaded.service("books", Some("shop")).unwrap();
    let retry = &books.routes[0].retry;
    assert!(!retry.retries(), "{retry:?}");
    assert!(!retry.grpc_requests(), "{retry:?}");

    // Beside the HTTP one, the HTTP statuses are retried, no gRPC code
    // (not even the annotation's), and gRPC calls, POSTs, are not marked
    // retryable.
    let loaded = config::load(
        "routes.yaml",
        &route(
            "HTTPRoute",
            "retry.linkerd.io/grpc: internal, retry.linkerd.io/http: \"503\"",
        ),
    )
    .unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let retry = &loaded.service("books", Some("shop")).unwrap().routes[0].retry;
    assert!(retry.retries());
    assert_eq!(retry.http_statuses(), &"503".parse().unwrap());
    assert_eq!(retry.grpc_codes(), mesh_core::classify::GrpcCodes::empty());
    assert!(!retry.grpc_requests(), "{retry:?}");

    // A value that would not parse is not read, so it is no error either.
    let loaded = config::load(
        "routes.yaml",
        &route("HTTPRoute", "retry.linkerd.io/grpc: flaky"),
    )
    .unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}

#[test]
fn an_http_annotation_on_a_grpc_route_is_ignored_with_a_warning() {
    let loaded = config::load(
        "routes.yaml",
        &route("GRPCRoute", "retry.linkerd.io/http: 5xx"),
    )
    .unwrap();
    let [warning] = &loaded.warnings[..] else {
        panic!("{:?}", loaded.warnings)
    };
    assert_eq!(warning.kind, "GRPCRoute");
    assert_eq!(warning.name.as_deref(), Some("books"));
    assert_eq!(warning.field, "metadata.annotations.retry.linkerd.io/http");
    for part in [
        "retry.linkerd.io/http is ignored on a GRPCRoute",
        "HTTPRoutes only",
        "retry.linkerd.io/grpc",
    ] {
        assert!(warning.message.contains(part), "{part}: {warning}");
    }
    let books = loaded.service("books", Some("shop")).unwrap();
    let retry = &books.routes[0].retry;
    assert!(!retry.retries(), "{retry:?}");
    assert!(books.routes[0].matches(&request(Method::POST, "/shop.Books/List")));

    // A value that would not parse is not read, so it is no error either.
    let loaded = config::load(
        "routes.yaml",
        &route("GRPCRoute", "retry.linkerd.io/http: 6xx"),
    )
    .unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
}

#[test]
fn a_grpc_routes_limit_alone_retries_its_calls() {
    // Linkerd's GRPCRoute retry needs no `retry.linkerd.io/grpc`: a limit
    // or a timeout alone turns it on, for the route's calls, all POSTs.
    let loaded = config::load(
        "routes.yaml",
        &route("GRPCRoute", "retry.linkerd.io/limit: \"2\""),
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let retry = &loaded.service("books", Some("shop")).unwrap().routes[0].retry;
    assert!(retry.retries());
    assert_eq!(retry.max_attempts(), NonZeroU32::new(3).unwrap());
    assert!(retry.grpc_requests(), "{retry:?}");
}

#[test]
fn a_zero_retry_timeout_turns_no_retries_on() {
    // Linkerd drops a `retry.linkerd.io/timeout` of zero before deciding
    // whether the route retries: alone, it leaves the route without.
    for kind in ["HTTPRoute", "GRPCRoute"] {
        let loaded =
            config::load("routes.yaml", &route(kind, "retry.linkerd.io/timeout: 0s")).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let route = &loaded.service("books", Some("shop")).unwrap().routes[0];
        assert!(!route.retry.retries(), "{kind}: {:?}", route.retry);
        assert_eq!(route.timeouts.per_try, None, "{kind}");
    }
    // Beside another, it is no per-try timeout.
    let loaded = config::load(
        "routes.yaml",
        &route(
            "HTTPRoute",
            "retry.linkerd.io/timeout: 0s, retry.linkerd.io/http: 5xx",
        ),
    )
    .unwrap();
    let route = &loaded.service("books", Some("shop")).unwrap().routes[0];
    assert!(route.retry.retries());
    assert_eq!(route.timeouts.per_try, None);
}

#[test]
fn durations_as_linkerd_writes_them_in_annotations_are_read() {
    // Linkerd's policy controller reads an annotation's duration as one
    // whole number with ms, s, m, h or d; Go's notation is read too.
    for (value, expected) in [("1d", 86_400), ("2h", 7_200), ("1m30s", 90), (" 45s ", 45)] {
        let loaded = config::load(
            "routes.yaml",
            &route(
                "HTTPRoute",
                &format!("timeout.linkerd.io/request: \"{value}\""),
            ),
        )
        .unwrap();
        let route = &loaded.service("books", Some("shop")).unwrap().routes[0];
        assert_eq!(
            route.timeouts.request,
            Some(std::time::Duration::from_secs(expected)),
            "{value}"
        );
    }
    let err = config::load(
        "routes.yaml",
        &route("HTTPRoute", "retry.linkerd.io/timeout: 1.5d"),
    )
    .unwrap_err();
    assert_eq!(
        err.field_path(),
        "metadata.annotations.retry.linkerd.io/timeout",
        "{err}"
    );
    assert!(
        err.to_string().contains("or whole days, such as 1d"),
        "{err}"
    );
}

#[test]
fn a_grpc_routes_ok_code_is_refused_as_linkerd_refuses_it() {
    // Retrying on OK would send every successful call again.
    let err = config::load(
        "routes.yaml",
        &route("GRPCRoute", "retry.linkerd.io/grpc: \"unavailable,ok\""),
    )
    .unwrap_err();
    assert_eq!(
        err.field_path(),
        "metadata.annotations.retry.linkerd.io/grpc",
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("ok (0) is a successful call, which is never retried"),
        "{err}"
    );
    // Linkerd's own names for the codes it retries are read.
    let loaded = config::load(
        "routes.yaml",
        &route(
            "GRPCRoute",
            "retry.linkerd.io/grpc: \"cancelled,deadline-exceeded,internal,resource-exhausted,unavailable\"",
        ),
    )
    .unwrap();
    let retry = &loaded.service("books", Some("shop")).unwrap().routes[0].retry;
    assert_eq!(retry.grpc_codes().iter().count(), 5, "{retry:?}");
}

#[test]
fn a_retry_limit_above_linkerds_largest_is_refused() {
    // Linkerd reads the limit as a 16-bit number and refuses the route
    // for a larger one.
    let err = config::load(
        "routes.yaml",
        &route("HTTPRoute", "retry.linkerd.io/limit: \"100000\""),
    )
    .unwrap_err();
    assert_eq!(
        err.field_path(),
        "metadata.annotations.retry.linkerd.io/limit",
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("retry limit \"100000\" is above 65535, the most Linkerd takes"),
        "{err}"
    );
    let loaded = config::load(
        "routes.yaml",
        &route("HTTPRoute", "retry.linkerd.io/limit: \"65535\""),
    )
    .unwrap();
    let retry = &loaded.service("books", Some("shop")).unwrap().routes[0].retry;
    assert_eq!(retry.max_attempts(), NonZeroU32::new(65_536).unwrap());
}
