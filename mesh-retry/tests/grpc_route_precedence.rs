//! A service's `GRPCRoute`s and `HTTPRoute`s are not ranked together.
//!
//! Linkerd's policy controller, after the Gateway API's mesh rule
//! (GEP-1294: of the route types bound to one Service, GRPCRoute wins),
//! marks every `HTTPRoute` of a service that has a `GRPCRoute`
//! `Accepted: False` (`RouteReasonConflicted`) and serves the service its
//! `GRPCRoute`s alone. Among those, a call takes the match that names its
//! service over one that does not, then one that names its method, then
//! the one with more header matches (the Gateway API's `GRPCRouteRule`
//! precedence, and Linkerd's proxy's); not the HTTP precedence of the
//! paths the matches amount to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request};
use mesh_core::route::{PathMatch, RouteMatch};
use mesh_retry::config::{self, ConfigWarning, RetryResources, ServiceRetryPolicy, Unmatched};

fn load(text: &str) -> RetryResources {
    config::load("test.yaml", text).unwrap()
}

fn emoji(loaded: &RetryResources) -> &ServiceRetryPolicy {
    loaded.service("emoji", Some("emojivoto")).unwrap()
}

fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(()).unwrap()
}

/// The name of the route `req` takes, `-` for none.
fn route_of(service: &ServiceRetryPolicy, req: &Request<()>) -> String {
    service
        .route_for(req)
        .map_or_else(|| "-".to_owned(), |r| r.name.to_string())
}

/// The route of a gRPC call (a `POST`) to `path`.
fn call(service: &ServiceRetryPolicy, path: &str, headers: &[(&str, &str)]) -> String {
    route_of(service, &request(Method::POST, path, headers))
}

/// A route of `kind` named `name` for `emoji`, with `metadata` fields and
/// `rules` as written.
fn route(kind: &str, name: &str, metadata: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: emojivoto{metadata}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
{rules}"
    )
}

const LIST_ALL: &str = "/emojivoto.v1.EmojiService/ListAll";

/// An HTTPRoute whose exact path is the `ListAll` call's, and which takes
/// every other request too.
fn http_web() -> String {
    route(
        "HTTPRoute",
        "web",
        "",
        "  - name: list-by-path
    matches: [{path: {type: Exact, value: /emojivoto.v1.EmojiService/ListAll}}]
  - name: everything
    matches: [{path: {type: PathPrefix, value: /}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: web.example.com}
",
    )
}

/// A GRPCRoute that takes every method of the service.
fn grpc_emoji() -> String {
    route(
        "GRPCRoute",
        "emoji-grpc",
        "",
        "  - name: emoji-service
    matches: [{method: {service: emojivoto.v1.EmojiService}}]
",
    )
}

/// The warnings about set-aside routes.
fn set_aside(loaded: &RetryResources) -> Vec<&ConfigWarning> {
    loaded
        .warnings
        .iter()
        .filter(|w| w.message.contains("set aside"))
        .collect()
}

#[test]
fn a_services_grpc_routes_take_its_requests_in_place_of_its_http_routes() {
    for (text, document) in [
        (format!("{}---\n{}", http_web(), grpc_emoji()), 1),
        (format!("{}---\n{}", grpc_emoji(), http_web()), 2),
    ] {
        let loaded = load(&text);
        let emoji = emoji(&loaded);
        // The HTTPRoute's exact path would outrank the GRPCRoute's service
        // prefix by HTTP precedence; Linkerd never serves the HTTPRoute.
        assert_eq!(call(emoji, LIST_ALL, &[]), "emoji-service", "{text}");
        // Nor its catch-all: a request no GRPCRoute matches is on no route.
        assert_eq!(
            route_of(emoji, &request(Method::GET, "/index.html", &[])),
            "-"
        );
        let names: Vec<&str> = emoji.routes.iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["emoji-service"]);
        assert!(
            emoji.redirect(0).is_none(),
            "the HTTPRoute's redirect went with it"
        );

        let warnings = set_aside(&loaded);
        assert_eq!(warnings.len(), 1, "{:?}", loaded.warnings);
        let warning = warnings[0];
        assert_eq!(warning.kind, "HTTPRoute");
        assert_eq!(warning.name.as_deref(), Some("web"));
        assert_eq!(warning.field, "spec.parentRefs[0]");
        assert_eq!(warning.document, document);
        let shown = warning.to_string();
        assert!(
            shown.contains("(HTTPRoute emojivoto/web)")
                && shown.contains("emojivoto/emoji-grpc")
                && shown.contains("service emojivoto/emoji,"),
            "{shown}"
        );
    }
}

