//! `TLSRoute`s and `TCPRoute`s whose parent is Linkerd's `EgressNetwork`:
//! read beside the network's HTTP routes, each connection taken by port
//! and, for TLS, by the SNI of its ClientHello, as in Linkerd's egress
//! walkthrough (<https://linkerd.io/2.17/tasks/managing-egress-traffic/>);
//! a connection no route takes is left to the network's default route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::{ResourceError, ResourceErrorKind};
use mesh_retry::config::{
    self, BackendKind, L4Backend, L4Route, L4RouteKind, PortRoutes, RetryResources,
    ServiceRetryPolicy,
};

/// The walkthrough's network, its `httpbin-get` HTTPRoute and its
/// `TLSRoute`, as written there.
const WALKTHROUGH: &str = include_str!("fixtures/egress-walkthrough.yaml");

/// The walkthrough's `parentRefs` entry, with `more` written after
/// `namespace` (`, port: 443`).
fn parent(more: &str) -> String {
    format!(
        "{{name: all-egress-traffic, kind: EgressNetwork, group: policy.linkerd.io, \
         namespace: egress-test{more}}}"
    )
}

const TO_PARENT: &str =
    "[{kind: EgressNetwork, group: policy.linkerd.io, name: all-egress-traffic}]";

/// A `kind` route `name` in egress-test, with `metadata` and `spec`
/// fields written after its name and before its rules, and one rule with
/// `backends`.
fn route(kind: &str, name: &str, metadata: &str, spec: &str, backends: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: {kind}
metadata: {{name: {name}, namespace: egress-test{metadata}}}
spec:
{spec}  rules:
  - backendRefs: {backends}
"
    )
}

/// A `TLSRoute` `name` on the walkthrough's network, port `port` (or
/// every port for ""), with `hostnames`, to the original destination.
fn tls(name: &str, metadata: &str, port: &str, hostnames: &str) -> String {
    let spec = format!(
        "  parentRefs: [{}]\n  hostnames: {hostnames}\n",
        parent(port)
    );
    route("TLSRoute", name, metadata, &spec, TO_PARENT)
}

/// A `TCPRoute` `name` on the walkthrough's network, port `port`.
fn tcp(name: &str, metadata: &str, port: &str) -> String {
    let spec = format!("  parentRefs: [{}]\n", parent(port));
    route("TCPRoute", name, metadata, &spec, TO_PARENT)
}

fn load(texts: &[String]) -> RetryResources {
    config::load("egress.yaml", &texts.join("---\n")).unwrap()
}

fn load_err(texts: &[String]) -> ResourceError {
    config::load("egress.yaml", &texts.join("---\n")).unwrap_err()
}

fn network(resources: &RetryResources) -> &ServiceRetryPolicy {
    resources
        .egress_network("all-egress-traffic", Some("egress-test"))
        .expect("the network's routes are read")
}

fn name(route: Option<&L4Route>) -> Option<&str> {
    route.map(|r| r.name.as_str())
}

fn names(routes: &[L4Route]) -> Vec<&str> {
    routes.iter().map(|r| r.name.as_str()).collect()
}

fn strings(warnings: &[config::ConfigWarning]) -> Vec<String> {
    warnings.iter().map(ToString::to_string).collect()
}

const CREATED_EARLY: &str = ", creationTimestamp: '2024-01-01T00:00:00Z'";
const CREATED_LATE: &str = ", creationTimestamp: '2025-01-01T00:00:00Z'";

