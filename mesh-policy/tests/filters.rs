//! The filters of a Server's `HTTPRoute` rules, applied to the requests
//! authorization allows: header modifiers edit them, a redirect answers
//! them, and a refused request gets its refusal instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use http::{Request, Response, StatusCode};
use mesh_core::{ConnectionInfo, Identity, Tls, route::RouteFilters};
use mesh_policy::{
    ApplyFiltersLayer, AuthorizeLayer, Policy, PolicyConfig, PolicyMetrics, PolicySource,
    PolicyStore, WarningKind, Workload,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const WEB: &str = "spiffe://cluster.local/ns/emojivoto/sa/web";

/// `emoji`'s port 8080 admits `web` on its routes: `/old` moved to `/new`
/// (its request edit, which would send it to another host, does not apply
/// to the redirect),
/// and `/api` requests lose `x-debug`, gain `x-env`, and answer with
/// `x-served-by`.
const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: emoji-http }
spec:
  podSelector: { matchLabels: { app: emoji } }
  port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: emoji-routes }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: emoji-http }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect:
            path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }
            statusCode: 301
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-moved-by, value: mesh }] }
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: host, value: internal.example }] }
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: x-env, value: canary }]
            remove: [x-debug]
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-served-by, value: mesh }] }
        - type: RequestMirror
          requestMirror: { backendRef: { name: shadow, port: 80 } }
    - matches: [{ path: { type: PathPrefix, value: /plain } }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: { name: web }
spec:
  identities: ["spiffe://cluster.local/ns/emojivoto/sa/web"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: emoji-routes-from-web }
spec:
  targetRef: { group: gateway.networking.k8s.io, kind: HTTPRoute, name: emoji-routes }
  requiredAuthenticationRefs:
    - { group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web }
"#;

fn workload() -> Workload {
    Workload::new("emojivoto").with_label("app", "emoji")
}

fn store() -> PolicyStore {
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", POLICY)])
        .unwrap();
    store
}

/// A backend that answers with the request headers it got, one
/// `name: value` a line, and says whether the filters' extension reached
/// it.
async fn echo(req: Request<()>) -> Result<Response<String>, Infallible> {
    let mut text = String::new();
    for (name, value) in req.headers() {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
    }
    if req.extensions().get::<Arc<RouteFilters>>().is_some() {
        text.push_str("filters reached the application\n");
    }
    Ok(Response::new(text))
}

fn request(path: &str, tls: Tls) -> Request<()> {
    let mut req = Request::get(path)
        .header("host", "emoji.emojivoto:8080")
        .header("x-debug", "1")
        .header("x-env", "prod")
        .body(())
        .unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "10.0.0.1:8080".parse::<SocketAddr>().unwrap(),
        remote_addr: "10.0.0.2:40000".parse().unwrap(),
        tls,
    });
    req
}

fn web() -> Tls {
    Tls::Mutual {
        peer: Identity::parse(WEB).unwrap(),
    }
}

