//! Routes whose parent is Linkerd's `EgressNetwork` (policy.linkerd.io):
//! read apart from the services, with everything a service's routes get,
//! the `parentRefs` port as the destination port each takes, and a
//! `backendRefs` entry of kind `EgressNetwork` as the original
//! destination, as in Linkerd's egress walkthrough
//! (<https://linkerd.io/2.17/tasks/managing-egress-traffic/>).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Method, Request};
use mesh_core::resource::{ResourceError, ResourceErrorKind};
use mesh_retry::config::{
    self, BackendKind, ParentKind, RetryResources, RouteBackend, ServiceRetryPolicy, Unmatched,
};

/// The `parentRefs` entry of the walkthrough's routes, with `port`.
fn egress_parent(port: &str) -> String {
    format!(
        "{{name: all-egress-traffic, kind: EgressNetwork, group: policy.linkerd.io, \
         namespace: egress-test{port}}}"
    )
}

/// The walkthrough's network, `httpbin-get` (`/get` to port 80, to the
/// original destination), its `TLSRoute` (which is not this reader's) as
/// its later step writes it, for every SNI, and `unencrypted-http` (the
/// rest of port 80, to an in-cluster service).
fn walkthrough() -> String {
    let first = include_str!("fixtures/egress-walkthrough.yaml");
    format!(
        "{}---\n{}",
        first.replace("  hostnames:\n  - httpbin.org\n", ""),
        include_str!("fixtures/egress-walkthrough-unencrypted-http.yaml")
    )
}

fn network(resources: &RetryResources) -> &ServiceRetryPolicy {
    resources
        .egress_network("all-egress-traffic", Some("egress-test"))
        .expect("the network's routes are read")
}

/// The names of the routes of `policy`, in the order read.
fn names(policy: &ServiceRetryPolicy) -> Vec<&str> {
    policy.routes.iter().map(|r| &*r.name).collect()
}

/// The name of the route `method` `path` (to `host`, when given) takes.
fn route_of<'p>(
    policy: &'p ServiceRetryPolicy,
    method: Method,
    path: &str,
    host: Option<&str>,
) -> Option<&'p str> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(host) = host {
        req = req.header("host", host);
    }
    policy.route_for(&req.body(()).unwrap()).map(|r| &*r.name)
}

fn strings(warnings: &[config::ConfigWarning]) -> Vec<String> {
    warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn the_walkthroughs_routes_are_read_with_their_matches_ports_and_backends() {
    let loaded = config::load("egress.yaml", &walkthrough()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // Apart from the services: a network is no service.
    assert!(loaded.services.is_empty(), "{:?}", loaded.services);
    assert!(
        loaded
            .service("all-egress-traffic", Some("egress-test"))
            .is_none()
    );
    let net = network(&loaded);
    assert_eq!(net.parent(), ParentKind::EgressNetwork);
    assert_eq!(
        (net.parent().group(), net.parent().kind()),
        ("policy.linkerd.io", "EgressNetwork")
    );
    assert_eq!(names(net), ["httpbin-get", "unencrypted-http"]);
    assert_eq!(net.ports(), [80]);
    assert_eq!(
        (net.parent_port(0), net.parent_port(1)),
        (Some(80), Some(80))
    );
    // No backendRefs: the original destination.
    assert!(net.routes[0].backends.is_empty());
    assert_eq!(
        net.routes[1].backends,
        [RouteBackend {
            name: "internal-egress".into(),
            namespace: Some("egress-test".into()),
            weight: 1,
            kind: BackendKind::Service,
        }]
    );
    let route = net.rule_route(0).unwrap();
    assert_eq!(
        (route.group, route.kind, route.namespace, route.name),
        (
            "gateway.networking.k8s.io",
            "HTTPRoute",
            Some("egress-test"),
            "httpbin-get"
        )
    );
    assert_eq!(
        net.rule_source(1).unwrap(),
        "egress.yaml: document 4 (HTTPRoute egress-test/unencrypted-http): spec.rules[0]"
    );

    // Port 80's traffic: /get to httpbin.org, the rest to the service;
    // another port's goes to the network's default route.
    let (port80, aside) = net.for_port(80);
    assert!(aside.is_empty(), "{aside:?}");
    assert_eq!(port80.port(), Some(80));
    let get = route_of(&port80, Method::GET, "http://httpbin.org/get", None);
    assert_eq!(get, Some("httpbin-get"));
    let other = route_of(&port80, Method::GET, "http://google.com/", None);
    assert_eq!(other, Some("unencrypted-http"));
    let (port8080, _) = net.for_port(8080);
    assert!(port8080.routes.is_empty());
    assert_eq!(port8080.unmatched(), Unmatched::EgressNetwork);
    assert_eq!(net.unmatched(), Unmatched::EgressNetwork);
}

#[test]
fn a_backend_of_kind_egress_network_is_the_original_destination() {
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: canary-out, namespace: egress-test}}
spec:
  parentRefs: [{}]
  rules:
  - backendRefs:
    - {{kind: EgressNetwork, group: policy.linkerd.io, name: all-egress-traffic, weight: 90}}
    - {{kind: Service, name: internal-egress, port: 80, weight: 10}}
  - matches: [{{path: {{value: /cased}}}}]
    backendRefs: [{{kind: egressnetwork, group: Policy.Linkerd.io, name: all-egress-traffic, namespace: egress-test}}]
",
        egress_parent("")
    );
    let loaded = config::load("egress.yaml", &text).unwrap();
    let net = network(&loaded);
    let original = |weight| RouteBackend {
        name: "all-egress-traffic".into(),
        namespace: Some("egress-test".into()),
        weight,
        kind: BackendKind::OriginalDestination,
    };
    assert_eq!(
        net.routes[0].backends,
        [
            original(90),
            RouteBackend {
                name: "internal-egress".into(),
                namespace: Some("egress-test".into()),
                weight: 10,
                kind: BackendKind::Service,
            }
        ]
    );
    // Group and kind compare without regard to case, as in Linkerd.
    assert_eq!(net.routes[1].backends, [original(1)]);
    // Without a port, the routes take every port.
    assert_eq!(net.parent_port(0), None);
    assert!(net.ports().is_empty());
    assert_eq!(net.for_port(443).0.routes.len(), 2);
}

