//! The authorization families name the group and kind of the Server, the
//! route and the authorization beside their names, as linkerd2-proxy does:
//! resources of one name and different kinds count in different series.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::Request;
use mesh_policy::{Client, ClientTls, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// An `AuthorizationPolicy` and a `ServerAuthorization`, both named
/// `clients`, for the Server `app`: the first for clients of 10.0.0.0/8,
/// the second for clients of 192.168.0.0/16, so that each decides for
/// its own clients.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: app, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: inside, namespace: ns}
spec:
  networks: [{cidr: 10.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: clients, namespace: ns}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: app}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: inside}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: clients, namespace: ns}
spec:
  server: {name: app}
  client:
    unauthenticated: true
    networks: [{cidr: 192.168.0.0/16}]
";

fn compile(registry: &mut Registry) -> Policy {
    Policy::compile(
        &[PolicySource::new("policy.yaml", POLICY)],
        &Workload::new("ns").with_label("app", "web"),
        &PolicyConfig::default(),
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

const SRV: &str =
    r#"srv_group="policy.linkerd.io",srv_kind="server",srv_name="app",srv_port="8080""#;
const POLICY_AUTHZ: &str =
    r#"authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="clients""#;
const SERVER_AUTHZ: &str =
    r#"authz_group="policy.linkerd.io",authz_kind="serverauthorization",authz_name="clients""#;

#[test]
fn an_authorization_policy_and_a_server_authorization_of_one_name_count_apart() {
    let mut registry = Registry::default();
    let policy = compile(&mut registry);
    for (addr, n) in [("10.1.2.3", 2), ("192.168.1.2", 3)] {
        for _ in 0..n {
            let req = Request::get("/").body(()).unwrap();
            let decision = policy.evaluate(8080, &client(addr), &req);
            assert!(decision.is_allowed(), "{addr}");
            decision.record(ClientTls::Plaintext);
            let decision = policy.evaluate_connection(8080, &client(addr));
            assert!(decision.is_allowed(), "{addr}");
            decision.record(ClientTls::Plaintext);
        }
    }

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let route = r#"route_group="",route_kind="default",route_name="default""#;
    for line in [
        format!(
            r#"inbound_http_authz_allow_total{{{SRV},{route},{POLICY_AUTHZ},tls="no_identity"}} 2"#
        ),
        format!(
            r#"inbound_http_authz_allow_total{{{SRV},{route},{SERVER_AUTHZ},tls="no_identity"}} 3"#
        ),
        format!(r#"inbound_tcp_authz_allow_total{{{SRV},{POLICY_AUTHZ},tls="no_identity"}} 2"#),
        format!(r#"inbound_tcp_authz_allow_total{{{SRV},{SERVER_AUTHZ},tls="no_identity"}} 3"#),
    ] {
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
}

#[test]
fn a_policy_named_deny_counts_apart_from_the_access_policy_deny() {
    // The Server's `accessPolicy` is `deny`, Linkerd's default kind; an
    // `AuthorizationPolicy` of the same name is a resource of its own.
    let text = POLICY.replace("name: clients", "name: deny");
    let mut registry = Registry::default();
    let policy = Policy::compile(
        &[PolicySource::new("policy.yaml", &text)],
        &Workload::new("ns").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::register(&mut registry),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .policy;
    for addr in ["10.1.2.3", "203.0.113.7"] {
        policy
            .evaluate_connection(8080, &client(addr))
            .record(ClientTls::Plaintext);
    }

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        format!(
            r#"inbound_tcp_authz_allow_total{{{SRV},authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="deny",tls="no_identity"}} 1"#
        ),
        format!(r#"inbound_tcp_authz_deny_total{{{SRV},tls="no_identity"}} 1"#),
    ] {
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
}

#[test]
fn routes_and_the_default_server_carry_their_kinds() {
    let text = format!(
        "{POLICY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: root, namespace: ns}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: app}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /}}}}]}}]
"
    );
    let mut registry = Registry::default();
    let policy = Policy::compile(
        &[PolicySource::new("policy.yaml", &text)],
        &Workload::new("ns").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::register(&mut registry),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .policy;
    for port in [8080, 9999] {
        let req = Request::get("/").body(()).unwrap();
        policy
            .evaluate(port, &client("203.0.113.7"), &req)
            .record(ClientTls::Plaintext);
    }

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        format!(
            r#"inbound_http_authz_deny_total{{{SRV},route_group="gateway.networking.k8s.io",route_kind="HTTPRoute",route_name="root",tls="no_identity"}} 1"#
        ),
        r#"inbound_http_authz_allow_total{srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="9999",route_group="",route_kind="default",route_name="default",authz_group="",authz_kind="default",authz_name="all-unauthenticated",tls="no_identity"} 1"#.to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
}
