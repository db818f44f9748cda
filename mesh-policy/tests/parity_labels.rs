//! The label values of the authorization families, line for line as
//! linkerd2-proxy writes them, so that dashboards and alerts written for
//! Linkerd read them: route kinds spelled as the API spells them
//! (`HTTPRoute`, `GRPCRoute`), denials, closed connections and requests no
//! route matched keyed by route or Server alone (no `authz_*`), and the
//! default server named by its policy alone beside `srv_kind="default"`.

use http::Request;
use mesh_policy::{
    Client, ClientTls, Decision, DefaultPolicy, ExplainQuery, Policy, PolicyConfig, PolicyMetrics,
    PolicySource, Workload,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// A Server with an `HTTPRoute` of each group, one `GRPCRoute` on a gRPC
/// Server, each route open to loopback clients only, and an opaque Server
/// for loopback clients only.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: ns}
spec: {podSelector: {}, port: 8080, proxyProtocol: HTTP/1}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: rpc, namespace: ns}
spec: {podSelector: {}, port: 8081, proxyProtocol: gRPC}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: db, namespace: ns}
spec: {podSelector: {}, port: 5432, proxyProtocol: opaque}
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: linkerd-route, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]
  rules: [{matches: [{path: {type: PathPrefix, value: /linkerd}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: gateway-route, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]
  rules: [{matches: [{path: {type: PathPrefix, value: /gateway}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-route, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: rpc}]
  rules: [{matches: [{method: {service: ns.v1.Svc, method: Get}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: ns}
spec: {networks: [{cidr: 127.0.0.0/8}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: linkerd-from-loopback, namespace: ns}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: linkerd-route}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: gateway-from-loopback, namespace: ns}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: gateway-route}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: grpc-from-loopback, namespace: ns}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: GRPCRoute, name: grpc-route}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: db-from-loopback, namespace: ns}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: db}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}]
";

const INSIDE: &str = "127.0.0.1";
const OUTSIDE: &str = "203.0.113.7";

fn compile(text: &str, config: &PolicyConfig, registry: &mut Registry) -> Policy {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &Workload::new("ns"),
        config,
        &PolicyMetrics::register(registry),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .policy
}

fn client(addr: &str) -> Client<'static> {
    Client {
        tls: ClientTls::Plaintext,
        addr: Some(addr.parse().unwrap()),
    }
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

fn grpc(path: &str) -> Request<()> {
    Request::post(path)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

/// Decides `req` on `port` for a plaintext client at `addr`, and counts it.
fn request(policy: &Policy, port: u16, addr: &str, req: &Request<()>) {
    policy
        .evaluate(port, &client(addr), req)
        .record(ClientTls::Plaintext);
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

fn assert_lines(text: &str, lines: &[String]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line}\nin\n{text}"
        );
    }
}

/// The lines of a family, for asserting on what none of them holds.
fn family<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    let prefix = format!("{name}{{");
    text.lines().filter(|l| l.starts_with(&prefix)).collect()
}

const WEB: &str =
    r#"srv_group="policy.linkerd.io",srv_kind="server",srv_name="web",srv_port="8080""#;
const RPC: &str =
    r#"srv_group="policy.linkerd.io",srv_kind="server",srv_name="rpc",srv_port="8081""#;
const DB: &str = r#"srv_group="policy.linkerd.io",srv_kind="server",srv_name="db",srv_port="5432""#;