#[test]
fn the_walkthroughs_tls_route_takes_httpbin_on_443_and_nothing_else() {
    let loaded = config::load("egress.yaml", WALKTHROUGH).unwrap();
    // Read, so not warned about: neither as a kind nor for a field.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let net = network(&loaded);
    assert_eq!(names(net.tls_routes()), ["tls-egress"]);
    assert!(net.tcp_routes().is_empty());
    // The HTTP routes are as they were.
    let http: Vec<&str> = net.routes.iter().map(|r| &*r.name).collect();
    assert_eq!(http, ["httpbin-get"]);
    // The ports of its HTTP routes, which a planner plans HTTP on.
    assert_eq!(net.ports(), [80]);

    let route = net.tls_route(443, Some("httpbin.org")).unwrap();
    assert_eq!(route.kind, L4RouteKind::Tls);
    assert_eq!(route.port, Some(443));
    assert_eq!(route.hostnames, ["httpbin.org"]);
    assert_eq!(
        route.backends,
        [L4Backend {
            name: "all-egress-traffic".into(),
            namespace: Some("egress-test".into()),
            port: None,
            weight: 1,
            kind: BackendKind::OriginalDestination,
        }]
    );
    // The labels Linkerd's outbound_tls_route_open_total gives it.
    let labels = route.route();
    assert_eq!(
        (labels.group, labels.kind, labels.namespace, labels.name),
        (
            "gateway.networking.k8s.io",
            "TLSRoute",
            Some("egress-test"),
            "tls-egress"
        )
    );
    assert_eq!(
        route.place(),
        "egress.yaml: document 3 (TLSRoute egress-test/tls-egress): spec.parentRefs[0]"
    );
    // github.com takes the default route (tls-egress-deny), as does
    // httpbin.org on another port, and a ClientHello without an SNI.
    assert!(net.tls_route(443, Some("github.com")).is_none());
    assert!(net.tls_route(8443, Some("httpbin.org")).is_none());
    assert!(net.tls_route(443, None).is_none());
    // Linkerd serves port 80 its HTTP routes, 443 its TLSRoute.
    assert_eq!(net.routes_on(80), PortRoutes::Http);
    assert_eq!(net.routes_on(443), PortRoutes::Tls);
    assert_eq!(net.routes_on(5432), PortRoutes::None);
    // Selected for port 443, the TLSRoute stays; for 80, it goes.
    let (on_443, _) = net.for_port(443);
    assert_eq!(names(on_443.tls_routes()), ["tls-egress"]);
    let (on_80, _) = net.for_port(80);
    assert!(on_80.tls_routes().is_empty());
}

