//! `TLSRoute`s and `TCPRoute`s whose parent is a Service: read into the
//! service's policy as an `EgressNetwork`'s are, by port and SNI, as
//! Linkerd 2.17 serves them on a Service; a `Gateway` parent is still
//! named in a warning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::{ResourceError, ResourceErrorKind};
use mesh_retry::config::{
    self, BackendKind, L4Backend, L4Route, L4RouteKind, ParentKind, PortRoutes, RetryResources,
    ServiceRetryPolicy,
};

/// A `kind` route `name` in `db`, attached by `parents`, with `spec`
/// fields written before its one rule, whose `backendRefs` are `backends`
/// (none when empty).
fn route(
    kind: &str,
    name: &str,
    metadata: &str,
    parents: &str,
    spec: &str,
    backends: &str,
) -> String {
    let rule = if backends.is_empty() {
        "  - {}\n".to_owned()
    } else {
        format!("  - backendRefs: {backends}\n")
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: {kind}
metadata: {{name: {name}, namespace: db{metadata}}}
spec:
  parentRefs: {parents}
{spec}  rules:
{rule}"
    )
}

/// Service `pg` of namespace `db`, on `port` (none for "").
fn pg(port: &str) -> String {
    match port {
        "" => "[{kind: Service, group: core, name: pg}]".to_owned(),
        port => format!("[{{kind: Service, group: core, name: pg, port: {port}}}]"),
    }
}

const SPLIT: &str =
    "[{name: pg-old, port: 5432, weight: 90}, {name: pg-new, port: 5432, weight: 10}]";

fn load(texts: &[String]) -> RetryResources {
    config::load("routes.yaml", &texts.join("---\n")).unwrap()
}

fn load_err(texts: &[String]) -> ResourceError {
    config::load("routes.yaml", &texts.join("---\n")).unwrap_err()
}

fn service(resources: &RetryResources) -> &ServiceRetryPolicy {
    resources
        .service("pg", Some("db"))
        .expect("the service's routes are read")
}

fn name(route: Option<&L4Route>) -> Option<&str> {
    route.map(|r| r.name.as_str())
}