/// A route of `egress-test` with `parent` and `backends` as written.
fn backend_route(parent: &str, backends: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: out, namespace: egress-test}}
spec:
  parentRefs: [{parent}]
  rules:
  - matches: [{{path: {{value: /a}}}}]
  - backendRefs:
    - {{kind: Service, name: internal-egress, port: 80}}
    - {backends}
"
    )
}

fn refused(text: &str) -> ResourceError {
    let text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: other}}\n---\n{text}");
    config::load("egress.yaml", &text).unwrap_err()
}

#[test]
fn an_egress_network_backend_that_is_not_the_parent_is_refused_where_it_is() {
    let err = refused(&backend_route(
        &egress_parent(", port: 80"),
        "{kind: EgressNetwork, group: policy.linkerd.io, name: other-egress}",
    ));
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
    assert_eq!(
        err.field_path(),
        "spec.rules[1].backendRefs[1].name",
        "{err}"
    );
    assert_eq!((err.document(), err.line()), (Some(2), Some(14)), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with(
            "egress.yaml: document 2 (HTTPRoute egress-test/out): \
             spec.rules[1].backendRefs[1].name: backend EgressNetwork egress-test/other-egress \
             is not the route's parent EgressNetwork egress-test/all-egress-traffic \
             (parentRefs[0])"
        ),
        "{message}"
    );
    // Another namespace's network of the same name is another network.
    let err = refused(&backend_route(
        &egress_parent(""),
        "{kind: EgressNetwork, group: policy.linkerd.io, name: all-egress-traffic, \
         namespace: linkerd-egress}",
    ));
    assert_eq!(
        err.field_path(),
        "spec.rules[1].backendRefs[1].name",
        "{err}"
    );

    // On a route attached to a Service, whose traffic has no original
    // destination to go on to; also when the route is attached to the
    // network as well.
    for parent in [
        "{kind: Service, group: core, name: internal-egress}".to_owned(),
        format!(
            "{}, {{kind: Service, group: core, name: internal-egress}}",
            egress_parent("")
        ),
    ] {
        let err = refused(&backend_route(
            &parent,
            "{kind: EgressNetwork, group: policy.linkerd.io, name: all-egress-traffic}",
        ));
        assert_eq!(
            err.field_path(),
            "spec.rules[1].backendRefs[1].kind",
            "{err}"
        );
        assert_eq!(err.line(), Some(14), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(
                "backend EgressNetwork egress-test/all-egress-traffic stands for the original \
                 destination"
            ) && message.contains("attaches the route to Service egress-test/internal-egress"),
            "{message}"
        );
    }
}