#[test]
fn the_walkthroughs_tls_route_without_hostnames_takes_every_sni() {
    // "To allow all tls traffic": the same route without hostnames.
    let text = WALKTHROUGH.replace("  hostnames:\n  - httpbin.org\n", "");
    let loaded = config::load("egress.yaml", &text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let net = network(&loaded);
    for sni in [Some("httpbin.org"), Some("github.com"), None] {
        assert_eq!(name(net.tls_route(443, sni)), Some("tls-egress"), "{sni:?}");
    }
    assert!(net.tls_route(444, Some("github.com")).is_none());
}

#[test]
fn a_tcp_route_takes_its_port_and_one_without_a_port_takes_every_port() {
    let loaded = load(&[
        tcp("postgres", CREATED_LATE, ", port: 5432"),
        tcp("anything", "", ""),
    ]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let net = network(&loaded);
    // Both take 5432: the older, postgres, first; anything, without a
    // timestamp, would be the newest once applied.
    assert_eq!(names(net.tcp_routes()), ["postgres", "anything"]);
    assert_eq!(name(net.tcp_route(5432)), Some("postgres"));
    assert_eq!(name(net.tcp_route(6379)), Some("anything"));
    assert_eq!(net.routes_on(6379), PortRoutes::Tcp);
    let route = net.tcp_route(5432).unwrap();
    assert_eq!(route.kind, L4RouteKind::Tcp);
    assert_eq!(route.route().kind, "TCPRoute");
    assert!(route.hostnames.is_empty());

    // Without the route for every port, 6379 is left to the default
    // route (tcp-egress-allow or -deny).
    let loaded = load(&[tcp("postgres", "", ", port: 5432")]);
    let net = network(&loaded);
    assert!(net.tcp_route(6379).is_none());
    assert_eq!(net.routes_on(6379), PortRoutes::None);
    // A TLSRoute on the port is served before a TCPRoute.
    let loaded = load(&[
        tcp("postgres", "", ", port: 5432"),
        tls("pg-tls", "", ", port: 5432", "[]"),
    ]);
    assert_eq!(network(&loaded).routes_on(5432), PortRoutes::Tls);
}

#[test]
fn an_exact_sni_beats_a_wildcard_and_a_wildcard_beats_no_hostnames() {
    // Written oldest first the other way round, so that age would pick
    // the least specific.
    let loaded = load(&[
        tls("any", CREATED_EARLY, ", port: 443", "[]"),
        tls("wide", CREATED_EARLY, ", port: 443", "['*.example.com']"),
        tls(
            "narrow",
            CREATED_LATE,
            ", port: 443",
            "['*.api.example.com']",
        ),
        tls("exact", CREATED_LATE, ", port: 443", "[api.example.com]"),
    ]);
    let net = network(&loaded);
    let take = |sni| name(net.tls_route(443, sni));
    assert_eq!(take(Some("api.example.com")), Some("exact"));
    // Without regard to case or a final dot, as DNS names compare.
    assert_eq!(take(Some("API.Example.com.")), Some("exact"));
    assert_eq!(take(Some("v1.api.example.com")), Some("narrow"));
    assert_eq!(take(Some("www.example.com")), Some("wide"));
    // A wildcard needs a label in front: example.com is no match.
    assert_eq!(take(Some("example.com")), Some("any"));
    assert_eq!(take(Some("github.com")), Some("any"));
    assert_eq!(take(None), Some("any"));
}

#[test]
fn of_routes_alike_the_oldest_takes_the_connection_then_the_first_by_name() {
    let wildcard = "['*.example.com']";
    let loaded = load(&[
        tls("b-new", CREATED_LATE, ", port: 443", wildcard),
        tls("c-old", CREATED_EARLY, "", wildcard),
        tls("a-unstamped", "", ", port: 443", wildcard),
    ]);
    let net = network(&loaded);
    assert_eq!(names(net.tls_routes()), ["c-old", "b-new", "a-unstamped"]);
    assert_eq!(
        name(net.tls_route(443, Some("x.example.com"))),
        Some("c-old")
    );
    // Without timestamps, by namespace/name.
    let loaded = load(&[
        tls("b", "", ", port: 443", wildcard),
        tls("a", "", ", port: 443", wildcard),
    ]);
    let net = network(&loaded);
    assert_eq!(name(net.tls_route(443, Some("x.example.com"))), Some("a"));
    // TCPRoutes likewise.
    let loaded = load(&[tcp("b", "", ""), tcp("a", "", "")]);
    assert_eq!(name(network(&loaded).tcp_route(1)), Some("a"));
}

#[test]
fn backends_are_the_original_destination_or_a_service_with_its_port() {
    let spec = format!("  parentRefs: [{}]\n", parent(", port: 5432"));
    let backends = "[{name: pg-proxy, port: 5432, weight: 3}, \
                    {kind: EgressNetwork, group: policy.linkerd.io, name: all-egress-traffic, \
                    namespace: egress-test, weight: 1}]";
    let loaded = load(&[route("TCPRoute", "db", "", &spec, backends)]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let db = network(&loaded).tcp_route(5432).unwrap();
    let got: Vec<(&str, Option<u16>, u32, BackendKind)> = db
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.port, b.weight, b.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("pg-proxy", Some(5432), 3, BackendKind::Service),
            (
                "all-egress-traffic",
                None,
                1,
                BackendKind::OriginalDestination
            ),
        ]
    );
    assert_eq!(db.backends[0].namespace.as_deref(), Some("egress-test"));

    // A rule without backendRefs goes to the original destination.
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: db, namespace: egress-test}}
spec:
{spec}  rules:
  - {{}}
"
    );
    let loaded = load(&[text]);
    assert!(
        network(&loaded)
            .tcp_route(5432)
            .unwrap()
            .backends
            .is_empty()
    );

    // Every weight 0: its connections are refused, with a warning.
    let loaded = load(&[route(
        "TCPRoute",
        "db",
        "",
        &spec,
        "[{name: pg-proxy, port: 5432, weight: 0}]",
    )]);
    assert_eq!(
        strings(&loaded.warnings),
        [
            "egress.yaml: document 1 (TCPRoute egress-test/db): spec.rules[0].backendRefs: every \
          backend has weight 0: the route's connections are refused, as the Gateway API asks"
        ]
    );
}

/// Asserts `err` names the route of document `document`, `field`, `line`
/// and says `says`.
#[track_caller]
fn assert_refused(
    err: &ResourceError,
    kind: ResourceErrorKind,
    document: usize,
    field: &str,
    line: usize,
    says: &str,
) {
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.origin(), "egress.yaml", "{err}");
    assert_eq!(err.document(), Some(document), "{err}");
    assert_eq!(err.field_path(), field, "{err}");
    assert_eq!(err.line(), Some(line), "{err}");
    assert!(err.to_string().contains(says), "{err}");
}

