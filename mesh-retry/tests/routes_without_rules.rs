//! Routes written without `rules`: the `HTTPRoute` CRD defaults them to
//! one rule matching the prefix `/`, so such an `HTTPRoute` takes every
//! request of its parent under its own name, ranked as a `/` prefix. A
//! `GRPCRoute`'s CRD has no such default, and `rules: []` is not
//! defaulted: those routes take nothing, with a warning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request};
use mesh_retry::config::{self, ParentKind, RetryResources, ServiceRetryPolicy};

/// An `HTTPRoute` `name` of Service `web` (emojivoto), created at
/// `created`, with `rest` after `spec.parentRefs` (its rules, if any).
fn http_route(name: &str, created: &str, rest: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: emojivoto
  creationTimestamp: {created}
spec:
  parentRefs: [{{group: core, kind: Service, name: web}}]
{rest}"
    )
}

fn web(loaded: &RetryResources) -> &ServiceRetryPolicy {
    loaded
        .service("web", Some("emojivoto"))
        .expect("the service's routes are read")
}

/// The name of the route a `GET` of `path` takes.
fn route_of<'p>(policy: &'p ServiceRetryPolicy, path: &str) -> Option<&'p str> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(())
        .unwrap();
    policy.route_for(&req).map(|r| &*r.name)
}

fn strings(warnings: &[config::ConfigWarning]) -> Vec<String> {
    warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn an_http_route_without_rules_is_one_rule_taking_every_request_under_its_name() {
    for rest in ["", "  rules: null\n", "  rules:\n"] {
        without_rules(rest);
    }
}

/// `rest` writes no rules: absent, or `null` (which the API server drops,
/// so the CRD's default applies to it too).
#[track_caller]
fn without_rules(rest: &str) {
    let text = http_route("web-all", "2024-01-01T00:00:00Z", rest);
    let loaded = config::load("routes.yaml", &text).unwrap_or_else(|e| panic!("{rest:?}: {e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let web = web(&loaded);
    assert_eq!(web.routes.len(), 1, "{:?}", web.routes);
    let route = &web.routes[0];
    assert_eq!(&*route.name, "web-all");
    // No filters, timeouts, retries or backends: the service's.
    assert!(!route.retry.retries(), "{:?}", route.retry);
    assert_eq!(route.timeouts, mesh_retry::Timeouts::default());
    assert!(route.backends.is_empty(), "{:?}", route.backends);
    for path in ["/", "/api/list", "/a?b=c"] {
        assert_eq!(route_of(web, path), Some("web-all"), "{path}");
    }
    let named = web.rule_route(0).expect("named as a rule of the route");
    assert_eq!((named.kind, named.name), ("HTTPRoute", "web-all"));
    assert_eq!(named.namespace, Some("emojivoto"));
    // Named where a user writes it, as no document has a rules[0].
    assert_eq!(
        web.rule_source(0).as_deref(),
        Some("routes.yaml: document 1 (HTTPRoute emojivoto/web-all): spec.rules")
    );
    assert_eq!(
        web.places(),
        ["routes.yaml: document 1 (HTTPRoute emojivoto/web-all): spec.parentRefs[0]"]
    );
}

#[test]
fn the_routes_annotations_apply_to_the_rule_it_is_given() {
    let text = http_route("web-all", "2024-01-01T00:00:00Z", "").replace(
        "  creationTimestamp:",
        "  annotations: {retry.linkerd.io/http: 5xx, timeout.linkerd.io/request: 3s}\n  \
         creationTimestamp:",
    );
    let loaded = config::load("routes.yaml", &text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let route = &web(&loaded).routes[0];
    assert!(route.retry.retries(), "{:?}", route.retry);
    assert_eq!(
        route.timeouts.request,
        Some(std::time::Duration::from_secs(3))
    );
}

#[test]
fn it_ranks_as_a_prefix_of_slash_against_other_routes() {
    // Older than the route with `/api`, yet that more specific prefix
    // wins its requests; the rest are the rule-less route's.
    let specific = http_route(
        "web-api",
        "2024-06-01T00:00:00Z",
        "  rules:\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n",
    );
    let all = http_route("web-all", "2024-01-01T00:00:00Z", "");
    for text in [
        format!("{specific}---\n{all}"),
        format!("{all}---\n{specific}"),
    ] {
        let loaded = config::load("routes.yaml", &text).unwrap();
        let web = web(&loaded);
        assert_eq!(route_of(web, "/api/list"), Some("web-api"));
        assert_eq!(route_of(web, "/"), Some("web-all"));
        assert_eq!(route_of(web, "/apiary"), Some("web-all"));
    }
    // Against a written `/` prefix it ties, and the older route wins, as
    // between two written ones.
    let slash = |created| {
        http_route(
            "web-slash",
            created,
            "  rules:\n  - matches: [{path: {type: PathPrefix, value: /}}]\n",
        )
    };
    for (created, winner) in [
        ("2023-01-01T00:00:00Z", "web-slash"),
        ("2025-01-01T00:00:00Z", "web-all"),
    ] {
        let text = format!("{all}---\n{}", slash(created));
        let loaded = config::load("routes.yaml", &text).unwrap();
        assert_eq!(route_of(web(&loaded), "/x"), Some(winner), "{created}");
    }
}

#[test]
fn an_egress_networks_route_without_rules_takes_its_traffic() {
    let text = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: out, namespace: egress-test}
spec:
  parentRefs:
  - {name: all-egress-traffic, kind: EgressNetwork, group: policy.linkerd.io, port: 80}
";
    let loaded = config::load("egress.yaml", text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let net = loaded
        .egress_network("all-egress-traffic", Some("egress-test"))
        .expect("the network's routes are read");
    assert_eq!(net.parent(), ParentKind::EgressNetwork);
    let (on_80, warnings) = net.for_port(80);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(on_80.routes.len(), 1, "{:?}", on_80.routes);
    assert_eq!(route_of(&on_80, "/anything"), Some("out"));
    // Its requests go to the original destination, as a rule's without
    // backendRefs do.
    assert!(on_80.routes[0].backends.is_empty());
    let (on_443, _) = net.for_port(443);
    assert!(on_443.routes.is_empty(), "{:?}", on_443.routes);
}

#[test]
fn a_grpc_route_and_an_empty_list_have_no_rules_and_are_named() {
    let grpc = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: web-grpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: web}]
";
    let loaded = config::load("routes.yaml", grpc).unwrap();
    assert!(web(&loaded).routes.is_empty(), "{:?}", web(&loaded).routes);
    let warnings = strings(&loaded.warnings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .starts_with("routes.yaml: document 1 (GRPCRoute emojivoto/web-grpc): spec.rules: ")
            && warnings[0].contains("takes no calls"),
        "{warnings:?}"
    );

    let empty = http_route("web-none", "2024-01-01T00:00:00Z", "  rules: []\n");
    let loaded = config::load("routes.yaml", &empty).unwrap();
    assert!(web(&loaded).routes.is_empty(), "{:?}", web(&loaded).routes);
    let warnings = strings(&loaded.warnings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .starts_with("routes.yaml: document 1 (HTTPRoute emojivoto/web-none): spec.rules: ")
            && warnings[0].contains("empty list"),
        "{warnings:?}"
    );
}
