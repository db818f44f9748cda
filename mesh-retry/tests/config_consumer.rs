//! Consumer routes: a route in a namespace other than its parent
//! Service's applies only to clients in the route's own namespace, while a
//! producer route (in the Service's namespace) applies to every client,
//! as Linkerd's policy controller serves them. The `GRPCRoute`s of the
//! routes a client is served still set aside its `HTTPRoute`s, and only
//! those: a consumer `GRPCRoute` does not take `HTTPRoute`s from clients
//! elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request};
use mesh_retry::config::{self, RetryResources, ServiceRetryPolicy};

/// A route of `kind` named `name` in `namespace`, on `emoji` in
/// `emojivoto`, with one rule of its name matching `matches`.
fn route(kind: &str, namespace: &str, name: &str, matches: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji, namespace: emojivoto}}]
  rules:
  - name: {name}
    matches: {matches}
"
    )
}

fn resources() -> RetryResources {
    let all = "[{path: {type: PathPrefix, value: /}}]";
    let vote = "[{path: {type: Exact, value: /api/vote}}]";
    let text = [
        route("HTTPRoute", "emojivoto", "producer", all),
        route("HTTPRoute", "voting", "voting-consumer", vote),
        route(
            "GRPCRoute",
            "web",
            "web-grpc",
            "[{method: {service: emojivoto.v1.EmojiService}}]",
        ),
    ]
    .join("---\n");
    config::load("routes.yaml", &text).unwrap()
}

fn emoji(resources: &RetryResources) -> &ServiceRetryPolicy {
    resources.service("emoji", Some("emojivoto")).unwrap()
}

/// The names of the routes of `service`.
fn names(service: &ServiceRetryPolicy) -> Vec<&str> {
    service.routes.iter().map(|r| &*r.name).collect()
}

fn route_of<'s>(service: &'s ServiceRetryPolicy, method: Method, path: &str) -> &'s str {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap();
    service.route_for(&req).map_or("-", |r| &*r.name)
}

/// The warnings that name an `HTTPRoute` set aside.
fn set_aside(resources: &RetryResources) -> Vec<String> {
    resources
        .warnings
        .iter()
        .filter(|w| w.message.contains("set aside"))
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_client_in_the_services_namespace_is_served_its_producer_routes_alone() {
    let selected = resources().for_namespace("emojivoto");
    let emoji = emoji(&selected);
    assert_eq!(names(emoji), ["producer"]);
    assert_eq!(route_of(emoji, Method::GET, "/api/vote"), "producer");
    assert_eq!(set_aside(&selected), Vec::<String>::new());
}

#[test]
fn a_client_in_a_consumer_routes_namespace_is_served_it_beside_the_producer_routes() {
    let selected = resources().for_namespace("voting");
    let emoji = emoji(&selected);
    assert_eq!(names(emoji), ["producer", "voting-consumer"]);
    assert_eq!(route_of(emoji, Method::GET, "/api/vote"), "voting-consumer");
    assert_eq!(route_of(emoji, Method::GET, "/list"), "producer");
    assert_eq!(set_aside(&selected), Vec::<String>::new());
}

#[test]
fn a_consumer_grpc_route_sets_aside_the_http_routes_of_its_own_namespace_only() {
    let selected = resources().for_namespace("web");
    let web = emoji(&selected);
    assert_eq!(names(web), ["web-grpc"]);
    assert_eq!(
        route_of(web, Method::POST, "/emojivoto.v1.EmojiService/ListAll"),
        "web-grpc"
    );
    let warnings = set_aside(&selected);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("(HTTPRoute emojivoto/producer)")
            && warnings[0].contains("web/web-grpc"),
        "{warnings:?}"
    );
    // A client elsewhere keeps the producer's HTTPRoute.
    let other = resources().for_namespace("elsewhere");
    assert_eq!(names(emoji(&other)), ["producer"]);
}

#[test]
fn selecting_files_merged_is_selecting_them_together() {
    // The consumer GRPCRoute in a second file: the merge keeps what the
    // selection needs to bring the first file's HTTPRoute back.
    let all = "[{path: {type: PathPrefix, value: /}}]";
    let mut merged =
        config::load("a.yaml", &route("HTTPRoute", "emojivoto", "producer", all)).unwrap();
    let grpc = route(
        "GRPCRoute",
        "web",
        "web-grpc",
        "[{method: {method: ListAll}}]",
    );
    merged.merge(config::load("b.yaml", &grpc).unwrap());
    assert_eq!(
        names(emoji(&merged.for_namespace("emojivoto"))),
        ["producer"]
    );
    assert_eq!(names(emoji(&merged.for_namespace("web"))), ["web-grpc"]);
}
