//! An `HTTPRoute` of `policy.linkerd.io` and one of the Gateway API
//! (`gateway.networking.k8s.io`) are two kinds of resource, and may share
//! a name, as they do in a cluster while routes move from one to the
//! other. A policy's `targetRef` tells them apart by its `group`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};
use support::{T::*, Want::*, *};

const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web }
spec:
  podSelector: {}
  port: 8080
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: api }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /admin } }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /public } }] }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: { name: anywhere }
spec: { networks: [{ cidr: 0.0.0.0/0 }] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: public-anyone }
spec:
  targetRef: { group: gateway.networking.k8s.io, kind: HTTPRoute, name: api }
  requiredAuthenticationRefs: [{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anywhere }]
"#;

const IP: Option<&str> = Some("10.0.0.7");

fn compile_text(text: &str) -> Result<Policy, mesh_core::resource::ResourceError> {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &Workload::new("default"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|c| c.policy)
}

#[test]
fn two_routes_of_one_name_in_two_groups_are_two_routes_and_the_target_group_picks_one() {
    let policy = compile_text(POLICY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/public/x", &[]),
        Allow("web", "api", "public-anyone")
    );
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/admin", &[]),
        Deny("web")
    );

    let other = POLICY.replace(
        "targetRef: { group: gateway.networking.k8s.io,",
        "targetRef: { group: policy.linkerd.io,",
    );
    let policy = compile_text(&other).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/admin", &[]),
        Allow("web", "api", "public-anyone")
    );
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/public/x", &[]),
        Deny("web")
    );
}

/// A route target without a group is in the core group, as Linkerd reads
/// it, which has no routes: it is refused, whichever route it could be.
#[test]
fn a_target_that_could_be_either_route_is_an_error() {
    let no_group = POLICY.replace(
        "targetRef: { group: gateway.networking.k8s.io, kind",
        "targetRef: { kind",
    );
    let err = compile_text(&no_group).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
    assert_eq!(err.field_path(), "spec.targetRef.group", "{err}");
    assert!(err.to_string().contains("group"), "{err}");
    assert!(err.line().is_some(), "{err}");
}

#[test]
fn two_routes_of_one_name_in_one_group_are_still_duplicates() {
    let twice = POLICY.replace(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute",
        "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute",
    );
    let err = compile_text(&twice).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), Kind::DuplicateName, "{err}");
}

/// A route alone with its name is found whichever route group the target
/// writes: only two routes sharing a name need the group to pick one.
#[test]
fn a_route_alone_with_its_name_is_found_by_name() {
    let one = POLICY.replace(
        "  rules: [{ matches: [{ path: { type: PathPrefix, value: /admin } }] }]",
        "  rules: [{ matches: [{ path: { type: PathPrefix, value: /admin } }] }]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }",
    )
    .replacen("kind: HTTPRoute\nmetadata: { name: api }", "kind: HTTPRoute\nmetadata: { name: admin }", 1);
    let policy = compile_text(&one).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/public/x", &[]),
        Allow("web", "api", "public-anyone")
    );
}
