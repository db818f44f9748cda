//! A namespace is a trust boundary: what one namespace's resources say
//! cannot open another namespace's Servers. Linkerd refuses a route whose
//! Server parent is in another namespace, so an `AuthorizationPolicy`
//! there cannot authorize requests to that Server through it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};

/// The `victim` namespace's own policy: only its admin may call `web`.
const VICTIM: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web, namespace: victim }
spec:
  podSelector: { matchLabels: { app: web } }
  port: 8080
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: { name: admin, namespace: victim }
spec: { identities: ["spiffe://cluster.local/ns/victim/sa/admin"] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web-admin, namespace: victim }
spec:
  targetRef: { group: policy.linkerd.io, kind: Server, name: web }
  requiredAuthenticationRefs:
    - { group: policy.linkerd.io, kind: MeshTLSAuthentication, name: admin }
"#;

/// What the `other` namespace writes: a route onto `victim`'s Server and
/// a policy that lets anyone use it.
fn other(parent_ns: &str, route_ns: &str) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: grab, namespace: {route_ns} }}
spec:
  parentRefs: [{{ group: policy.linkerd.io, kind: Server, name: web, namespace: {parent_ns} }}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{ name: anyone, namespace: {route_ns} }}
spec: {{ networks: [{{ cidr: 0.0.0.0/0 }}, {{ cidr: "::/0" }}] }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: grab-anyone, namespace: {route_ns} }}
spec:
  targetRef: {{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: grab }}
  requiredAuthenticationRefs:
    - {{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anyone }}
"#
    )
}

fn compile(other: &str) -> Result<Policy, mesh_core::resource::ResourceError> {
    Policy::compile(
        &[
            PolicySource::new("victim.yaml", VICTIM),
            PolicySource::new("other.yaml", other),
        ],
        &Workload::new("victim").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|c| c.policy)
}

#[test]
fn a_route_cannot_attach_to_a_server_in_another_namespace() {
    let err = compile(&other("victim", "attacker"))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
    assert_eq!(err.origin(), "other.yaml");
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some("HTTPRoute"), Some("grab"))
    );
    assert_eq!(err.field_path(), "spec.parentRefs[0].namespace", "{err}");
}

#[test]
fn a_route_may_name_its_own_namespace_as_its_parents() {
    let policy = compile(&other("victim", "victim")).unwrap();
    // The victim namespace's own route and policy apply, as they should.
    let want = support::Want::Allow("web", "grab", "grab-anyone");
    let got = support::decide(
        &policy,
        8080,
        support::T::Plain,
        Some("203.0.113.7"),
        "GET",
        "/",
        &[],
    );
    assert_eq!(got, want);
}

#[test]
fn a_route_may_not_name_a_server_parent_by_port_or_section() {
    for (field, extra) in [("port", "port: 8080"), ("sectionName", "sectionName: http")] {
        let text = other("victim", "victim").replace(
            "namespace: victim }]",
            &format!("namespace: victim, {extra} }}]"),
        );
        let err = compile(&text).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
        assert_eq!(
            err.field_path(),
            format!("spec.parentRefs[0].{field}"),
            "{err}"
        );
    }
}

#[test]
fn a_policy_whose_target_names_another_namespace_is_refused() {
    // Linkerd's AuthorizationPolicy targets only resources of its own
    // namespace. Read without its `namespace`, this target would be
    // victim's own `web` and `grab`, opened to anyone, which is not what
    // was written.
    for (kind, name) in [("Server", "web"), ("HTTPRoute", "grab")] {
        let text = format!(
            "{}---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: elsewhere, namespace: victim }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: {kind}, name: {name}, namespace: staging }}
  requiredAuthenticationRefs:
    - {{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anyone }}
",
            other("victim", "victim")
        );
        let err = compile(&text).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
        assert_eq!(
            (err.resource_kind(), err.name()),
            (Some("AuthorizationPolicy"), Some("elsewhere"))
        );
        assert_eq!(err.field_path(), "spec.targetRef.namespace", "{err}");
    }
    // Naming its own namespace is allowed.
    let text = format!(
        "{}---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: own, namespace: victim }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: web, namespace: victim }}
  requiredAuthenticationRefs:
    - {{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anyone }}
",
        other("victim", "victim")
    );
    compile(&text).unwrap();
}
