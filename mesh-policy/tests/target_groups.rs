//! A `targetRef` names its target's API group, and Linkerd refuses a
//! target in any other (its `targets_kind` reads an absent or empty group
//! as the core group): a `Server` is in `policy.linkerd.io`, an `HTTPRoute`
//! in `policy.linkerd.io` or `gateway.networking.k8s.io`, a `GRPCRoute` in
//! `gateway.networking.k8s.io` and a `Namespace` in the core group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use support::{ALL_NETWORKS, WEB_SERVER_AND_API_ROUTE, try_compile_web};

const GRPC_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]
  rules: [{matches: [{method: {service: emoji.Emoji}}]}]
";

fn compile(doc: &str) -> Result<(), mesh_core::resource::ResourceError> {
    try_compile_web(&format!(
        "{WEB_SERVER_AND_API_ROUTE}---\n{GRPC_ROUTE}---\n{ALL_NETWORKS}---\n{doc}"
    ))
}

fn authorization_policy(target: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: ap, namespace: ns}}
spec:
  targetRef: {target}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: all}}]
"
    )
}

fn rate_limit(target: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{name: rl, namespace: ns}}
spec:
  targetRef: {target}
  total: {{requestsPerSecond: 10}}
"
    )
}

#[test]
fn an_authorization_policy_target_in_its_kinds_group_is_accepted() {
    for target in [
        "{group: policy.linkerd.io, kind: Server, name: web}",
        "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}",
        "{group: gateway.networking.k8s.io, kind: GRPCRoute, name: rpc}",
        "{kind: Namespace, name: ns}",
        "{group: '', kind: Namespace, name: ns}",
        "{group: core, kind: Namespace, name: ns}",
    ] {
        compile(&authorization_policy(target)).unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}

#[test]
fn an_authorization_policy_target_in_another_group_is_refused() {
    for (target, group) in [
        ("{kind: Server, name: web}", "core"),
        ("{group: '', kind: Server, name: web}", "core"),
        ("{group: core, kind: Server, name: web}", "core"),
        (
            "{group: gateway.networking.k8s.io, kind: Server, name: web}",
            "gateway.networking.k8s.io",
        ),
        (
            "{group: policy.linkerd.io, kind: GRPCRoute, name: rpc}",
            "policy.linkerd.io",
        ),
        (
            "{group: example.com, kind: HTTPRoute, name: api}",
            "example.com",
        ),
        ("{kind: HTTPRoute, name: api}", "core"),
        (
            "{group: policy.linkerd.io, kind: Namespace, name: ns}",
            "policy.linkerd.io",
        ),
    ] {
        let err = compile(&authorization_policy(target)).unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidValue, "{target}: {err}");
        assert_eq!(err.field_path(), "spec.targetRef.group", "{target}: {err}");
        assert_eq!(err.name(), Some("ap"), "{target}: {err}");
        assert!(err.line().is_some(), "{target}: {err}");
        assert!(
            err.to_string().contains(&format!("group {group}")),
            "{target}: {err}"
        );
    }
}

#[test]
fn a_rate_limit_target_must_be_a_server_of_policy_linkerd_io() {
    compile(&rate_limit(
        "{group: policy.linkerd.io, kind: Server, name: web}",
    ))
    .unwrap();
    for (target, group) in [
        ("{kind: Server, name: web}", "core"),
        ("{group: core, kind: Server, name: web}", "core"),
        (
            "{group: example.com, kind: Server, name: web}",
            "example.com",
        ),
    ] {
        let err = compile(&rate_limit(target)).unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidValue, "{target}: {err}");
        assert_eq!(err.field_path(), "spec.targetRef.group", "{target}: {err}");
        assert_eq!(err.name(), Some("rl"), "{target}: {err}");
        assert!(
            err.to_string().contains(&format!("group {group}")),
            "{target}: {err}"
        );
        assert!(
            err.to_string().contains("policy.linkerd.io"),
            "{target}: {err}"
        );
    }
}
