//! An `HTTPRoute`'s (or `GRPCRoute`'s) `hostnames`: a route applies only
//! to requests for one of its hosts, and a route whose hostname matches
//! the request's host outranks one that names no host, whatever their
//! matches, as Linkerd's proxy ranks outbound routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request, header::HOST};
use mesh_retry::config::{self, HostRank, RetryResources, ServiceRetryPolicy, Unmatched};

fn load(text: &str) -> RetryResources {
    config::load("test.yaml", text).unwrap()
}

fn books(loaded: &RetryResources) -> &ServiceRetryPolicy {
    loaded.service("books", Some("shop")).unwrap()
}

/// An `HTTPRoute` named `name` for `books`, with `hostnames` (YAML flow
/// list, or empty for none) and `rules` as written.
fn http_route(name: &str, hostnames: &str, rules: &str) -> String {
    let hostnames = if hostnames.is_empty() {
        String::new()
    } else {
        format!("  hostnames: {hostnames}\n")
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: shop}}
spec:
  parentRefs: [{{group: core, kind: Service, name: books}}]
{hostnames}  rules:
{rules}"
    )
}

/// The route a request to `uri` (absolute, or a path) with `host` as its
/// `Host` header, if any, takes; `-` for none.
fn route_of<'s>(service: &'s ServiceRetryPolicy, uri: &str, host: Option<&str>) -> &'s str {
    let mut req = Request::builder().method(Method::GET).uri(uri);
    if let Some(host) = host {
        req = req.header(HOST, host);
    }
    service
        .route_for(&req.body(()).unwrap())
        .map_or("-", |r| &*r.name)
}

const EVERYTHING: &str =
    "  - name: everything\n    matches: [{path: {type: PathPrefix, value: /}}]\n";

#[test]
fn a_route_takes_only_requests_for_its_hostnames() {
    let loaded = load(&http_route(
        "internal",
        "[books.shop.svc.cluster.local]",
        EVERYTHING,
    ));
    let books = books(&loaded);
    // The host of an absolute URI (HTTP/2's `:authority`), with or
    // without a port, in any case, with or without a final dot.
    for uri in [
        "http://books.shop.svc.cluster.local/list",
        "http://books.shop.svc.cluster.local:8080/list",
        "http://Books.Shop.SVC.cluster.local/list",
        "http://books.shop.svc.cluster.local.:8080/list",
    ] {
        assert_eq!(route_of(books, uri, None), "everything", "{uri}");
    }
    // The `Host` header of a request in origin form (HTTP/1).
    assert_eq!(
        route_of(books, "/list", Some("books.shop.svc.cluster.local:8080")),
        "everything"
    );
    // Another host, or none at all, is not on the route; and a request on
    // no route of a service served only HTTPRoutes gets a 404.
    assert_eq!(route_of(books, "http://books.example.com/list", None), "-");
    assert_eq!(route_of(books, "/list", Some("books.example.com")), "-");
    assert_eq!(route_of(books, "/list", None), "-");
    assert_eq!(
        route_of(books, "http://evil.books.shop.svc.cluster.local/", None),
        "-"
    );
    assert_eq!(books.unmatched(), Unmatched::NotFound);
}

#[test]
fn a_wildcard_hostname_takes_any_name_under_it_but_not_itself() {
    let loaded = load(&http_route("wild", "[\"*.shop.example\"]", EVERYTHING));
    let books = books(&loaded);
    assert_eq!(
        route_of(books, "http://books.shop.example/", None),
        "everything"
    );
    assert_eq!(
        route_of(books, "http://a.b.shop.example/", None),
        "everything"
    );
    assert_eq!(
        route_of(books, "/", Some("BOOKS.Shop.Example:80")),
        "everything"
    );
    assert_eq!(route_of(books, "http://shop.example/", None), "-");
    assert_eq!(route_of(books, "http://booksshop.example/", None), "-");
}

#[test]
fn a_route_whose_hostname_matches_outranks_routes_that_name_none() {
    // The route without hostnames has the more specific match, and is
    // older by name; the one for the request's host still wins, as the
    // Gateway API ranks routes by their matching hostnames first.
    let text = [
        http_route(
            "a-any",
            "",
            "  - name: any-exact\n    matches: [{path: {type: Exact, value: /list}}]\n",
        ),
        http_route("b-wild", "[\"*.shop.example\"]", "  - name: wild\n"),
        http_route(
            "c-longer-wild",
            "[\"*.books.shop.example\"]",
            "  - name: longer-wild\n",
        ),
        http_route(
            "d-exact",
            "[other.example, books.shop.example]",
            "  - name: exact\n    matches: [{path: {type: PathPrefix, value: /}}]\n",
        ),
    ]
    .join("---\n");
    let loaded = load(&text);
    let books = books(&loaded);
    // An exact hostname first, then the longer wildcard, then the shorter.
    assert_eq!(
        route_of(books, "http://books.shop.example/list", None),
        "exact"
    );
    assert_eq!(
        route_of(books, "http://v1.books.shop.example/list", None),
        "longer-wild"
    );
    assert_eq!(
        route_of(books, "http://authors.shop.example/list", None),
        "wild"
    );
    // A host none of them names: the route without hostnames.
    assert_eq!(route_of(books, "http://books:8080/list", None), "any-exact");
    assert_eq!(route_of(books, "http://books:8080/other", None), "-");
}

#[test]
fn a_grpc_routes_hostnames_are_read_too() {
    let text = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: shop}
spec:
  parentRefs: [{group: core, kind: Service, name: books}]
  hostnames: [books.shop.svc.cluster.local]
  rules:
  - name: list
    matches: [{method: {service: shop.Books}}]
";
    let loaded = load(text);
    let books = books(&loaded);
    let call = |host: &str| {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{host}/shop.Books/List"))
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        books.route_for(&req).map(|r| r.name.to_string())
    };
    assert_eq!(
        call("books.shop.svc.cluster.local:8080").as_deref(),
        Some("list")
    );
    assert_eq!(call("books.other.svc.cluster.local:8080"), None);
}

#[test]
fn a_router_reads_each_routes_hostnames_and_they_survive_a_merge() {
    let mut loaded = load(&http_route("any", "", EVERYTHING));
    loaded.merge(load(&http_route(
        "named",
        "[books.shop.example]",
        "  - name: named\n",
    )));
    let books = books(&loaded);
    let index = |name: &str| books.routes.iter().position(|r| &*r.name == name).unwrap();
    let (any, named) = (index("everything"), index("named"));
    assert!(books.hosts(any).is_any());
    assert!(!books.hosts(named).is_any());
    let req = Request::get("http://books.shop.example/").body(()).unwrap();
    assert_eq!(books.hosts(named).rank(&req), Some(HostRank::Exact(18)));
    assert_eq!(books.hosts(any).rank(&req), Some(HostRank::Any));
    let other = Request::get("http://books/").body(()).unwrap();
    assert_eq!(books.hosts(named).rank(&other), None);
    assert_eq!(route_of(books, "http://books.shop.example/", None), "named");
    assert_eq!(route_of(books, "http://books/", None), "everything");
    // A route added by hand names no host, and so comes after them all.
    let mut books = books.clone();
    let mut added = books.routes[any].clone();
    added.name = "added".into();
    books.routes.push(added);
    assert!(books.hosts(books.routes.len() - 1).is_any());
    assert_eq!(
        route_of(&books, "http://books.shop.example/", None),
        "named"
    );
    assert_eq!(route_of(&books, "http://books/", None), "everything");
}