#[test]
fn the_decision_is_per_service() {
    let other = http_web().replace("name: emoji}", "name: web-svc}");
    let loaded = load(&format!("{other}---\n{}", grpc_emoji()));
    assert!(set_aside(&loaded).is_empty(), "{:?}", loaded.warnings);
    let web = loaded.service("web-svc", Some("emojivoto")).unwrap();
    assert_eq!(call(web, LIST_ALL, &[]), "list-by-path");
    assert_eq!(call(emoji(&loaded), LIST_ALL, &[]), "emoji-service");
}

#[test]
fn a_grpc_match_ranks_by_service_then_method_then_headers() {
    let rules = "  - name: method-only
    matches: [{method: {method: ListAll}}]
  - name: method-two-headers
    matches:
    - method: {method: ListAll}
      headers: [{name: x-a, value: '1'}, {name: x-b, value: '1'}]
  - name: service-only
    matches: [{method: {service: emojivoto.v1.EmojiService}}]
  - name: service-one-header
    matches:
    - method: {service: emojivoto.v1.EmojiService}
      headers: [{name: x-a, value: '1'}]
  - name: service-and-method
    matches: [{method: {service: emojivoto.v1.EmojiService, method: FindByShortcode}}]
";
    let loaded = load(&route("GRPCRoute", "emoji-grpc", "", rules));
    let emoji = emoji(&loaded);
    let (a, b) = (("x-a", "1"), ("x-b", "1"));
    // A match naming the service outranks one naming only the method,
    // whatever their header matches; HTTP precedence would rank the
    // method's path expression over the service's path prefix.
    assert_eq!(call(emoji, LIST_ALL, &[]), "service-only");
    assert_eq!(call(emoji, LIST_ALL, &[a, b]), "service-one-header");
    assert_eq!(call(emoji, LIST_ALL, &[a]), "service-one-header");
    // Service and method outrank the service and a header.
    let find = "/emojivoto.v1.EmojiService/FindByShortcode";
    assert_eq!(call(emoji, find, &[a]), "service-and-method");
    // Another service's ListAll: the method alone, then more headers.
    let other = "/other.v1.Other/ListAll";
    assert_eq!(call(emoji, other, &[]), "method-only");
    assert_eq!(call(emoji, other, &[a, b]), "method-two-headers");
    assert_eq!(call(emoji, "/other.v1.Other/Get", &[a, b]), "-");
}

#[test]
fn a_rule_without_matches_takes_every_call_the_others_leave() {
    // Written first, and matching everything: the Gateway API's implicit
    // match, which names nothing and ranks last.
    let rules = "  - name: anything
  - name: with-header
    matches: [{headers: [{name: x-a, value: '1'}]}]
  - name: list-all
    matches: [{method: {method: ListAll}}]
";
    let loaded = load(&route("GRPCRoute", "emoji-grpc", "", rules));
    let emoji = emoji(&loaded);
    assert_eq!(call(emoji, LIST_ALL, &[("x-a", "1")]), "list-all");
    assert_eq!(
        call(emoji, "/other.Other/Get", &[("x-a", "1")]),
        "with-header"
    );
    assert_eq!(call(emoji, "/other.Other/Get", &[]), "anything");
}

#[test]
fn a_regular_expression_counts_as_the_name_it_matches() {
    // A service given by expression still names the call's service: it
    // outranks a method given exactly.
    let rules = "  - name: list-methods
    matches: [{method: {type: RegularExpression, method: 'List.*'}}]
  - name: emoji-service
    matches: [{method: {service: emojivoto.v1.EmojiService}}]
  - name: v1-services
    matches: [{method: {type: RegularExpression, service: 'emojivoto\\.v1\\..*'}}]
";
    let loaded = load(&route("GRPCRoute", "emoji-grpc", "", rules));
    let emoji = emoji(&loaded);
    assert_eq!(call(emoji, LIST_ALL, &[]), "emoji-service");
    assert_eq!(
        call(emoji, "/emojivoto.v1.Other/ListAll", &[]),
        "v1-services"
    );
    assert_eq!(call(emoji, "/other.Other/ListAll", &[]), "list-methods");
}

