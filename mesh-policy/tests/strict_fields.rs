//! Every field of an authentication or authorization narrows who gets in,
//! so one that is not read (a misspelt `except`, `networks` or
//! `identities`) would silently widen it. Such a field is an error there,
//! and in a Server's `podSelector`, where elsewhere it is a warning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};

const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 80
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: admins}
spec: {identities: [\"spiffe://cluster.local/ns/default/sa/admin\"]}
---
";

fn compile(text: &str) -> Result<Policy, mesh_core::resource::ResourceError> {
    let text = format!("{SERVER}{text}");
    Policy::compile(
        &[PolicySource::new("p.yaml", &text)],
        &Workload::new("default"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|c| c.policy)
}

#[test]
fn an_unread_field_of_an_authentication_or_authorization_is_an_error() {
    for (doc, kind, path) in [
        (
            "apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: not-dmz}
spec:
  networks: [{cidr: 10.0.0.0/8, exept: [10.9.0.0/16]}]
",
            "NetworkAuthentication",
            "spec.networks[0].exept",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: m}
spec:
  identities: [\"*\"]
  identityRef: [{kind: ServiceAccount, name: web}]
",
            "MeshTLSAuthentication",
            "spec.identityRef",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: a}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: admins}]
  also: yes
",
            "AuthorizationPolicy",
            "spec.also",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: s}
spec:
  server: {name: web}
  client:
    unauthenticated: true
    network: [{cidr: 10.0.0.0/8}]
",
            "ServerAuthorization",
            "spec.client.network",
        ),
    ] {
        let err = compile(doc).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
        assert_eq!(err.resource_kind(), Some(kind), "{err}");
        assert_eq!(err.field_path(), path, "{err}");
        assert!(err.line().is_some(), "{err}");
    }
}

#[test]
fn an_unread_field_elsewhere_is_still_a_warning() {
    let compiled = Policy::compile(
        &[PolicySource::new(
            "p.yaml",
            &SERVER.replace("port: 80", "port: 80\n  colour: blue"),
        )],
        &Workload::new("default"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    assert_eq!(compiled.warnings.iter().count(), 1);
}

/// A Server's `podSelector` says which workloads its port (and whatever
/// its `accessPolicy` and authorizations open there) applies to. A field
/// of it that is not read, such as a misspelt `matchLabels`, leaves the
/// selector empty, and an empty selector selects every pod: a Server
/// meant for another workload would take this one's port, open to whom
/// it names. So such a field is an error.
#[test]
fn an_unread_field_of_a_servers_pod_selector_is_an_error() {
    for (selector, path) in [
        ("{matchLabel: {app: admin}}", "spec.podSelector.matchLabel"),
        (
            "{matchExpression: [{key: app, operator: In, values: [admin]}]}",
            "spec.podSelector.matchExpression",
        ),
        (
            "{matchExpressions: [{key: app, operator: In, value: [admin]}]}",
            "spec.podSelector.matchExpressions[0].value",
        ),
    ] {
        let text = format!(
            "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: admin-open}}
spec:
  podSelector: {selector}
  port: 9990
  accessPolicy: all-unauthenticated
"
        );
        let result = Policy::compile(
            &[PolicySource::new("p.yaml", &text)],
            &Workload::new("default").with_label("app", "web"),
            &PolicyConfig::default().with_default_policy(mesh_policy::DefaultPolicy::Deny),
            &PolicyMetrics::default(),
        );
        let err = match result {
            Ok(compiled) => panic!(
                "{selector}: compiled, and port 9990 of app=web is {:?}",
                compiled.policy.covered_ports().collect::<Vec<_>>()
            ),
            Err(err) => err,
        };
        assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
        assert_eq!(err.resource_kind(), Some("Server"), "{err}");
        assert_eq!(err.field_path(), path, "{err}");
        assert!(err.line().is_some(), "{err}");
    }
}

/// A route under a Server says which requests its authorizations (and
/// filters) apply to, and on a Server with routes a request no route
/// matches is refused. A field of the route that is not read widens it:
/// a rule whose `matches` is misspelt matches every request, a path
/// match without its `value` matches `/`, a route without `hostnames`
/// matches every host, and a header modifier that does not `remove` a
/// header lets the client's reach the application. So such a field is an
/// error in a route with a Server parent.
#[test]
fn an_unread_field_of_a_route_under_a_server_is_an_error() {
    const ROUTES: &str = "apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: anywhere}
spec: {networks: [{cidr: 0.0.0.0/0}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: public-anyone}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: public}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: anywhere}]
---
";
    for (kind, spec, path) in [
        (
            "HTTPRoute",
            "  rules: [{matche: [{path: {type: PathPrefix, value: /public}}]}]",
            "spec.rules[0].matche",
        ),
        (
            "HTTPRoute",
            "  rules: [{matches: [{path: {type: PathPrefix, vlue: /public}}]}]",
            "spec.rules[0].matches[0].path.vlue",
        ),
        (
            "HTTPRoute",
            "  hostname: [public.example.com]",
            "spec.hostname",
        ),
        (
            "HTTPRoute",
            "  rules:
    - matches: [{path: {type: PathPrefix, value: /public}}]
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remov: [x-user]}}]",
            "spec.rules[0].filters[0].requestHeaderModifier.remov",
        ),
        (
            "GRPCRoute",
            "  rules: [{matches: [{method: {service: shop.Public, metod: List}}]}]",
            "spec.rules[0].matches[0].method.metod",
        ),
    ] {
        let api = if kind == "GRPCRoute" {
            "gateway.networking.k8s.io/v1"
        } else {
            "policy.linkerd.io/v1beta3"
        };
        let route = format!(
            "apiVersion: {api}
kind: {kind}
metadata: {{name: public}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
{spec}
"
        );
        let text = ROUTES.replace(
            "kind: HTTPRoute, name: public",
            &format!("kind: {kind}, name: public"),
        ) + &route;
        let err = match compile(&text) {
            Ok(policy) => {
                let client = mesh_policy::Client {
                    tls: mesh_policy::ClientTls::Plaintext,
                    addr: Some("192.0.2.1".parse().unwrap()),
                };
                let admin = http::Request::get("/admin").body(()).unwrap();
                panic!(
                    "{path}: compiled, and GET /admin from anyone is allowed: {}",
                    policy.evaluate(80, &client, &admin).is_allowed()
                )
            }
            Err(err) => err,
        };
        assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
        assert_eq!(err.resource_kind(), Some(kind), "{err}");
        assert_eq!(err.field_path(), path, "{err}");
        assert!(err.line().is_some(), "{err}");
    }

    // Fields the Gateway API has that inbound routes do not read, and
    // fields of what they do not apply, stay warnings.
    for rule in [
        "{sessionPersistence: {sessionName: s}}",
        "{backendRefs: [{name: web, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]}]}",
        "{filters: [{type: CORS, cors: {allowOrigins: [\"*\"]}}]}",
    ] {
        let route = format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
  rules: [{rule}]
"
        );
        assert!(compile(&route).is_ok(), "{rule}");
    }

    // A route with no Server parent is not authorization's: a warning.
    let outbound = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: out}
spec:
  parentRefs: [{group: core, kind: Service, name: web}]
  rules: [{matche: [{path: {type: PathPrefix, value: /public}}]}]
";
    assert!(compile(outbound).is_ok());
}
