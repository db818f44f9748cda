//! Authorization as a policy copied from Linkerd decides it when the mesh's
//! clients carry SPIFFE IDs: wildcards over every namespace of the trust
//! domain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_policy::{PolicyConfig, Workload};
use support::{T::*, Want::*, *};

/// The `web` Server of the reference tests, open to the clients of a
/// `MeshTLSAuthentication` whose `identities` are `ids`.
fn by_identities(ids: &str) -> String {
    format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: who, namespace: ns}}
spec:
  identities: {ids}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: by-id, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: who}}]
"
    )
}

fn decide_id(policy: &mesh_policy::Policy, id: &'static str) -> Want {
    decide(policy, 80, Id(id), Some("10.0.0.1"), "GET", "/api", &[])
}

/// In Linkerd, `*.cluster.local` (or `*.linkerd.cluster.local`, or
/// `*.serviceaccount.identity.linkerd.cluster.local`) admits every meshed
/// client of the cluster's trust domain, each named
/// `<sa>.<ns>.serviceaccount.identity.linkerd.cluster.local`. The same
/// clients carrying their SPIFFE IDs must get in too, as they do for the
/// namespace wildcard `*.<ns>.serviceaccount...`.
#[test]
fn a_wildcard_over_every_namespace_admits_the_trust_domains_spiffe_ids() {
    for pattern in [
        "*.serviceaccount.identity.linkerd.cluster.local",
        "*.identity.linkerd.cluster.local",
        "*.linkerd.cluster.local",
        "*.cluster.local",
        "*.Cluster.Local",
    ] {
        let policy = compile(
            &by_identities(&format!("[\"{pattern}\"]")),
            &web_workload(),
            &PolicyConfig::default(),
        );
        for id in [
            "spiffe://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/ns/sa/build.bot",
            "b.a.serviceaccount.identity.linkerd.cluster.local",
        ] {
            assert_eq!(
                decide_id(&policy, id),
                Allow("web", "api", "by-id"),
                "{pattern} admits {id}"
            );
        }
        for id in [
            // Another trust domain.
            "spiffe://example.org/ns/a/sa/b",
            // Not a service account's SPIFFE ID.
            "spiffe://cluster.local/ns/a/sa/b/c",
            "spiffe://cluster.local/ns/a/b/sa/c",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/workload",
        ] {
            // Some are no identity a certificate could carry.
            if mesh_core::Identity::parse(id).is_err() {
                continue;
            }
            assert_eq!(
                decide_id(&policy, id),
                Deny("web"),
                "{pattern} refuses {id}"
            );
        }
        for tls in [Plain, NoCert] {
            assert_eq!(
                decide(&policy, 80, tls, Some("10.0.0.1"), "GET", "/api", &[]),
                Deny("web"),
                "{pattern} refuses {tls:?}"
            );
        }
    }
}

/// Only a wildcard that covers the workload's own form of its accounts
/// (its control-plane namespace and trust domain, whole labels) speaks for
/// the SPIFFE IDs of its trust domain.
#[test]
fn a_wildcard_over_another_form_admits_no_spiffe_id() {
    let mesh = web_workload();
    let mut other_cp = Workload::new("ns").with_label("app", "web");
    other_cp.control_plane_namespace = "mesh".to_owned();
    for (workload, pattern) in [
        (&mesh, "*.example.org"),
        (&mesh, "*.serviceaccount.identity.linkerd.example.org"),
        (&mesh, "*.inkerd.cluster.local"),
        (&mesh, "*.x.linkerd.cluster.local"),
        (&other_cp, "*.linkerd.cluster.local"),
    ] {
        let policy = compile(
            &by_identities(&format!("[\"{pattern}\"]")),
            workload,
            &PolicyConfig::default(),
        );
        assert_eq!(
            decide_id(&policy, "spiffe://cluster.local/ns/x/sa/b"),
            Deny("web"),
            "{pattern} under control plane {}",
            workload.control_plane_namespace
        );
    }
    // Under the `mesh` control plane, its own form covers the accounts.
    let policy = compile(
        &by_identities("[\"*.mesh.cluster.local\"]"),
        &other_cp,
        &PolicyConfig::default(),
    );
    assert_eq!(
        decide_id(&policy, "spiffe://cluster.local/ns/x/sa/b"),
        Allow("web", "api", "by-id")
    );
}