async fn call(req: Request<()>) -> Response<String> {
    ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store()))
        .layer(ApplyFiltersLayer::new())
        .service(service_fn(echo))
        .oneshot(req)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_allowed_request_is_edited_on_its_way_in_and_out() {
    let res = call(request("/api/list", web())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-served-by"], "mesh");
    let seen: Vec<&str> = res.body().lines().collect();
    assert!(seen.contains(&"x-env: canary"), "{seen:?}");
    assert!(!seen.contains(&"x-env: prod"), "{seen:?}");
    assert!(!seen.iter().any(|l| l.starts_with("x-debug")), "{seen:?}");
    assert!(
        !seen.contains(&"filters reached the application"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_rule_without_filters_passes_its_requests_untouched() {
    let res = call(request("/plain", web())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("x-served-by"));
    let seen: Vec<&str> = res.body().lines().collect();
    assert!(seen.contains(&"x-env: prod"), "{seen:?}");
    assert!(seen.contains(&"x-debug: 1"), "{seen:?}");
}

#[tokio::test]
async fn an_allowed_request_on_a_redirecting_rule_is_answered_with_the_redirect() {
    let res = call(request("/old/list?page=2", web())).await;
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        res.headers()["location"],
        "http://emoji.emojivoto:8080/new/list?page=2"
    );
    // The rule's request edit shapes what a backend is sent; a redirect
    // sends nothing there, and is built from the request as the client
    // sent it, as Envoy builds it before adding a route's request headers.
    assert_eq!(res.headers()["x-moved-by"], "mesh");
    assert_eq!(res.body(), "", "the application answered");
}

#[tokio::test]
async fn a_refused_request_gets_its_refusal_not_the_redirect() {
    let plaintext = Tls::Plaintext(mesh_core::conn::NoTlsReason::NotProvidedByRemote);
    let res = call(request("/old/list", plaintext)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.headers().contains_key("location"));
    assert!(!res.headers().contains_key("x-moved-by"));
    // And a request no route matches gets its 404.
    let res = call(request("/elsewhere", web())).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

fn compile(text: &str) -> Result<mesh_policy::Compiled, mesh_core::resource::ResourceError> {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
}

#[test]
fn only_filters_that_are_not_applied_warn() {
    let compiled = compile(POLICY).unwrap();
    let seen: Vec<_> = compiled
        .warnings
        .iter()
        .map(|w| (w.kind, w.field_path.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(WarningKind::UnsupportedFilter, "spec.rules[1].filters[2]")]
    );
    assert!(
        compiled
            .warnings
            .to_string()
            .contains("filter RequestMirror is not applied to inbound requests"),
        "{}",
        compiled.warnings
    );
}

#[test]
fn filters_that_cannot_be_applied_are_errors_naming_the_field() {
    let err = compile(&POLICY.replace("type: PathPrefix, value: /old", "type: Exact, value: /old"))
        .unwrap_err();
    assert_eq!(
        err.field_path(),
        "spec.rules[0].filters[0].requestRedirect.path"
    );
    assert!(
        err.to_string()
            .contains("ReplacePrefixMatch needs the rule to have exactly one match"),
        "{err}"
    );
    let err = compile(&POLICY.replace("statusCode: 301", "statusCode: 200")).unwrap_err();
    assert_eq!(
        err.field_path(),
        "spec.rules[0].filters[0].requestRedirect.statusCode"
    );
    let err = compile(&POLICY.replace("remove: [x-debug]", "remove: [\"x debug\"]")).unwrap_err();
    assert_eq!(
        err.field_path(),
        "spec.rules[1].filters[0].requestHeaderModifier.remove[0]"
    );
}

/// The policy with a limit of one request a second on `emoji-http`.
fn limited_store() -> PolicyStore {
    let limit = r#"
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: { name: emoji-limit }
spec:
  targetRef: { group: policy.linkerd.io, kind: Server, name: emoji-http }
  total: { requestsPerSecond: 1 }
"#;
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new(
            "policy.yaml",
            &format!("{POLICY}{limit}"),
        )])
        .unwrap();
    store
}

#[tokio::test(start_paused = true)]
async fn a_redirect_is_answered_without_the_servers_rate_limit() {
    let svc = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(limited_store()))
        .layer(ApplyFiltersLayer::new())
        .service(service_fn(echo));
    // The rule's filters come before the limit, as in linkerd2-proxy:
    // redirects past the limit of one a second are still redirects, with
    // the rule's response edit...
    for _ in 0..3 {
        let redirected = svc
            .clone()
            .oneshot(request("/old/list", web()))
            .await
            .unwrap();
        assert_eq!(redirected.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(redirected.headers()["x-moved-by"], "mesh");
    }
    // ...and they took no share of it: the edited request has the whole
    // second's, and the next is over it.
    let edited = svc
        .clone()
        .oneshot(request("/api/list", web()))
        .await
        .unwrap();
    assert_eq!(edited.status(), StatusCode::OK);
    assert_eq!(edited.headers()["x-served-by"], "mesh");
    let over = svc.oneshot(request("/api/list", web())).await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!over.headers().contains_key("x-served-by"));
}

/// A backend that answers with headers of its own that the route's
/// response edit also names.
async fn tagged(_req: Request<()>) -> Result<Response<String>, Infallible> {
    let res = Response::builder()
        .header("x-served-by", "app")
        .header("x-version", "1")
        .header("x-version", "2")
        .header("x-trace", "abc")
        .body(String::new())
        .unwrap();
    Ok(res)
}

#[tokio::test]
async fn a_response_edit_adds_beside_sets_over_and_removes_the_backends_headers() {
    let policy = POLICY.replace(
        "responseHeaderModifier: { add: [{ name: x-served-by, value: mesh }] }",
        "responseHeaderModifier: { add: [{ name: X-Served-By, value: mesh }], \
         set: [{ name: X-VERSION, value: \"3\" }], remove: [X-Trace] }",
    );
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", &policy)])
        .unwrap();
    let res = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store))
        .layer(ApplyFiltersLayer::new())
        .service(service_fn(tagged))
        .oneshot(request("/api/list", web()))
        .await
        .unwrap();
    let values = |name: &str| -> Vec<&str> {
        res.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    // `add` keeps the backend's value and appends its own; `set` replaces
    // every value the header had; names match in any case (Gateway API
    // `HTTPHeaderFilter`).
    assert_eq!(values("x-served-by"), ["app", "mesh"]);
    assert_eq!(values("x-version"), ["3"]);
    assert_eq!(values("x-trace"), Vec::<&str>::new());
}