#[test]
fn errors_in_an_egress_route_name_the_file_document_field_and_line() {
    let route = |rule: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: out, namespace: egress-test}}
spec:
  parentRefs: [{}]
  rules:
  - {rule}
",
            egress_parent(", port: 80")
        )
    };
    let err = refused(&route("retry: {codes: [200]}"));
    assert_eq!(
        (err.field_path(), err.document(), err.line()),
        ("spec.rules[0].retry.codes[0]", Some(2), Some(11)),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "egress.yaml: document 2 (HTTPRoute egress-test/out): spec.rules[0].retry.codes[0]: \
             http status 200 is outside the allowed range 400 to 599"
        ),
        "{err}"
    );
    let err = refused(&route("timeouts: {request: 1s, backendRequest: 2s}"));
    assert_eq!(
        (err.field_path(), err.line()),
        ("spec.rules[0].timeouts.backendRequest", Some(11)),
        "{err}"
    );
    let err = refused(&route(
        "backendRefs: [{kind: Bucket, group: example.com, name: b}]",
    ));
    assert_eq!(
        err.field_path(),
        "spec.rules[0].backendRefs[0].kind",
        "{err}"
    );
    // The port, as the reader of parentRefs refuses it for any parent.
    let err = refused(&route("{}").replace("port: 80", "port: 0"));
    assert_eq!(err.field_path(), "spec.parentRefs[0].port", "{err}");
    assert_eq!(err.line(), Some(9), "{err}");
}

/// `route` with its `parentRefs` entry made `parent`.
fn attached(route: &str, parent: &str) -> String {
    route.replace(
        "parentRefs: [{ group: core, kind: Service, name: books, port: 8080 }]",
        &format!("parentRefs: [{parent}]"),
    )
}

/// A route with Linkerd's annotations, the Gateway API's timeouts and
/// retries, hostnames, header filters, a redirect and an unsupported
/// filter, on the `books` service at first.
const EVERYTHING: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: books
  namespace: shop
  creationTimestamp: "2024-01-02T00:00:00Z"
  annotations:
    retry.linkerd.io/http: 5xx
    retry.linkerd.io/limit: "1"
    retry.linkerd.io/timeout: 400ms
    retry.linkerd.io/grpc: unavailable
    timeout.linkerd.io/request: 5s
    timeout.linkerd.io/idle: 30s
spec:
  parentRefs: [{ group: core, kind: Service, name: books, port: 8080 }]
  hostnames: [books.example.com, "*.shop.example"]
  rules:
  - name: reads
    matches: [{ method: GET, path: { type: PathPrefix, value: /books } }]
    timeouts: { request: 3s, backendRequest: 1s }
    retry: { codes: [502, 503], attempts: 2, backoff: 100ms }
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: { set: [{ name: x-env, value: canary }] }
    - type: RequestMirror
      requestMirror: { backendRef: { name: books-shadow, port: 80 } }
  - matches: [{ path: { type: Exact, value: /old } }]
    filters:
    - type: RequestRedirect
      requestRedirect: { hostname: books.example.com, statusCode: 301 }
  - matches: [{ path: { type: PathPrefix, value: / }, headers: [{ name: x-a, value: b }] }]
    backendRefs: [{ name: books-v2, port: 80, weight: 3 }]
"#;