#[test]
fn equal_grpc_matches_go_to_the_oldest_route_then_the_first_by_name() {
    let rule = |name: &str| {
        format!(
            "  - name: {name}\n    matches: [{{method: {{service: emojivoto.v1.EmojiService}}}}]\n"
        )
    };
    let two = |first: (&str, &str), second: (&str, &str)| {
        let text = format!(
            "{}---\n{}",
            route("GRPCRoute", first.0, first.1, &rule(first.0)),
            route("GRPCRoute", second.0, second.1, &rule(second.0))
        );
        call(emoji(&load(&text)), LIST_ALL, &[])
    };
    let older = ", creationTimestamp: '2024-01-01T00:00:00Z'";
    let newer = ", creationTimestamp: '2024-06-01T00:00:00Z'";
    assert_eq!(two(("b", newer), ("a", older)), "a");
    assert_eq!(two(("a", newer), ("b", older)), "b");
    assert_eq!(two(("b", ""), ("a", "")), "a");
    assert_eq!(two(("a", ""), ("b", newer)), "b");
}

#[test]
fn a_grpc_route_in_another_file_sets_the_http_routes_aside_too() {
    for grpc_first in [false, true] {
        let (http, grpc) = (load(&http_web()), load(&grpc_emoji()));
        let mut merged = RetryResources::default();
        if grpc_first {
            merged.merge(grpc);
            merged.merge(http);
        } else {
            merged.merge(http);
            merged.merge(grpc);
        }
        let emoji = emoji(&merged);
        assert_eq!(call(emoji, LIST_ALL, &[]), "emoji-service");
        assert_eq!(emoji.routes.len(), 1);
        assert!(emoji.redirect(0).is_none());
        let warnings = set_aside(&merged);
        assert_eq!(warnings.len(), 1, "{:?}", merged.warnings);
        assert_eq!(warnings[0].name.as_deref(), Some("web"));
    }
}

#[test]
fn service_profile_routes_still_follow_the_grpc_routes() {
    let profile = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - name: profile-any
    condition: {pathRegex: '/.*'}
";
    let loaded = load(&format!(
        "{profile}---\n{}---\n{}",
        http_web(),
        grpc_emoji()
    ));
    let emoji = emoji(&loaded);
    assert_eq!(call(emoji, LIST_ALL, &[]), "emoji-service");
    assert_eq!(
        route_of(emoji, &request(Method::GET, "/index.html", &[])),
        "profile-any"
    );
}

/// The route of the first match `req` meets in `match_order`: what
/// `route_for` is documented to give.
fn by_match_order(service: &ServiceRetryPolicy, req: &Request<()>) -> String {
    service
        .match_order()
        .into_iter()
        .find(|at| service.routes[at.route].matches[at.index].matches_request(req))
        .map_or_else(
            || "-".to_owned(),
            |at| service.routes[at.route].name.to_string(),
        )
}

#[test]
fn route_for_follows_the_match_order_even_after_the_routes_are_changed_by_hand() {
    let rules = "  - name: api
    matches: [{path: {type: PathPrefix, value: /api}}]
  - name: all
    matches: [{path: {type: PathPrefix, value: /}}]
";
    let loaded = load(&route("HTTPRoute", "web", "", rules));
    let mut emoji = emoji(&loaded).clone();
    let requests = [
        request(Method::GET, "/api/x", &[]),
        request(Method::GET, "/api", &[]),
        request(Method::GET, "/other", &[]),
    ];
    let check = |emoji: &ServiceRetryPolicy, expected: [&str; 3]| {
        for (req, expected) in requests.iter().zip(expected) {
            assert_eq!(route_of(emoji, req), expected, "{}", req.uri());
            assert_eq!(by_match_order(emoji, req), expected, "{}", req.uri());
        }
    };
    check(&emoji, ["api", "api", "all"]);
    // A match replaced by hand with a more specific one is ranked anew.
    emoji.routes[1].matches[0] = RouteMatch::new().with_path(PathMatch::exact("/api/x").unwrap());
    check(&emoji, ["all", "api", "-"]);
    // A match added to a rule by hand is ranked with the others.
    emoji.routes[1]
        .matches
        .push(RouteMatch::new().with_path(PathMatch::prefix("/").unwrap()));
    check(&emoji, ["all", "api", "all"]);
    // A match taken away is no longer tried.
    emoji.routes[0].matches.clear();
    check(&emoji, ["all", "all", "all"]);
    // A route added by hand comes after every route read.
    let mut extra = emoji.routes[0].clone();
    extra.name = "extra".into();
    extra.matches = vec![RouteMatch::new()];
    emoji.routes.push(extra);
    emoji.routes[1].matches.truncate(0);
    check(&emoji, ["extra", "extra", "extra"]);
}

