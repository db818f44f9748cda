//! The order a service's routes are tried in: the Gateway API's
//! precedence among every match of every `HTTPRoute` rule, not the order
//! they are written; ServiceProfile routes after them, as written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request};
use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config::{self, MatchRef, RetryResources, ServiceRetryPolicy};

fn load(text: &str) -> RetryResources {
    config::load("test.yaml", text).unwrap()
}

fn books(loaded: &RetryResources) -> &ServiceRetryPolicy {
    loaded.service("books", Some("shop")).unwrap()
}

fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(()).unwrap()
}

/// The name of the route a GET for `path` with `headers` takes.
fn route_of<'s>(service: &'s ServiceRetryPolicy, path: &str, headers: &[(&str, &str)]) -> &'s str {
    service
        .route_for(&request(Method::GET, path, headers))
        .map_or("-", |r| &*r.name)
}

/// An `HTTPRoute` named `name` for `books`, with `metadata` fields and
/// `rules` as written.
fn http_route(name: &str, metadata: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: shop{metadata}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: books}}]
  rules:
{rules}"
    )
}

const CATCH_ALL_FIRST: &str = "  - name: everything
    matches: [{path: {type: PathPrefix, value: /}}]
  - name: vote
    matches: [{path: {type: Exact, value: /api/vote}}]
    timeouts: {request: 1s}
  - name: api
    matches: [{path: {type: PathPrefix, value: /api}}]
  - name: api-v1
    matches: [{path: {type: PathPrefix, value: /api/v1/}}]
";

#[test]
fn an_exact_match_written_after_a_catch_all_still_gets_its_requests() {
    let loaded = load(&http_route("books", "", CATCH_ALL_FIRST));
    let books = books(&loaded);
    let vote = books
        .route_for(&request(Method::GET, "/api/vote", &[]))
        .unwrap();
    assert_eq!(&*vote.name, "vote");
    assert_eq!(
        vote.timeouts.request,
        Some(std::time::Duration::from_secs(1))
    );
    assert_eq!(route_of(books, "/api/vote/", &[]), "api");
    assert_eq!(route_of(books, "/other", &[]), "everything");
}

#[test]
fn a_longer_prefix_wins_over_a_shorter_one() {
    let loaded = load(&http_route("books", "", CATCH_ALL_FIRST));
    let books = books(&loaded);
    assert_eq!(route_of(books, "/api/v1/books", &[]), "api-v1");
    assert_eq!(route_of(books, "/api/v1", &[]), "api-v1");
    assert_eq!(route_of(books, "/api/v2", &[]), "api");
    assert_eq!(route_of(books, "/api/v1x", &[]), "api");
}

#[test]
fn with_equal_paths_a_method_then_more_headers_then_more_queries_win() {
    let rules = "  - name: plain
    matches: [{path: {type: PathPrefix, value: /books}}]
  - name: one-header
    matches: [{path: {type: PathPrefix, value: /books}, headers: [{name: x-a, value: '1'}]}]
  - name: query
    matches: [{path: {type: PathPrefix, value: /books}, queryParams: [{name: q, value: '1'}]}]
  - name: two-headers
    matches:
    - path: {type: PathPrefix, value: /books}
      headers: [{name: x-a, value: '1'}, {name: x-b, value: '1'}]
  - name: get
    matches: [{path: {type: PathPrefix, value: /books}, method: GET}]
";
    let loaded = load(&http_route("books", "", rules));
    let books = books(&loaded);
    let both = [("x-a", "1"), ("x-b", "1")];
    assert_eq!(route_of(books, "/books", &both), "get");
    let post = |path: &str, headers: &[(&str, &str)]| {
        books
            .route_for(&request(Method::POST, path, headers))
            .map_or("-".to_owned(), |r| r.name.to_string())
    };
    assert_eq!(post("/books", &both), "two-headers");
    assert_eq!(post("/books?q=1", &both), "two-headers");
    assert_eq!(post("/books?q=1", &[("x-a", "1")]), "one-header");
    assert_eq!(post("/books?q=1", &[]), "query");
    assert_eq!(post("/books", &[]), "plain");
}

