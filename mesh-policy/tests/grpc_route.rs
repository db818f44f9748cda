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
    // The HTTPRoute of the same name is another route, which a gRPC
    // Server does not serve: its path is on no route.
    let health = Request::get("/healthz").body(()).unwrap();
    assert!(matches!(
        policy.evaluate(8080, &from("127.0.0.1"), &health),
        Decision::NotFound(_)
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
        error.contains("(GRPCRoute emojivoto/emoji): spec.rules[0].matches[0].method.method"),
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
        error.contains("(GRPCRoute emojivoto/emoji): spec.rules[0].filters[0]: a GRPCRoute rule may not hold a RequestRedirect filter"),
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
fn a_grpc_server_sets_its_http_routes_aside_then_headers_decide() {
    // Linkerd serves a gRPC Server's GRPCRoutes alone, so the call goes to
    // a GRPCRoute even against an older HTTPRoute's exact path, which by
    // the HTTPRoute order would outrank an expression.
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

fn compile_with_warnings(text: &str) -> (Policy, Vec<String>) {
    let compiled = Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &Workload::new("emojivoto"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    let warnings = compiled.warnings.iter().map(ToString::to_string).collect();
    (compiled.policy, warnings)
}

/// A Server of `protocol` with an `HTTPRoute` for `/healthz` and a
/// `GRPCRoute` for `ListAll`, each opened to loopback by its own
/// `AuthorizationPolicy`, and nothing else authorized.
fn both_kinds(protocol: &str) -> String {
    format!(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: emoji, namespace: emojivoto}}
spec: {{podSelector: {{}}, port: 8080, proxyProtocol: {protocol}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: health, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: emoji}}]
  rules: [{{matches: [{{path: {{type: Exact, value: /healthz}}}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: list, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: emoji}}]
  rules: [{{matches: [{{method: {{service: emojivoto.v1.EmojiService, method: ListAll}}}}]}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: loopback, namespace: emojivoto}}
spec: {{networks: [{{cidr: 127.0.0.0/8}}]}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: health-from-loopback, namespace: emojivoto}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: health}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: list-from-loopback, namespace: emojivoto}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: GRPCRoute, name: list}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
"#
    )
}

/// `decision` as `allow <route>`, `deny <route>` or `not found`.
fn outcome(decision: Decision<'_>) -> String {
    match decision {
        Decision::Allow(a) => format!("allow {}", a.route()),
        Decision::Deny(d) => format!("deny {}", d.route()),
        Decision::NotFound(_) => "not found".to_owned(),
    }
}

#[test]
fn a_grpc_server_serves_its_grpc_routes_and_sets_its_http_routes_aside() {
    let (policy, warnings) = compile_with_warnings(&both_kinds("gRPC"));
    let loopback = from("127.0.0.1");
    let list = call("/emojivoto.v1.EmojiService/ListAll");
    assert_eq!(
        outcome(policy.evaluate(8080, &loopback, &list)),
        "allow list"
    );
    let health = Request::get("/healthz").body(()).unwrap();
    assert_eq!(
        outcome(policy.evaluate(8080, &loopback, &health)),
        "not found"
    );
    let set_aside: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("(HTTPRoute emojivoto/health)"))
        .collect();
    assert_eq!(set_aside.len(), 1, "{warnings:#?}");
    assert!(
        set_aside[0].starts_with(
            "policy.yaml: document 2 (HTTPRoute emojivoto/health): spec.parentRefs[0]: ",
        ) && set_aside[0].contains(
            "HTTPRoute emojivoto/health targets Server emoji whose proxyProtocol is gRPC: \
                 Linkerd serves a gRPC Server's GRPCRoutes only"
        ),
        "{set_aside:?}"
    );
    let policy_warning: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("(AuthorizationPolicy emojivoto/health-from-loopback)"))
        .collect();
    assert_eq!(policy_warning.len(), 1, "{warnings:#?}");
    assert!(
        policy_warning[0].contains("spec.targetRef: ")
            && policy_warning[0].contains("HTTPRoute emojivoto/health")
            && policy_warning[0].contains("authorizes nothing"),
        "{policy_warning:?}"
    );
    // The GRPCRoute served is not warned about, nor its policy.
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("GRPCRoute emojivoto/list)") || w.contains("list-from-loopback")),
        "{warnings:#?}"
    );
}