#[test]
fn a_grpc_match_takes_only_a_post_as_linkerds_proxy_does() {
    // A gRPC call is a POST; Linkerd's proxy checks the method before the
    // call's service and method, so a GET to a method's path is no call.
    let rules = "  - name: list-all
    matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]
  - name: emoji-service
    matches: [{method: {service: emojivoto.v1.EmojiService}, headers: [{name: x-a, value: '1'}]}]
  - name: by-expression
    matches: [{method: {type: RegularExpression, method: 'Vote.*'}}]
";
    let loaded = load(&route("GRPCRoute", "emoji-grpc", "", rules));
    let emoji = emoji(&loaded);
    assert_eq!(call(emoji, LIST_ALL, &[]), "list-all");
    assert_eq!(
        call(emoji, "/emojivoto.v1.EmojiService/Find", &[("x-a", "1")]),
        "emoji-service"
    );
    assert_eq!(
        call(emoji, "/emojivoto.v1.VotingService/VoteDoughnut", &[]),
        "by-expression"
    );
    for method in [Method::GET, Method::PUT, Method::HEAD, Method::OPTIONS] {
        let on = |path, headers| route_of(emoji, &request(method.clone(), path, headers));
        assert_eq!(on(LIST_ALL, &[]), "-", "{method}");
        assert_eq!(
            on("/emojivoto.v1.EmojiService/Find", &[("x-a", "1")]),
            "-",
            "{method}"
        );
        assert_eq!(
            on("/emojivoto.v1.VotingService/VoteDoughnut", &[]),
            "-",
            "{method}"
        );
    }
}

#[test]
fn a_grpc_rule_without_matches_takes_any_method_as_linkerds_implicit_match_does() {
    // Linkerd's proxy gives a rule without matches an implicit match that
    // checks nothing, the method included.
    let rules = "  - name: anything
  - name: list-all
    matches: [{method: {method: ListAll}}]
";
    let loaded = load(&route("GRPCRoute", "emoji-grpc", "", rules));
    let emoji = emoji(&loaded);
    assert_eq!(call(emoji, LIST_ALL, &[]), "list-all");
    assert_eq!(
        route_of(emoji, &request(Method::GET, LIST_ALL, &[])),
        "anything"
    );
}

/// A ServiceProfile for `emoji` with `spec` as written.
fn profile(spec: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}}
spec:
{spec}"
    )
}

#[test]
fn a_request_no_route_of_a_service_with_gateway_routes_matches_is_not_found() {
    // The Gateway API: with no rule matching, a 404; GEP-1294: a route on a
    // Service replaces its implicit routing. Linkerd's proxy answers 404
    // (gRPC NOT_FOUND), for HTTPRoutes and GRPCRoutes alike.
    let unmatched = |text: &str| emoji(&load(text)).unmatched();
    assert_eq!(unmatched(&http_web()), Unmatched::NotFound);
    assert_eq!(unmatched(&grpc_emoji()), Unmatched::NotFound);
    assert_eq!(
        unmatched(&format!("{}---\n{}", http_web(), grpc_emoji())),
        Unmatched::NotFound
    );
    // A ServiceProfile's budget alone does not take the routes' place;
    // in Linkerd a profile with routes does, and its default route takes
    // what its routes leave.
    let budget = "  retryBudget: {retryRatio: 0.2, minRetriesPerSecond: 10, ttl: 10s}\n";
    assert_eq!(
        unmatched(&format!("{}---\n{}", profile(budget), grpc_emoji())),
        Unmatched::NotFound
    );
    let routes = "  routes:\n  - name: list\n    condition: {pathRegex: '/list'}\n";
    assert_eq!(
        unmatched(&format!("{}---\n{}", profile(routes), grpc_emoji())),
        Unmatched::Service
    );
    assert_eq!(unmatched(&profile(routes)), Unmatched::Service);
    // Merged from two files, as read from one.
    let mut merged = RetryResources::default();
    merged.merge(load(&profile(routes)));
    merged.merge(load(&http_web()));
    assert_eq!(emoji(&merged).unmatched(), Unmatched::Service);
    let mut merged = RetryResources::default();
    merged.merge(load(&profile(budget)));
    merged.merge(load(&http_web()));
    assert_eq!(emoji(&merged).unmatched(), Unmatched::NotFound);
    // A route added by hand is tried as a profile's is.
    let loaded = load(&grpc_emoji());
    let mut emoji = emoji(&loaded).clone();
    let mut added = emoji.routes[0].clone();
    added.name = "by-hand".into();
    emoji.routes.push(added);
    assert_eq!(emoji.unmatched(), Unmatched::Service);
}