#[test]
fn route_kinds_are_spelled_as_the_api_spells_them() {
    let mut registry = Registry::default();
    let policy = compile(POLICY, &PolicyConfig::default(), &mut registry);
    request(&policy, 8080, INSIDE, &get("/linkerd"));
    request(&policy, 8080, INSIDE, &get("/gateway"));
    request(&policy, 8081, INSIDE, &grpc("/ns.v1.Svc/Get"));

    let text = exposition(&registry);
    assert_lines(
        &text,
        &[
            format!(
                r#"inbound_http_authz_allow_total{{{WEB},route_group="policy.linkerd.io",route_kind="HTTPRoute",route_name="linkerd-route",authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="linkerd-from-loopback",tls="no_identity"}} 1"#
            ),
            format!(
                r#"inbound_http_authz_allow_total{{{WEB},route_group="gateway.networking.k8s.io",route_kind="HTTPRoute",route_name="gateway-route",authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="gateway-from-loopback",tls="no_identity"}} 1"#
            ),
            format!(
                r#"inbound_http_authz_allow_total{{{RPC},route_group="gateway.networking.k8s.io",route_kind="GRPCRoute",route_name="grpc-route",authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="grpc-from-loopback",tls="no_identity"}} 1"#
            ),
        ],
    );
    assert!(
        !text.contains(r#"route_kind="httproute""#) && !text.contains(r#"route_kind="grpcroute""#),
        "{text}"
    );
}

#[test]
fn denials_closed_connections_and_unrouted_requests_carry_no_authorization() {
    let mut registry = Registry::default();
    let policy = compile(POLICY, &PolicyConfig::default(), &mut registry);
    request(&policy, 8080, OUTSIDE, &get("/linkerd"));
    request(&policy, 8080, OUTSIDE, &get("/gateway"));
    request(&policy, 8080, OUTSIDE, &get("/gateway"));
    request(&policy, 8080, OUTSIDE, &get("/nowhere"));
    request(&policy, 8081, OUTSIDE, &grpc("/ns.v1.Svc/Get"));
    let refused = policy.evaluate_connection(5432, &client(OUTSIDE));
    assert!(!refused.is_allowed());
    refused.record(ClientTls::Plaintext);
    refused.record_terminate(ClientTls::Plaintext);

    let text = exposition(&registry);
    assert_lines(
        &text,
        &[
            format!(
                r#"inbound_http_authz_deny_total{{{WEB},route_group="policy.linkerd.io",route_kind="HTTPRoute",route_name="linkerd-route",tls="no_identity"}} 1"#
            ),
            format!(
                r#"inbound_http_authz_deny_total{{{WEB},route_group="gateway.networking.k8s.io",route_kind="HTTPRoute",route_name="gateway-route",tls="no_identity"}} 2"#
            ),
            format!(
                r#"inbound_http_authz_deny_total{{{RPC},route_group="gateway.networking.k8s.io",route_kind="GRPCRoute",route_name="grpc-route",tls="no_identity"}} 1"#
            ),
            format!(r#"inbound_http_route_not_found_total{{{WEB},tls="no_identity"}} 1"#),
            format!(r#"inbound_tcp_authz_deny_total{{{DB},tls="no_identity"}} 1"#),
            format!(r#"inbound_tcp_authz_terminate_total{{{DB},tls="no_identity"}} 1"#),
            // Which fallback denied is still counted: the Servers'
            // `accessPolicy`, `deny` once routes are attached.
            r#"inbound_authz_rule_hits_total{rule_kind="default",rule_name="deny",srv_kind="server",srv_name="web",result="deny"} 3"#.to_owned(),
            r#"inbound_authz_rule_hits_total{rule_kind="default",rule_name="deny",srv_kind="server",srv_name="db",result="deny"} 1"#.to_owned(),
        ],
    );
    for name in [
        "inbound_http_authz_deny_total",
        "inbound_http_route_not_found_total",
        "inbound_tcp_authz_deny_total",
        "inbound_tcp_authz_terminate_total",
    ] {
        let lines = family(&text, name);
        assert!(!lines.is_empty(), "no {name} in\n{text}");
        for line in lines {
            assert!(!line.contains(",authz_"), "{line}");
        }
    }
    // The allow families keep the authorization.
    for line in family(&text, "inbound_http_authz_allow_total")
        .into_iter()
        .chain(family(&text, "inbound_tcp_authz_allow_total"))
    {
        assert!(line.contains(",authz_name=\""), "{line}");
    }
}

#[test]
fn the_default_server_is_named_by_its_policy_alone() {
    let mut registry = Registry::default();
    let config = PolicyConfig::default().with_default_policy(DefaultPolicy::Deny);
    let policy = compile(POLICY, &config, &mut registry);
    request(&policy, 9999, OUTSIDE, &get("/"));
    let connection = policy.evaluate_connection(9999, &client(OUTSIDE));
    connection.record(ClientTls::Plaintext);
    connection.record_terminate(ClientTls::Plaintext);

    let text = exposition(&registry);
    assert_lines(
        &text,
        &[
            r#"inbound_http_authz_deny_total{srv_group="",srv_kind="default",srv_name="deny",srv_port="9999",route_group="",route_kind="default",route_name="default",tls="no_identity"} 1"#.to_owned(),
            r#"inbound_tcp_authz_deny_total{srv_group="",srv_kind="default",srv_name="deny",srv_port="9999",tls="no_identity"} 1"#.to_owned(),
            r#"inbound_tcp_authz_terminate_total{srv_group="",srv_kind="default",srv_name="deny",srv_port="9999",tls="no_identity"} 1"#.to_owned(),
            r#"inbound_authz_rule_hits_total{rule_kind="default",rule_name="deny",srv_kind="default",srv_name="deny",result="deny"} 2"#.to_owned(),
        ],
    );
    assert!(!text.contains("default:"), "{text}");

    // An allowed request names the default server and its policy bare in
    // the series, the decision, the request extension and the explanation.
    let mut registry = Registry::default();
    let policy = compile(POLICY, &PolicyConfig::default(), &mut registry);
    let req = get("/");
    let decision = policy.evaluate(9999, &client(OUTSIDE), &req);
    assert_eq!(decision.server(), "all-unauthenticated");
    let Decision::Allow(allowed) = &decision else {
        panic!("{decision:?}");
    };
    assert_eq!(allowed.authz(), "all-unauthenticated");
    let authorized = allowed.authorized();
    assert_eq!(&*authorized.server, "all-unauthenticated");
    assert_eq!(&*authorized.authz, "all-unauthenticated");
    decision.record(ClientTls::Plaintext);
    assert_lines(
        &exposition(&registry),
        &[r#"inbound_http_authz_allow_total{srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="9999",route_group="",route_kind="default",route_name="default",authz_group="",authz_kind="default",authz_name="all-unauthenticated",tls="no_identity"} 1"#.to_owned()],
    );
    let explanation = policy.explain(&ExplainQuery::new(9999));
    assert_eq!(
        explanation.server,
        "all-unauthenticated (the default server: no Server covers port 9999)"
    );
    assert!(
        !explanation.to_string().contains("default:"),
        "{explanation}"
    );
}

/// A Server named as the default policy is, with that policy as its
/// `accessPolicy`: by name, its series and the default server's would be
/// one; `srv_kind` (and `srv_port`) keep them apart, in the rule hits too.
#[test]
fn a_server_named_as_the_default_policy_counts_apart_from_the_default_server() {
    let text = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: all-unauthenticated, namespace: ns}
spec:
  podSelector: {}
  port: 8080
  proxyProtocol: HTTP/1
  accessPolicy: all-unauthenticated
";
    let mut registry = Registry::default();
    let policy = compile(text, &PolicyConfig::default(), &mut registry);
    for _ in 0..2 {
        request(&policy, 8080, OUTSIDE, &get("/"));
    }
    for _ in 0..3 {
        request(&policy, 9999, OUTSIDE, &get("/"));
    }
    let route_and_authz = r#"route_group="",route_kind="default",route_name="default",authz_group="",authz_kind="default",authz_name="all-unauthenticated",tls="no_identity""#;
    assert_lines(
        &exposition(&registry),
        &[
            format!(
                r#"inbound_http_authz_allow_total{{srv_group="policy.linkerd.io",srv_kind="server",srv_name="all-unauthenticated",srv_port="8080",{route_and_authz}}} 2"#
            ),
            format!(
                r#"inbound_http_authz_allow_total{{srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="9999",{route_and_authz}}} 3"#
            ),
            r#"inbound_authz_rule_hits_total{rule_kind="default",rule_name="all-unauthenticated",srv_kind="server",srv_name="all-unauthenticated",result="allow"} 2"#.to_owned(),
            r#"inbound_authz_rule_hits_total{rule_kind="default",rule_name="all-unauthenticated",srv_kind="default",srv_name="all-unauthenticated",result="allow"} 3"#.to_owned(),
        ],
    );
}
