//! Names the workload is described with, and reloads that race.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_policy::{PolicyConfig, Workload};
use support::{T::*, Want::*, *};

const IN: Option<&str> = Some("10.1.2.3");

const POLICY: &str = "
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 80
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: partners}
spec:
  identities:
    - api.partners.serviceaccount.identity.linkerd.cluster.local
    - '*.ops.serviceaccount.identity.linkerd.cluster.local'
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-partners}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web}
  requiredAuthenticationRefs:
    - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: partners}
";

#[test]
fn a_control_plane_namespace_in_uppercase_is_taken_in_lowercase() {
    // Kubernetes names are lowercase and DNS-style identities are matched
    // without regard to case, so `Linkerd` is the namespace `linkerd`: the
    // DNS-style names of the policy still have their SPIFFE forms.
    let mut workload = Workload::new("web");
    workload.control_plane_namespace = "Linkerd".to_owned();
    let policy = compile(POLICY, &workload, &PolicyConfig::default());
    let allowed = Allow("web", "default", "web-partners");
    for (id, want) in [
        (
            "api.partners.serviceaccount.identity.linkerd.cluster.local",
            allowed,
        ),
        ("spiffe://cluster.local/ns/partners/sa/api", allowed),
        ("spiffe://cluster.local/ns/ops/sa/deploy", allowed),
        ("spiffe://cluster.local/ns/partners/sa/web", Deny("web")),
    ] {
        assert_eq!(
            decide(&policy, 80, Id(id), IN, "GET", "/", &[]),
            want,
            "{id}"
        );
    }
}

#[test]
fn a_control_plane_namespace_in_uppercase_gives_lowercase_identities() {
    let mut workload = Workload::new("web");
    workload.control_plane_namespace = "Linkerd".to_owned();
    let [spiffe, dns] = workload
        .service_account_identities("api", "partners")
        .unwrap();
    assert_eq!(spiffe.as_str(), "spiffe://cluster.local/ns/partners/sa/api");
    assert_eq!(
        dns.as_str(),
        "api.partners.serviceaccount.identity.linkerd.cluster.local"
    );
}