#[test]
fn backends_and_hostnames_the_reader_cannot_serve_are_refused_where_written() {
    let spec = format!("  parentRefs: [{}]\n", parent(", port: 5432"));
    let first = tcp("first", "", "");
    // A Service without its port: the Gateway API requires it.
    let err = load_err(&[
        first.clone(),
        route("TCPRoute", "db", "", &spec, "[{name: pg-proxy}]"),
    ]);
    assert_refused(
        &err,
        ResourceErrorKind::MissingField,
        2,
        "spec.rules[0].backendRefs[0]",
        15,
        "backend Service pg-proxy names no port",
    );
    assert!(
        err.to_string().contains("(TCPRoute egress-test/db)"),
        "{err}"
    );
    // Another network than the parent.
    let err = load_err(&[route(
        "TCPRoute",
        "db",
        "",
        &spec,
        "[{kind: EgressNetwork, group: policy.linkerd.io, name: other}]",
    )]);
    assert_refused(
        &err,
        ResourceErrorKind::InvalidValue,
        1,
        "spec.rules[0].backendRefs[0].name",
        7,
        "backend EgressNetwork egress-test/other is not the route's parent EgressNetwork \
         egress-test/all-egress-traffic",
    );
    // A kind of backend no one serves.
    let err = load_err(&[route(
        "TCPRoute",
        "db",
        "",
        &spec,
        "[{kind: ServiceImport, group: multicluster.x-k8s.io, name: pg, port: 5432}]",
    )]);
    assert_refused(
        &err,
        ResourceErrorKind::InvalidValue,
        1,
        "spec.rules[0].backendRefs[0].kind",
        7,
        "backends of kind ServiceImport",
    );
    // A hostname with a port, which no SNI equals.
    let err = load_err(&[first, tls("web", "", ", port: 443", "['httpbin.org:443']")]);
    assert_refused(
        &err,
        ResourceErrorKind::InvalidValue,
        2,
        "spec.hostnames[0]",
        14,
        "invalid hostname \"httpbin.org:443\"",
    );
}

#[test]
fn a_second_rule_and_a_second_route_of_one_name_are_refused() {
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {{name: two, namespace: egress-test}}
spec:
  parentRefs: [{}]
  rules:
  - backendRefs: {TO_PARENT}
  - backendRefs: {TO_PARENT}
",
        parent("")
    );
    let err = load_err(&[text]);
    assert_refused(
        &err,
        ResourceErrorKind::InvalidValue,
        1,
        "spec.rules[1]",
        8,
        "a TLSRoute has one rule in Linkerd",
    );
    let err = load_err(&[tcp("db", "", ""), tcp("db", "", ", port: 1")]);
    assert_refused(
        &err,
        ResourceErrorKind::DuplicateName,
        2,
        "metadata.name",
        11,
        "a second TCPRoute egress-test/db in this text, after document 1",
    );
    // A TLSRoute and a TCPRoute of one name are two objects.
    load(&[tcp("db", "", ""), tls("db", "", "", "[]")]);
}

#[test]
fn a_route_on_another_parent_is_named_once_and_not_applied() {
    // A Service parent is read (service_l4_routes), not named; a kind
    // Service without a group is the Gateway API's group, no Service.
    let services = "  parentRefs:\n  - {kind: Service, group: core, name: pg, port: 5432}\n  \
                    - {kind: Service, name: pg-replica, namespace: db}\n";
    let backends = "[{name: pg, port: 5432}]";
    let loaded = load(&[route("TCPRoute", "pg", "", services, backends)]);
    assert_eq!(loaded.services.len(), 1);
    assert!(loaded.egress_networks.is_empty());
    assert_eq!(
        strings(&loaded.warnings),
        [
            "egress.yaml: document 1 (TCPRoute egress-test/pg): spec.parentRefs[1]: a TCPRoute \
             attached to Service db/pg-replica of group gateway.networking.k8s.io \
             (parentRefs[1]) is not applied: the sidecar reads TLSRoutes and TCPRoutes for \
             Services and EgressNetworks, the parents Linkerd serves them on, and \
             authorization reads neither kind"
        ]
    );
    // Beside an EgressNetwork parent, that one is read, and the Gateway
    // named.
    let spec = format!(
        "  parentRefs:\n  - {{name: edge, namespace: infra, sectionName: tls}}\n  - {}\n",
        parent("")
    );
    let loaded = load(&[route("TLSRoute", "web", "", &spec, TO_PARENT)]);
    assert_eq!(names(network(&loaded).tls_routes()), ["web"]);
    assert_eq!(
        strings(&loaded.warnings),
        [
            "egress.yaml: document 1 (TLSRoute egress-test/web): spec.parentRefs[0]: a TLSRoute \
          attached to Gateway infra/edge (parentRefs[0]) is not applied: the sidecar reads \
          TLSRoutes and TCPRoutes for Services and EgressNetworks, the parents Linkerd serves \
          them on, and authorization reads neither kind"
        ]
    );
    // No parent at all.
    let loaded = load(&[route("TLSRoute", "web", "", "", TO_PARENT)]);
    assert_eq!(
        strings(&loaded.warnings),
        [
            "egress.yaml: document 1 (TLSRoute egress-test/web): spec.parentRefs: a TLSRoute \
          without parentRefs is not applied: it is read for the Services and EgressNetworks it \
          names, and names none"
        ]
    );
}