#[test]
fn an_http_server_serves_its_http_routes_and_sets_its_grpc_routes_aside() {
    // `unknown` (detected), `HTTP/1` and `HTTP/2` alike, as Linkerd serves
    // their Servers' HTTPRoutes only.
    for protocol in ["unknown", "HTTP/1", "HTTP/2"] {
        let (policy, warnings) = compile_with_warnings(&both_kinds(protocol));
        let loopback = from("127.0.0.1");
        let health = Request::get("/healthz").body(()).unwrap();
        assert_eq!(
            outcome(policy.evaluate(8080, &loopback, &health)),
            "allow health",
            "{protocol}"
        );
        // The call the GRPCRoute would have taken, and its policy opened
        // to loopback, is on no route.
        let list = call("/emojivoto.v1.EmojiService/ListAll");
        assert_eq!(
            outcome(policy.evaluate(8080, &loopback, &list)),
            "not found",
            "{protocol}"
        );
        let expected = format!(
            "policy.yaml: document 3 (GRPCRoute emojivoto/list): spec.parentRefs[0]: GRPCRoute emojivoto/list \
             targets Server emoji whose proxyProtocol is {protocol}: Linkerd serves a Server's \
             GRPCRoutes only with proxyProtocol: gRPC; it is not applied"
        );
        assert!(
            warnings.iter().any(|w| w.starts_with(&expected)),
            "{protocol}: no {expected:?} in {warnings:#?}"
        );
        assert!(
            warnings.iter().any(|w| w
                .contains("(AuthorizationPolicy emojivoto/list-from-loopback)")
                && w.contains("authorizes nothing")),
            "{protocol}: {warnings:#?}"
        );
        assert!(
            !warnings.iter().any(|w| w.contains("health")),
            "{protocol}: {warnings:#?}"
        );
    }
}

#[test]
fn a_server_without_a_route_of_its_kind_takes_its_default_route() {
    // The routes of the other kind are set aside; what is left is the
    // default route, open by the Server's authorizations only (here none:
    // its accessPolicy, deny, refuses), whatever targets the routes.
    for (protocol, path) in [
        ("gRPC", "/healthz"),
        ("unknown", "/emojivoto.v1.EmojiService/ListAll"),
    ] {
        let text = both_kinds(protocol);
        let kept = if protocol == "gRPC" {
            "GRPCRoute"
        } else {
            "HTTPRoute"
        };
        // Drop the documents of the kind the Server serves, and the policy
        // that targets it.
        let docs: Vec<&str> = text
            .split("---\n")
            .filter(|d| !d.contains(&format!("kind: {kept}\n")))
            .filter(|d| !d.contains(&format!("kind: {kept}, name")))
            .collect();
        assert_eq!(docs.len(), 4, "{protocol}");
        let (policy, _) = compile_with_warnings(&docs.join("---\n"));
        let loopback = from("127.0.0.1");
        let request = call(path);
        assert_eq!(
            outcome(policy.evaluate(8080, &loopback, &request)),
            "deny default",
            "{protocol} {path}"
        );
        // A Server-wide authorization opens the default route.
        let open = format!(
            "{}---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: server-from-loopback, namespace: emojivoto}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: emoji}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
",
            docs.join("---\n")
        );
        let (policy, _) = compile_with_warnings(&open);
        assert_eq!(
            outcome(policy.evaluate(8080, &loopback, &request)),
            "allow default",
            "{protocol} {path}"
        );
    }
}

/// Linkerd's policy controller gives a Server without routes of its kind
/// a `default` route and, for an HTTP one, a `probe` route that opens the
/// pod's probe paths to `GET` (`default_inbound_http_routes`); a gRPC
/// Server without `GRPCRoute`s gets the `default` gRPC route alone
/// (`grpc_routes` in its inbound index), as its `GRPCRoute`s are all its
/// proxies are sent. So a probe path on a gRPC port is decided by the
/// Server's own authorizations, and `deny` refuses it.
#[test]
fn a_grpc_server_without_grpc_routes_has_no_probe_route() {
    for (protocol, want) in [
        ("gRPC", "deny default"),
        ("unknown", "allow probe"),
        ("HTTP/2", "allow probe"),
    ] {
        let text = format!(
            "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: emoji, namespace: emojivoto}}
spec: {{podSelector: {{}}, port: 8080, proxyProtocol: {protocol}}}
"
        );
        let (policy, warnings) = compile_with_warnings(&text);
        assert!(warnings.is_empty(), "{warnings:#?}");
        for path in mesh_policy::DEFAULT_PROBE_PATHS {
            let probe = Request::get(path).body(()).unwrap();
            assert_eq!(
                outcome(policy.evaluate(8080, &from("10.1.2.3"), &probe)),
                want,
                "{protocol} GET {path}"
            );
        }
    }
}