/// One redirect per combination of `scheme` and `port` that the Gateway
/// API's conformance test `HTTPRouteRedirectPortAndScheme` checks, each on
/// its own path, all to `example.org`.
fn port_and_scheme_policy() -> String {
    let mut text = String::from(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: emoji-http }
spec:
  podSelector: { matchLabels: { app: emoji } }
  port: 8080
  accessPolicy: all-unauthenticated
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: redirects }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: emoji-http }]
  rules:
"#,
    );
    for (scheme, port) in [
        ("nil", "nil"),
        ("nil", "80"),
        ("nil", "8080"),
        ("https", "nil"),
        ("https", "443"),
        ("https", "8443"),
        ("http", "nil"),
        ("http", "80"),
        ("http", "8080"),
    ] {
        let mut redirect = String::from("hostname: example.org");
        if scheme != "nil" {
            redirect.push_str(&format!(", scheme: {scheme}"));
        }
        if port != "nil" {
            redirect.push_str(&format!(", port: {port}"));
        }
        text.push_str(&format!(
            "    - matches: [{{ path: {{ type: PathPrefix, value: /scheme-{scheme}-and-port-{port} }} }}]\n      \
             filters: [{{ type: RequestRedirect, requestRedirect: {{ {redirect} }} }}]\n"
        ));
    }
    text
}

#[tokio::test]
async fn a_redirects_port_follows_its_scheme_or_the_port_the_client_asked_for() {
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", &port_and_scheme_policy())])
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store))
        .layer(ApplyFiltersLayer::new())
        .service(service_fn(echo));
    // The Gateway API (`HTTPRequestRedirectFilter.port`): without a port,
    // a redirect that sets a scheme goes to that scheme's well-known port,
    // and one that does not to the port the request came to, which in a
    // mesh is the one its client asked for (its `Host`); a well-known
    // port is not written. The cases and answers are the conformance
    // test's, for its listeners on 80 and on 8080.
    let cases = [
        ("emoji:80", "nil-and-port-nil", "http://example.org"),
        ("emoji:80", "nil-and-port-80", "http://example.org"),
        ("emoji:80", "nil-and-port-8080", "http://example.org:8080"),
        ("emoji:80", "https-and-port-nil", "https://example.org"),
        ("emoji:80", "https-and-port-443", "https://example.org"),
        (
            "emoji:80",
            "https-and-port-8443",
            "https://example.org:8443",
        ),
        ("emoji", "nil-and-port-nil", "http://example.org"),
        ("emoji:8080", "nil-and-port-nil", "http://example.org:8080"),
        ("emoji:8080", "nil-and-port-80", "http://example.org"),
        ("emoji:8080", "https-and-port-nil", "https://example.org"),
        ("emoji:8080", "http-and-port-nil", "http://example.org"),
        ("emoji:8080", "http-and-port-80", "http://example.org"),
        (
            "emoji:8080",
            "http-and-port-8080",
            "http://example.org:8080",
        ),
    ];
    for (host, case, origin) in cases {
        let path = format!("/scheme-{case}/x?q=1");
        let mut req = Request::get(path.as_str())
            .header("host", host)
            .body(())
            .unwrap();
        req.extensions_mut().insert(ConnectionInfo {
            local_addr: "10.0.0.1:8080".parse::<SocketAddr>().unwrap(),
            remote_addr: "10.0.0.2:40000".parse().unwrap(),
            tls: Tls::Plaintext(mesh_core::conn::NoTlsReason::NotProvidedByRemote),
        });
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "{host} {case}");
        assert_eq!(
            res.headers()["location"],
            format!("{origin}{path}").as_str(),
            "{host} {case}"
        );
    }
}
