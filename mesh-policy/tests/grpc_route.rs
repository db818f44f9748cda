//! `GRPCRoute`s under a Server: matched by gRPC method, targeted by an
//! `AuthorizationPolicy` as `HTTPRoute`s are, and named apart from an
//! `HTTPRoute` of the same name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use http::Request;
use mesh_policy::{
    Client, ClientTls, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload,
};

const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-grpc, namespace: emojivoto}
spec: {podSelector: {}, port: 8080, proxyProtocol: gRPC}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-grpc}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-grpc}]
  rules: [{matches: [{path: {type: Exact, value: /healthz}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec: {networks: [{cidr: 127.0.0.0/8}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: list-from-loopback, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: GRPCRoute, name: emoji}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
"#;

fn compile(text: &str) -> Result<Policy, mesh_core::resource::ResourceError> {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &Workload::new("emojivoto"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|compiled| compiled.policy)
}

fn call(path: &str) -> Request<()> {
    Request::post(path)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

fn from(ip: &str) -> Client<'static> {
    Client {
        tls: ClientTls::Plaintext,
        addr: Some(ip.parse::<IpAddr>().unwrap()),
    }
}

#[test]
fn a_grpc_route_is_matched_by_method_and_authorized_by_its_own_policy() {
    let policy = compile(POLICY).unwrap();
    let list = call("/emojivoto.v1.EmojiService/ListAll");
    match policy.evaluate(8080, &from("127.0.0.1"), &list) {
        Decision::Allow(allowed) => assert_eq!(allowed.route(), "emoji"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        policy.evaluate(8080, &from("203.0.113.7"), &list),
        Decision::Deny(_)
    ));
    // Another method is on no route of the Server.
    let other = call("/emojivoto.v1.EmojiService/FindByShortcode");
    assert!(matches!(
        policy.evaluate(8080, &from("127.0.0.1"), &other),
        Decision::NotFound(_)
    ));
    // The HTTPRoute of the same name is another route, which the policy
    // does not target.
    let health = Request::get("/healthz").body(()).unwrap();
    assert!(matches!(
        policy.evaluate(8080, &from("127.0.0.1"), &health),
        Decision::Deny(_)
    ));
}

#[test]
fn a_policy_naming_a_missing_grpc_route_and_a_bad_method_are_errors() {
    let dangling = POLICY.replace(
        "kind: GRPCRoute, name: emoji}",
        "kind: GRPCRoute, name: nope}",
    );
    assert_ne!(dangling, POLICY);
    let error = compile(&dangling).unwrap_err().to_string();
    assert!(
        error.contains("spec.targetRef.name: no GRPCRoute named nope"),
        "{error}"
    );

    let bad = POLICY.replace("method: ListAll", "method: List-All");
    let error = compile(&bad).unwrap_err().to_string();
    assert!(
        error.contains("(GRPCRoute emoji): spec.rules[0].matches[0].method.method"),
        "{error}"
    );
}

#[test]
fn a_grpc_route_may_not_redirect_a_call_or_edit_its_headers_twice() {
    let redirect = POLICY.replace(
        "  - matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]\n",
        "  - matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]\n    filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example}}]\n",
    );
    assert_ne!(redirect, POLICY);
    let error = compile(&redirect).unwrap_err().to_string();
    assert!(
        error.contains("(GRPCRoute emoji): spec.rules[0].filters[0]: a GRPCRoute rule may not hold a RequestRedirect filter"),
        "{error}"
    );

    let twice = POLICY.replace(
        "  - matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]\n",
        "  - matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]\n    filters:\n    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: '1'}]}}\n    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-b, value: '2'}]}}\n",
    );
    let error = compile(&twice).unwrap_err().to_string();
    assert!(
        error.contains("spec.rules[0].filters[1]: a second RequestHeaderModifier filter"),
        "{error}"
    );
}

/// Two GRPCRoutes on one Server that both take `ListAll`: one by its
/// service, one by its method, each with its own authorization.
const SERVICE_AND_METHOD: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-grpc, namespace: emojivoto}
spec: {podSelector: {}, port: 8080, proxyProtocol: gRPC}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: by-method, namespace: emojivoto, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-grpc}]
  rules: [{matches: [{method: {method: ListAll}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: by-service, namespace: emojivoto, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-grpc}]
  rules: [{matches: [{method: {service: emojivoto.v1.EmojiService}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec: {networks: [{cidr: 127.0.0.0/8}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: documentation, namespace: emojivoto}
spec: {networks: [{cidr: 203.0.113.0/24}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: service-from-loopback, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: GRPCRoute, name: by-service}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: method-from-documentation, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: GRPCRoute, name: by-method}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: documentation}]
"#;

#[test]
fn a_match_naming_the_service_outranks_one_naming_only_the_method() {
    // The GRPCRoute precedence: the most characters of a matching service,
    // then of a matching method. The route by method is older, so only
    // that order puts the route by service first.
    let policy = compile(SERVICE_AND_METHOD).unwrap();
    let list = call("/emojivoto.v1.EmojiService/ListAll");
    match policy.evaluate(8080, &from("127.0.0.1"), &list) {
        Decision::Allow(allowed) => assert_eq!(allowed.route(), "by-service"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        policy.evaluate(8080, &from("203.0.113.7"), &list),
        Decision::Deny(_)
    ));
    // Another service's ListAll is the method route's.
    let other = call("/other.v1.Other/ListAll");
    match policy.evaluate(8080, &from("203.0.113.7"), &other) {
        Decision::Allow(allowed) => assert_eq!(allowed.route(), "by-method"),
        other => panic!("{other:?}"),
    }
}

/// A GRPCRoute taking `ListAll` by method, another adding a header, and
/// an older HTTPRoute naming the call's exact path, all under one Server
/// open to loopback.
const KINDS_AND_HEADERS: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-grpc, namespace: emojivoto}
spec: {podSelector: {}, port: 8080, proxyProtocol: gRPC}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: exact-path, namespace: emojivoto, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-grpc}]
  rules: [{matches: [{path: {type: Exact, value: /emojivoto.v1.EmojiService/ListAll}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: list, namespace: emojivoto, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-grpc}]
  rules: [{matches: [{method: {method: ListAll}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: list-canary, namespace: emojivoto, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-grpc}]
  rules: [{matches: [{method: {method: ListAll}, headers: [{name: x-canary, value: "1"}]}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec: {networks: [{cidr: 127.0.0.0/8}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: server-from-loopback, namespace: emojivoto}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: emoji-grpc}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
"#;

#[test]
fn grpc_route_matches_come_before_http_route_matches_then_headers_decide() {
    // Linkerd serves a parent's GRPCRoutes where it has both kinds, so a
    // GRPCRoute match comes first even against an older HTTPRoute's exact
    // path, which by the HTTPRoute order would outrank an expression.
    let policy = compile(KINDS_AND_HEADERS).unwrap();
    let route = |request: &Request<()>| match policy.evaluate(8080, &from("127.0.0.1"), request) {
        Decision::Allow(allowed) => allowed.route().to_owned(),
        other => panic!("{other:?}"),
    };
    assert_eq!(route(&call("/emojivoto.v1.EmojiService/ListAll")), "list");
    // Between two matches naming only the method, more header matches win
    // over the older route.
    let mut canary = call("/emojivoto.v1.EmojiService/ListAll");
    canary
        .headers_mut()
        .insert("x-canary", http::HeaderValue::from_static("1"));
    assert_eq!(route(&canary), "list-canary");
}