#[test]
fn unknown_fields_are_warned_about_as_an_http_routes_are() {
    let spec = format!("  parentRefs: [{}]\n  matches: []\n", parent(""));
    let loaded = load(&[route("TCPRoute", "db", "", &spec, TO_PARENT)]);
    assert_eq!(
        strings(&loaded.warnings),
        [
            "egress.yaml: document 1 (TCPRoute egress-test/db): spec.matches: unknown field is \
          ignored"
        ]
    );
}

#[test]
fn two_texts_merge_in_order_and_a_second_route_of_one_name_is_named() {
    let mut merged = config::load(
        "a.yaml",
        &tls("b", CREATED_LATE, ", port: 443", "['*.example.com']"),
    )
    .unwrap();
    merged.merge(
        config::load(
            "b.yaml",
            &[
                tls("a", CREATED_EARLY, ", port: 443", "['*.example.com']"),
                tls("b", CREATED_LATE, ", port: 443", "[b.example.com]"),
            ]
            .join("---\n"),
        )
        .unwrap(),
    );
    let net = network(&merged);
    // The older first; of the two `b`, the one read first.
    assert_eq!(names(net.tls_routes()), ["a", "b", "b"]);
    assert_eq!(net.tls_routes()[1].hostnames, ["*.example.com"]);
    assert_eq!(name(net.tls_route(443, Some("x.example.com"))), Some("a"));
    assert_eq!(
        net.tls_route(443, Some("b.example.com")).unwrap().hostnames,
        ["b.example.com"]
    );
    assert_eq!(
        strings(&merged.warnings),
        [
            "b.yaml: document 2 (TLSRoute egress-test/b): metadata.name: a second TLSRoute \
          egress-test/b, after a.yaml document 1: the cluster keeps one object of a kind and \
          name, the one applied last, but the rules of both are served here, so keep one of \
          the two or rename the other"
        ]
    );
}

#[test]
fn a_consumer_route_serves_the_clients_of_its_own_namespace() {
    // In `web`, attached to egress-test's network: a consumer route.
    let spec = format!("  parentRefs: [{}]\n", parent(""));
    let backend = "[{kind: EgressNetwork, group: policy.linkerd.io, name: all-egress-traffic, \
                   namespace: egress-test}]";
    let consumer = route("TLSRoute", "web-only", "", &spec, backend)
        .replace("namespace: egress-test}\nspec:", "namespace: web}\nspec:");
    let loaded = load(&[consumer, tcp("everyone", "", "")]);
    let net = network(&loaded);
    // Read for a client anywhere, both are kept.
    assert_eq!(names(net.tls_routes()), ["web-only"]);
    let web = loaded.for_namespace("web");
    let net = network(&web);
    assert_eq!(
        name(net.tls_route(443, Some("x.example"))),
        Some("web-only")
    );
    assert_eq!(name(net.tcp_route(5432)), Some("everyone"));
    let other = loaded.for_namespace("egress-test");
    let net = network(&other);
    assert!(net.tls_route(443, Some("x.example")).is_none());
    assert_eq!(name(net.tcp_route(5432)), Some("everyone"));
    // Then by port, after the namespace.
    let (on_port, _) = network(&web).for_port(443);
    assert_eq!(names(on_port.tls_routes()), ["web-only"]);
}