#[test]
fn an_egress_route_is_read_as_a_service_route_is() {
    let egress = attached(
        EVERYTHING,
        "{ group: policy.linkerd.io, kind: EgressNetwork, name: books }",
    );
    let as_service = config::load("routes.yaml", EVERYTHING).unwrap();
    let as_egress = config::load("routes.yaml", &egress).unwrap();
    assert!(as_egress.services.is_empty());
    let service = as_service.service("books", Some("shop")).unwrap();
    let net = as_egress.egress_network("books", Some("shop")).unwrap();
    // Matches, retries, timeouts, header edits and backends alike.
    assert_eq!(format!("{:?}", net.routes), format!("{:?}", service.routes));
    assert_eq!(net.redirects, service.redirects);
    assert!(net.redirect(1).is_some());
    assert_eq!(net.match_order(), service.match_order());
    for i in 0..3 {
        assert_eq!(net.hosts(i), service.hosts(i));
        assert_eq!(net.rule_route(i), service.rule_route(i));
    }
    assert_eq!(net.routes[0].retry.max_attempts().get(), 3);
    // The same warnings, on the same fields.
    assert_eq!(strings(&as_egress.warnings), strings(&as_service.warnings));
    assert_eq!(as_egress.warnings.len(), 3, "{:?}", as_egress.warnings);
    // The hostnames decide as for a service.
    let host = Some("books.example.com");
    assert_eq!(route_of(net, Method::GET, "/books/1", host), Some("reads"));
    assert_eq!(
        route_of(net, Method::GET, "/books/1", Some("other.org")),
        None
    );
}

/// A route of `kind` named `name` in `namespace`, on the walkthrough's
/// network with `port` (`, port: 80` or nothing), its one rule matching
/// `matches`.
fn route(kind: &str, namespace: &str, name: &str, port: &str, matches: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  parentRefs: [{}]
  rules:
  - name: {name}
    matches: {matches}
",
        egress_parent(port)
    )
}

const ALL: &str = "[{path: {type: PathPrefix, value: /}}]";
const GET: &str = "[{path: {type: Exact, value: /get}}]";
const CALLS: &str = "[{method: {service: grpc.health.v1.Health}}]";

