//! Routes under a Server that are written without rules. The `HTTPRoute`
//! CRD defaults an absent (or `null`) `rules` to one rule taking every
//! request; it keeps `rules: []` as written, and the `GRPCRoute` CRD has
//! no default at all: such a route takes nothing, so its
//! `AuthorizationPolicy` authorizes nothing, and the Server answers 404
//! (gRPC `NOT_FOUND`) to what no other route takes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, StatusCode};
use mesh_core::{ConnectionInfo, Tls, conn::NoTlsReason, error::GRPC_STATUS};
use mesh_policy::{
    AuthorizeLayer, Compiled, Policy, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore,
    WarningKind, Workload,
};
use support::{T, Want, decide};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The `web` Server on port 80 (of `protocol`), a NetworkAuthentication
/// admitting every address, and an AuthorizationPolicy on the route
/// `kind`/`open`, whose spec ends with `rules`.
fn policy(protocol: &str, kind: &str, rules: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web, namespace: ns}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: 80
  proxyProtocol: {protocol}
---
apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: open, namespace: ns}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
{rules}---
{all}---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: open-to-all, namespace: ns}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: {kind}, name: open}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: all}}]
",
        all = support::ALL_NETWORKS,
    )
}

fn compile(text: &str) -> Compiled {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &support::web_workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn get(policy: &Policy, path: &str) -> Want {
    decide(policy, 80, T::Plain, Some("10.1.1.1"), "GET", path, &[])
}

/// The warnings about `spec.rules`, displayed.
fn rules_warnings(compiled: &Compiled) -> Vec<String> {
    compiled
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::NotApplied && w.field_path == "spec.rules")
        .map(ToString::to_string)
        .collect()
}

const ALLOWED: Want = Want::Allow("web", "open", "open-to-all");

#[test]
fn an_http_route_without_rules_or_with_null_rules_takes_every_path() {
    for rules in ["", "  rules: null\n", "  rules:\n"] {
        let compiled = compile(&policy("HTTP/1", "HTTPRoute", rules));
        for path in ["/", "/api", "/a/b?c=d"] {
            assert_eq!(get(&compiled.policy, path), ALLOWED, "{rules:?} {path}");
        }
        assert_eq!(rules_warnings(&compiled), Vec::<String>::new(), "{rules:?}");
    }
}

#[test]
fn an_http_route_with_an_empty_rules_list_takes_nothing_and_is_warned_about() {
    let compiled = compile(&policy("HTTP/1", "HTTPRoute", "  rules: []\n"));
    for path in ["/", "/api"] {
        assert_eq!(get(&compiled.policy, path), Want::NotFound("web"), "{path}");
    }
    let warnings = rules_warnings(&compiled);
    assert_eq!(warnings.len(), 1, "{}", compiled.warnings);
    assert!(warnings[0].contains("HTTPRoute ns/open"), "{}", warnings[0]);
    assert!(warnings[0].contains("takes no requests"), "{}", warnings[0]);
}

/// Beside a route that takes `/api`, the empty one takes nothing: the
/// rest fall to no route.
#[test]
fn an_empty_rules_list_leaves_requests_to_the_servers_other_routes() {
    let mut text = policy("HTTP/1", "HTTPRoute", "  rules: []\n");
    text.push_str(
        "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]
  rules: [{matches: [{path: {type: PathPrefix, value: /api}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: api-to-all, namespace: ns}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: all}]
",
    );
    let compiled = compile(&text);
    assert_eq!(
        get(&compiled.policy, "/api/x"),
        Want::Allow("web", "api", "api-to-all")
    );
    assert_eq!(get(&compiled.policy, "/other"), Want::NotFound("web"));
}

#[test]
fn a_grpc_route_without_rules_takes_no_calls_and_is_warned_about() {
    for rules in ["", "  rules: null\n", "  rules: []\n"] {
        let compiled = compile(&policy("gRPC", "GRPCRoute", rules));
        let call = Request::post("/emojivoto.v1.EmojiService/ListAll")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let client = mesh_policy::Client {
            tls: mesh_policy::ClientTls::Plaintext,
            addr: Some("10.1.1.1".parse().unwrap()),
        };
        assert_eq!(
            support::as_want(&compiled.policy.evaluate(80, &client, &call)),
            Want::NotFound("web"),
            "{rules:?}"
        );
        let warnings = rules_warnings(&compiled);
        assert_eq!(warnings.len(), 1, "{rules:?}: {}", compiled.warnings);
        assert!(warnings[0].contains("GRPCRoute ns/open"), "{}", warnings[0]);
        assert!(warnings[0].contains("takes no calls"), "{}", warnings[0]);
    }
}

async fn backend(_: Request<()>) -> Result<Response<()>, Infallible> {
    Ok(Response::new(()))
}

/// What the HTTP layer answers, for a store holding `text`.
async fn answer(text: &str, grpc: bool) -> Response<()> {
    let store = PolicyStore::new(
        Workload::new("ns").with_label("app", "web"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", text)])
        .unwrap();
    let mut req = Request::post("/emojivoto.v1.EmojiService/ListAll");
    if grpc {
        req = req.header("content-type", "application/grpc");
    }
    let mut req = req.body(()).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "10.0.0.1:80".parse::<SocketAddr>().unwrap(),
        remote_addr: "10.1.1.1:4000".parse().unwrap(),
        tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
    });
    ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store))
        .service(service_fn(backend))
        .oneshot(req)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_server_answers_404_and_grpc_not_found_for_what_no_rule_takes() {
    let rsp = answer(&policy("HTTP/1", "HTTPRoute", "  rules: []\n"), false).await;
    assert_eq!(rsp.status(), StatusCode::NOT_FOUND);
    let rsp = answer(&policy("HTTP/1", "HTTPRoute", ""), false).await;
    assert_eq!(rsp.status(), StatusCode::OK);
    let rsp = answer(&policy("gRPC", "GRPCRoute", ""), true).await;
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()[GRPC_STATUS], "5");
}
