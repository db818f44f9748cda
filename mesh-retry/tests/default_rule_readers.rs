//! The rule an `HTTPRoute` written without `rules` is given (the CRD's
//! default, the path prefix `/`) as texts are merged and as a client's
//! namespace selects routes: it stays one rule, named at `spec.rules` of
//! the text it was read from, ranked as a `/` prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request};
use mesh_retry::config::{self, ServiceRetryPolicy};

/// An `HTTPRoute` `name` in `namespace`, attached to Service
/// `emojivoto/web`, with `rest` after `spec.parentRefs`.
fn http_route(name: &str, namespace: &str, rest: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: '2024-01-01T00:00:00Z'}}
spec:
  parentRefs: [{{group: core, kind: Service, name: web, namespace: emojivoto}}]
{rest}"
    )
}

/// The name of the route a `GET` of `path` takes, and where its rule was
/// read.
fn route_of(policy: &ServiceRetryPolicy, path: &str) -> Option<(String, String)> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(())
        .unwrap();
    let route = policy.route_for(&req)?;
    let index = policy
        .routes
        .iter()
        .position(|r| std::ptr::eq(r, route))
        .expect("one of the service's routes");
    Some((
        route.name.to_string(),
        policy.rule_source(index).expect("read from a route"),
    ))
}

#[test]
fn merged_with_another_texts_routes_it_keeps_its_name_and_place() {
    let mut loaded = config::load("all.yaml", &http_route("web-all", "emojivoto", "")).unwrap();
    let api = http_route(
        "web-api",
        "emojivoto",
        "  rules: [{matches: [{path: {type: PathPrefix, value: /api}}]}]\n",
    );
    loaded.merge(config::load("api.yaml", &api).unwrap());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let web = loaded.service("web", Some("emojivoto")).unwrap();
    assert_eq!(web.routes.len(), 2, "{:?}", web.routes);
    assert_eq!(
        route_of(web, "/x"),
        Some((
            "web-all".to_owned(),
            "all.yaml: document 1 (HTTPRoute emojivoto/web-all): spec.rules".to_owned()
        ))
    );
    assert_eq!(
        route_of(web, "/api/v1"),
        Some((
            "web-api".to_owned(),
            "api.yaml: document 1 (HTTPRoute emojivoto/web-api): spec.rules[0]".to_owned()
        ))
    );
}

#[test]
fn a_consumer_route_without_rules_takes_its_namespaces_requests_only() {
    let loaded = config::load("routes.yaml", &http_route("web-mine", "client", "")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mine = loaded.for_namespace("client");
    let web = mine.service("web", Some("emojivoto")).unwrap();
    assert_eq!(web.routes.len(), 1, "{:?}", web.routes);
    assert_eq!(
        route_of(web, "/any"),
        Some((
            "web-mine".to_owned(),
            "routes.yaml: document 1 (HTTPRoute client/web-mine): spec.rules".to_owned()
        ))
    );
    let theirs = loaded.for_namespace("elsewhere");
    let routes = theirs
        .service("web", Some("emojivoto"))
        .map_or(0, |web| web.routes.len());
    assert_eq!(routes, 0);
}
