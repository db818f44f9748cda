//! Every field of an authentication or authorization narrows who gets in,
//! so one that is not read (a misspelt `except`, `networks` or
//! `identities`) would silently widen it. Such a field is an error there,
//! where elsewhere it is a warning.
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