#[test]
fn each_match_of_a_rule_competes_on_its_own() {
    // The first rule's catch-all does not lift it above the second rule's
    // prefix, though its other match would.
    let rules = "  - name: exact-or-anything
    matches:
    - path: {type: Exact, value: /x}
    - path: {type: PathPrefix, value: /}
  - name: api
    matches: [{path: {type: PathPrefix, value: /api}}]
";
    let loaded = load(&http_route("books", "", rules));
    let books = books(&loaded);
    assert_eq!(route_of(books, "/x", &[]), "exact-or-anything");
    assert_eq!(route_of(books, "/api/list", &[]), "api");
    assert_eq!(route_of(books, "/y", &[]), "exact-or-anything");
    assert_eq!(
        books.match_order(),
        [
            MatchRef { route: 0, index: 0 },
            MatchRef { route: 1, index: 0 },
            MatchRef { route: 0, index: 1 },
        ]
    );
}

/// Two routes with the same match, `first` written first.
fn two_routes(first: (&str, &str), second: (&str, &str)) -> String {
    let rule = |name: &str| {
        format!("  - name: {name}\n    matches: [{{path: {{type: PathPrefix, value: /}}}}]\n")
    };
    format!(
        "{}---\n{}",
        http_route(first.0, first.1, &rule(first.0)),
        http_route(second.0, second.1, &rule(second.0))
    )
}

#[test]
fn equal_matches_go_to_the_oldest_route_then_the_first_by_name() {
    let older = ", creationTimestamp: '2024-01-01T00:00:00Z'";
    let newer = ", creationTimestamp: '2024-06-01T00:00:00+02:00'";
    let winner = |text: &str| {
        let loaded = load(text);
        route_of(books(&loaded), "/", &[]).to_owned()
    };
    assert_eq!(winner(&two_routes(("b", newer), ("a", older))), "a");
    assert_eq!(winner(&two_routes(("a", newer), ("b", older))), "b");
    // Without timestamps, by name, wherever written.
    assert_eq!(winner(&two_routes(("b", ""), ("a", ""))), "a");
    // A route with a timestamp is older than one that has none yet.
    assert_eq!(winner(&two_routes(("a", ""), ("b", newer))), "b");
    // Within one route, the first rule.
    let rules = "  - name: one\n    matches: [{path: {type: PathPrefix, value: /}}]
  - name: two\n    matches: [{path: {type: PathPrefix, value: /}}]\n";
    assert_eq!(winner(&http_route("books", "", rules)), "one");
}

#[test]
fn service_profile_routes_come_after_every_httproute_match_in_written_order() {
    let profile = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: books.shop.svc.cluster.local, namespace: shop}
spec:
  routes:
  - name: profile-any
    condition: {pathRegex: '/.*'}
  - name: profile-exact
    condition: {pathRegex: /api/vote}
";
    let route = http_route(
        "books",
        "",
        "  - name: api\n    matches: [{path: {type: PathPrefix, value: /api}}]\n",
    );
    let loaded = load(&format!("{profile}---\n{route}"));
    let books = books(&loaded);
    assert_eq!(route_of(books, "/api/vote", &[]), "api");
    assert_eq!(route_of(books, "/other", &[]), "profile-any");
    let names: Vec<&str> = books
        .match_order()
        .iter()
        .map(|m| &*books.routes[m.route].name)
        .collect();
    assert_eq!(names, ["api", "profile-any", "profile-exact"]);
}

#[test]
fn routes_merged_from_two_files_are_ordered_together() {
    let mut first = load(&http_route(
        "catch-all",
        "",
        "  - name: everything\n    matches: [{path: {type: PathPrefix, value: /}}]\n",
    ));
    let second = load(&http_route(
        "vote",
        "",
        "  - name: vote
    matches: [{path: {type: Exact, value: /api/vote}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: votes.example.com}
",
    ));
    first.merge(second);
    let books = books(&first);
    assert_eq!(books.routes.len(), 2);
    assert_eq!(route_of(books, "/api/vote", &[]), "vote");
    assert_eq!(route_of(books, "/", &[]), "everything");
    assert!(books.redirect(0).is_none());
    assert!(
        books.redirect(1).is_some(),
        "the redirect follows its route"
    );
}

#[test]
fn a_creation_timestamp_that_is_no_time_is_refused_by_field() {
    let text = http_route(
        "books",
        ", creationTimestamp: yesterday",
        "  - matches: [{path: {type: PathPrefix, value: /}}]\n",
    );
    let err = config::load("test.yaml", &text).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue);
    let message = err.to_string();
    assert!(
        message.contains("metadata.creationTimestamp") && message.contains("\"yesterday\""),
        "{message}"
    );
    // `null`, as `kubectl create --dry-run -o yaml` writes it, is no time.
    let text = text.replace("yesterday", "null");
    assert_eq!(route_of(books(&load(&text)), "/", &[]), "books");
}