#[test]
fn a_grpc_route_sets_aside_the_http_routes_of_its_own_ports() {
    let load = |routes: &[String]| config::load("egress.yaml", &routes.join("---\n")).unwrap();
    // On two ports, each is served its own.
    let loaded = load(&[
        route("HTTPRoute", "egress-test", "web", ", port: 80", ALL),
        route("GRPCRoute", "egress-test", "health", ", port: 8080", CALLS),
    ]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let net = network(&loaded);
    assert_eq!(names(net), ["web", "health"]);
    assert_eq!(net.ports(), [80, 8080]);
    let (port80, aside) = net.for_port(80);
    assert!(aside.is_empty(), "{aside:?}");
    assert_eq!(names(&port80), ["web"]);
    let (port8080, _) = net.for_port(8080);
    assert_eq!(names(&port8080), ["health"]);
    let call = "/grpc.health.v1.Health/Check";
    assert_eq!(
        route_of(&port8080, Method::POST, call, None),
        Some("health")
    );
    // A gRPC route's match takes calls only, as for a service.
    assert_eq!(route_of(&port8080, Method::GET, call, None), None);

    // A GRPCRoute of every port sets aside the HTTPRoute of port 80.
    let loaded = load(&[
        route("HTTPRoute", "egress-test", "web", ", port: 80", ALL),
        route("GRPCRoute", "egress-test", "health", "", CALLS),
    ]);
    assert_eq!(
        strings(&loaded.warnings),
        [
            "egress.yaml: document 1 (HTTPRoute egress-test/web): spec.parentRefs[0]: set aside \
          for EgressNetwork egress-test/all-egress-traffic on port 80, whose GRPCRoutes \
          (egress-test/health) take its traffic on port 80: a port of an EgressNetwork is \
          served its GRPCRoutes or its HTTPRoutes, not both, and GRPCRoutes win, as in \
          Linkerd (GEP-1294)"
        ]
    );
    assert_eq!(names(network(&loaded)), ["health"]);
    assert_eq!(names(&network(&loaded).for_port(80).0), ["health"]);

    // An HTTPRoute of every port keeps the ports no GRPCRoute takes.
    let loaded = load(&[
        route("HTTPRoute", "egress-test", "web", "", ALL),
        route("GRPCRoute", "egress-test", "health", ", port: 8080", CALLS),
    ]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let net = network(&loaded);
    assert_eq!(names(&net.for_port(80).0), ["web"]);
    let (port8080, aside) = net.for_port(8080);
    assert_eq!(names(&port8080), ["health"]);
    assert_eq!(
        strings(&aside),
        [
            "egress.yaml: document 1 (HTTPRoute egress-test/web): spec.parentRefs[0]: set aside \
          for EgressNetwork egress-test/all-egress-traffic on port 8080, whose GRPCRoutes \
          (egress-test/health) take its traffic on port 8080: a port of an EgressNetwork is \
          served its GRPCRoutes or its HTTPRoutes, not both, and GRPCRoutes win, as in \
          Linkerd (GEP-1294)"
        ]
    );
}

#[test]
fn a_port_is_served_its_routes_and_those_of_every_port_ranked_together() {
    let text = [
        route("HTTPRoute", "egress-test", "any", "", ALL),
        route("HTTPRoute", "egress-test", "get-80", ", port: 80", GET),
        route("HTTPRoute", "egress-test", "get-81", ", port: 81", GET),
    ]
    .join("---\n");
    let loaded = config::load("egress.yaml", &text).unwrap();
    let net = network(&loaded);
    assert_eq!(net.ports(), [80, 81]);
    assert_eq!(
        (0..3).map(|i| net.parent_port(i)).collect::<Vec<_>>(),
        [None, Some(80), Some(81)]
    );
    for (port, get) in [
        (80, Some("get-80")),
        (81, Some("get-81")),
        (82, Some("any")),
    ] {
        let (selected, _) = net.for_port(port);
        // The Exact match outranks the catch-all written before it.
        assert_eq!(
            route_of(&selected, Method::GET, "/get", None),
            get,
            "{port}"
        );
        assert_eq!(route_of(&selected, Method::GET, "/x", None), Some("any"));
    }
}

#[test]
fn an_egress_route_and_a_service_route_of_one_name_in_one_text_are_one_object() {
    let service_route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: egress-test}
spec:
  parentRefs: [{kind: Service, group: core, name: internal-egress}]
  rules:
  - matches: [{path: {value: /}}]
";
    let text = [
        service_route.to_owned(),
        route("HTTPRoute", "egress-test", "web", ", port: 80", ALL),
    ]
    .join("---\n");
    let err = config::load("egress.yaml", &text).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateName, "{err}");
    assert_eq!(
        (err.field_path(), err.document(), err.line()),
        ("metadata.name", Some(2), Some(11)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("a second HTTPRoute egress-test/web in this text, after document 1"),
        "{err}"
    );
    // A GRPCRoute of that name is another object.
    let text = [
        service_route.to_owned(),
        route("GRPCRoute", "egress-test", "web", "", CALLS),
    ]
    .join("---\n");
    config::load("egress.yaml", &text).unwrap();

    // One route attached to both is read for each.
    let both = service_route.replace(
        "parentRefs: [",
        &format!("parentRefs: [{}, ", egress_parent("")),
    );
    let loaded = config::load("egress.yaml", &both).unwrap();
    assert_eq!(names(network(&loaded)), ["web"]);
    let service = loaded
        .service("internal-egress", Some("egress-test"))
        .unwrap();
    assert_eq!(names(service), ["web"]);
    assert_eq!(service.parent(), ParentKind::Service);
    assert_eq!(service.unmatched(), Unmatched::NotFound);
}

#[test]
fn two_files_merge_their_egress_routes() {
    let first = config::load(
        "a.yaml",
        &route("HTTPRoute", "egress-test", "get", ", port: 80", GET),
    )
    .unwrap();
    let second = [
        route("HTTPRoute", "egress-test", "any", ", port: 80", ALL),
        route("HTTPRoute", "egress-test", "get", ", port: 80", GET),
    ]
    .join("---\n");
    let mut merged = first.clone();
    merged.merge(config::load("b.yaml", &second).unwrap());
    assert_eq!(
        strings(&merged.warnings),
        [
            "b.yaml: document 2 (HTTPRoute egress-test/get): metadata.name: a second HTTPRoute \
          egress-test/get, after a.yaml document 1: the cluster keeps one object of a kind \
          and name, the one applied last, but the rules of both are served here, so keep one \
          of the two or rename the other"
        ]
    );
    assert_eq!(merged.egress_networks.len(), 1);
    let net = network(&merged);
    assert_eq!(names(net), ["get", "any", "get"]);
    let (port80, _) = net.for_port(80);
    assert_eq!(route_of(&port80, Method::GET, "/get", None), Some("get"));
    assert_eq!(route_of(&port80, Method::GET, "/x", None), Some("any"));

    // A GRPCRoute of every port in another file sets the HTTPRoutes aside.
    let mut merged = first;
    merged.merge(
        config::load(
            "c.yaml",
            &route("GRPCRoute", "egress-test", "health", "", CALLS),
        )
        .unwrap(),
    );
    assert_eq!(names(network(&merged)), ["health"]);
    let [warning] = &merged.warnings[..] else {
        panic!("{:?}", merged.warnings)
    };
    assert_eq!(
        (warning.origin.as_str(), warning.field.as_str()),
        ("a.yaml", "spec.parentRefs[0]")
    );
    assert_eq!(names(&network(&merged).for_port(80).0), ["health"]);
}

#[test]
fn consumer_routes_apply_to_their_own_namespaces_clients() {
    // The network in the global egress namespace; a producer route there,
    // a consumer route in `web`, and a consumer GRPCRoute in `batch`.
    let on_global = |kind: &str, namespace: &str, name: &str, port: &str, matches: &str| {
        route(kind, namespace, name, port, matches)
            .replace("namespace: egress-test", "namespace: linkerd-egress")
    };
    let text = [
        on_global("HTTPRoute", "linkerd-egress", "producer", "", ALL),
        on_global("HTTPRoute", "web", "web-get", ", port: 80", GET),
        on_global("GRPCRoute", "batch", "batch-grpc", "", CALLS),
    ]
    .join("---\n");
    let loaded = config::load("egress.yaml", &text).unwrap();
    let net = loaded
        .egress_network("all-egress-traffic", Some("linkerd-egress"))
        .unwrap();
    // For a client anywhere, every route: the GRPCRoute sets the others
    // aside.
    assert_eq!(names(net), ["batch-grpc"]);
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);

    let web = loaded.for_namespace("web");
    assert!(web.warnings.is_empty(), "{:?}", web.warnings);
    let net = web
        .egress_network("all-egress-traffic", Some("linkerd-egress"))
        .unwrap();
    assert_eq!(names(net), ["producer", "web-get"]);
    assert_eq!(
        route_of(&net.for_port(80).0, Method::GET, "/get", None),
        Some("web-get")
    );
    assert_eq!(names(&net.for_port(81).0), ["producer"]);

    // Selected by port first, then by namespace, the same.
    let by_port = loaded
        .egress_network("all-egress-traffic", Some("linkerd-egress"))
        .unwrap()
        .for_port(80)
        .0;
    assert_eq!(
        names(&by_port.for_namespace("web").0),
        ["producer", "web-get"]
    );

    let batch = loaded.for_namespace("batch");
    let net = batch
        .egress_network("all-egress-traffic", Some("linkerd-egress"))
        .unwrap();
    assert_eq!(names(net), ["batch-grpc"]);
    assert_eq!(strings(&batch.warnings).len(), 1, "{:?}", batch.warnings);
    assert!(
        batch.warnings[0]
            .to_string()
            .contains("(HTTPRoute linkerd-egress/producer)"),
        "{:?}",
        batch.warnings
    );
    let other = loaded.for_namespace("other");
    let net = other
        .egress_network("all-egress-traffic", Some("linkerd-egress"))
        .unwrap();
    assert_eq!(names(net), ["producer"]);
}

#[test]
fn parents_of_other_kinds_and_groups_are_left_alone() {
    for parent in [
        // The Gateway API's group, which the EgressNetwork is not in.
        "{kind: EgressNetwork, name: all-egress-traffic}",
        "{kind: EgressNetwork, group: gateway.networking.k8s.io, name: all-egress-traffic}",
        "{kind: Server, group: policy.linkerd.io, name: web}",
        "{name: gateway}",
    ] {
        let text =
            route("HTTPRoute", "egress-test", "web", "", ALL).replace(&egress_parent(""), parent);
        let loaded = config::load("egress.yaml", &text).unwrap();
        assert!(loaded.egress_networks.is_empty(), "{parent}");
        assert!(loaded.services.is_empty(), "{parent}");
        assert!(loaded.warnings.is_empty(), "{parent}");
    }
    // Group and kind compare without regard to case, as in Linkerd.
    let text = route("HTTPRoute", "egress-test", "web", "", ALL).replace(
        "kind: EgressNetwork, group: policy.linkerd.io",
        "kind: egressnetwork, group: Policy.Linkerd.io",
    );
    let loaded = config::load("egress.yaml", &text).unwrap();
    assert_eq!(names(network(&loaded)), ["web"]);
}
