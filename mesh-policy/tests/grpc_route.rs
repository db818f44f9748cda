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