fn strings(warnings: &[config::ConfigWarning]) -> Vec<String> {
    warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn a_tcp_route_on_a_service_port_is_read_with_its_split_and_its_port() {
    let loaded = load(&[route("TCPRoute", "move", "", &pg("5432"), "", SPLIT)]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(loaded.egress_networks.is_empty());
    let pg = service(&loaded);
    assert_eq!(pg.parent(), ParentKind::Service);
    assert!(pg.routes.is_empty());
    assert!(pg.has_l4_routes());
    let route = pg.tcp_route(5432).unwrap();
    assert_eq!(route.kind, L4RouteKind::Tcp);
    assert_eq!(route.port, Some(5432));
    assert_eq!(
        route.backends,
        [
            L4Backend {
                name: "pg-old".into(),
                namespace: Some("db".into()),
                port: Some(5432),
                weight: 90,
                kind: BackendKind::Service,
            },
            L4Backend {
                name: "pg-new".into(),
                namespace: Some("db".into()),
                port: Some(5432),
                weight: 10,
                kind: BackendKind::Service,
            },
        ]
    );
    // The port divides a Service's connection routes, where it does not
    // divide its HTTP routes.
    assert!(pg.tcp_route(6379).is_none());
    assert_eq!(pg.l4_routes_on(5432), PortRoutes::Tcp);
    assert_eq!(pg.l4_routes_on(6379), PortRoutes::None);
    let labels = route.route();
    assert_eq!(
        (labels.group, labels.kind, labels.namespace, labels.name),
        ("gateway.networking.k8s.io", "TCPRoute", Some("db"), "move")
    );
    assert_eq!(
        route.place(),
        "routes.yaml: document 1 (TCPRoute db/move): spec.parentRefs[0]"
    );
}

#[test]
fn tls_routes_take_a_service_port_by_sni_before_its_tcp_routes() {
    let loaded = load(&[
        route(
            "TLSRoute",
            "primary",
            "",
            &pg(""),
            "  hostnames: [primary.pg.test]\n",
            "[{name: pg-primary, port: 5432}]",
        ),
        route(
            "TLSRoute",
            "wild",
            "",
            &pg("5432"),
            "  hostnames: ['*.pg.test']\n",
            "",
        ),
        route("TCPRoute", "all", "", &pg("5432"), "", SPLIT),
    ]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let pg = service(&loaded);
    assert_eq!(pg.l4_routes_on(5432), PortRoutes::Tls);
    // `primary` has no port: every port.
    assert_eq!(pg.l4_routes_on(80), PortRoutes::Tls);
    assert_eq!(
        name(pg.tls_route(5432, Some("primary.pg.test"))),
        Some("primary")
    );
    assert_eq!(
        name(pg.tls_route(5432, Some("replica.pg.test"))),
        Some("wild")
    );
    assert_eq!(name(pg.tls_route(80, Some("replica.pg.test"))), None);
    assert_eq!(name(pg.tls_route(5432, Some("other.test"))), None);
    assert_eq!(name(pg.tls_route(5432, None)), None);
    // A rule without backendRefs keeps none: the Service itself.
    assert!(
        pg.tls_route(5432, Some("a.pg.test"))
            .unwrap()
            .backends
            .is_empty()
    );
    assert_eq!(name(pg.tcp_route(5432)), Some("all"));
}

#[test]
fn http_routes_put_a_service_port_first_for_http_but_not_for_a_listener_without_it() {
    let http = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: db}
spec:
  parentRefs: [{kind: Service, group: core, name: pg}]
  rules: [{}]
"
    .to_owned();
    let loaded = load(&[http, route("TCPRoute", "move", "", &pg("5432"), "", SPLIT)]);
    let pg = service(&loaded);
    assert_eq!(pg.routes.len(), 1);
    assert_eq!(pg.routes_on(5432), PortRoutes::Http);
    assert_eq!(pg.l4_routes_on(5432), PortRoutes::Tcp);
}

#[test]
fn the_oldest_tcp_route_of_a_port_takes_it_then_the_first_by_name() {
    let early = ", creationTimestamp: '2024-01-01T00:00:00Z'";
    let late = ", creationTimestamp: '2025-01-01T00:00:00Z'";
    let loaded = load(&[
        route("TCPRoute", "a-late", late, &pg("5432"), "", SPLIT),
        route("TCPRoute", "z-early", early, &pg(""), "", SPLIT),
    ]);
    assert_eq!(name(service(&loaded).tcp_route(5432)), Some("z-early"));
    let loaded = load(&[
        route("TCPRoute", "b", "", &pg("5432"), "", SPLIT),
        route("TCPRoute", "a", "", &pg("5432"), "", SPLIT),
    ]);
    assert_eq!(name(service(&loaded).tcp_route(5432)), Some("a"));
}

#[test]
fn a_consumer_route_serves_the_clients_of_its_own_namespace_alone() {
    let parents = "[{kind: Service, group: core, name: pg, namespace: db, port: 5432}]";
    let consumer = route("TCPRoute", "mine", "", parents, "", SPLIT)
        .replace("namespace: db}\nspec", "namespace: app}\nspec");
    let loaded = load(&[consumer]);
    let pg = service(&loaded);
    assert_eq!(name(pg.tcp_route(5432)), Some("mine"));
    let (app, _) = pg.for_namespace("app");
    assert_eq!(name(app.tcp_route(5432)), Some("mine"));
    let (other, _) = pg.for_namespace("web");
    assert!(other.tcp_route(5432).is_none());
    assert!(!other.has_l4_routes());
}

#[test]
fn two_texts_merge_a_services_connection_routes() {
    let mut first = load(&[route("TCPRoute", "b", "", &pg("5432"), "", SPLIT)]);
    let second = config::load(
        "more.yaml",
        &route("TLSRoute", "a", "", &pg("5432"), "", ""),
    )
    .unwrap();
    first.merge(second);
    let pg = service(&first);
    assert_eq!(name(pg.tcp_route(5432)), Some("b"));
    assert_eq!(name(pg.tls_route(5432, Some("x.test"))), Some("a"));
    assert_eq!(pg.l4_routes_on(5432), PortRoutes::Tls);
}

#[test]
fn a_service_backend_without_a_port_or_an_egress_network_backend_is_refused_where_written() {
    let err = load_err(&[route(
        "TCPRoute",
        "move",
        "",
        &pg("5432"),
        "",
        "[{name: pg-new}]",
    )]);
    assert_eq!(err.kind(), ResourceErrorKind::MissingField);
    assert_eq!(err.document(), Some(1));
    assert_eq!(err.field_path(), "spec.rules[0].backendRefs[0]");
    assert_eq!(err.line(), Some(7));
    assert!(
        err.to_string()
            .contains("backend Service pg-new names no port"),
        "{err}"
    );
    let err = load_err(&[route(
        "TLSRoute",
        "out",
        "",
        &pg(""),
        "",
        "[{kind: EgressNetwork, group: policy.linkerd.io, name: net}]",
    )]);
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(err.field_path(), "spec.rules[0].backendRefs[0].kind");
    assert_eq!(err.line(), Some(7));
    assert!(
        err.to_string()
            .contains("parentRefs[0] attaches the route to Service db/pg"),
        "{err}"
    );
}

#[test]
fn a_gateway_parent_is_named_and_the_service_beside_it_read() {
    let parents =
        "[{name: edge, namespace: infra}, {kind: Service, group: '', name: pg, port: 5432}]";
    let loaded = load(&[route("TCPRoute", "move", "", parents, "", SPLIT)]);
    assert_eq!(name(service(&loaded).tcp_route(5432)), Some("move"));
    assert_eq!(
        strings(&loaded.warnings),
        [
            "routes.yaml: document 1 (TCPRoute db/move): spec.parentRefs[0]: a TCPRoute attached \
             to Gateway infra/edge (parentRefs[0]) is not applied: the sidecar reads TLSRoutes \
             and TCPRoutes for Services and EgressNetworks, the parents Linkerd serves them on, \
             and authorization reads neither kind"
        ]
    );
}

#[test]
fn every_weight_zero_is_read_and_warned_about() {
    let backends = "[{name: pg-old, port: 5432, weight: 0}]";
    let loaded = load(&[route("TCPRoute", "off", "", &pg("5432"), "", backends)]);
    assert_eq!(
        service(&loaded).tcp_route(5432).unwrap().backends[0].weight,
        0
    );
    assert_eq!(
        strings(&loaded.warnings),
        [
            "routes.yaml: document 1 (TCPRoute db/off): spec.rules[0].backendRefs: every backend \
             has weight 0: the route's connections are refused, as the Gateway API asks"
        ]
    );
}
