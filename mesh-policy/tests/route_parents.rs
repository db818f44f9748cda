//! An `HTTPRoute` whose parent is a core `Service` (or Linkerd's
//! `EgressNetwork`) is an outbound route:
//! authorization has no use for it, and that is no mistake to warn about.
//! A route whose parents are neither Servers nor Services (a Gateway, a
//! misspelt kind) is used by nothing here, and is warned about.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, WarningKind, Workload};

fn warnings(parents: &str) -> Vec<(WarningKind, String, String)> {
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: books, namespace: ns}}
spec:
  parentRefs: {parents}
  rules: [{{backendRefs: [{{name: books, port: 7000}}]}}]
"
    );
    let compiled = Policy::compile(
        &[PolicySource::new("p.yaml", &text)],
        &Workload::new("ns"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    compiled
        .warnings
        .iter()
        .map(|w| (w.kind, w.field_path.clone(), w.message.clone()))
        .collect()
}

#[test]
fn a_route_whose_parents_are_services_is_not_warned_about() {
    for parents in [
        "[{group: core, kind: Service, name: books}]",
        "[{group: '', kind: Service, name: books, port: 7000}]",
        "[{group: core, kind: Service, name: books}, {group: core, kind: Service, name: authors}]",
        // Linkerd's egress routes: outbound too.
        "[{group: policy.linkerd.io, kind: EgressNetwork, name: all-egress-traffic, port: 80}]",
        "[{group: core, kind: Service, name: books}, {group: policy.linkerd.io, kind: EgressNetwork, name: egress}]",
    ] {
        assert_eq!(warnings(parents), vec![], "{parents}");
    }
}

#[test]
fn a_route_with_a_parent_that_is_neither_a_server_nor_a_service_is_warned_about() {
    for parents in [
        "[{name: gateway}]",
        "[{group: core, kind: Servise, name: books}]",
        "[{group: core, kind: Service, name: books}, {kind: Gateway, name: gateway}]",
        "[]",
    ] {
        let got = warnings(parents);
        let [(kind, field, message)] = &got[..] else {
            panic!("{parents}: {got:?}")
        };
        assert_eq!(*kind, WarningKind::NotApplied, "{parents}");
        assert_eq!(field, "spec.parentRefs", "{parents}");
        assert!(
            message.contains("no parent is a Server"),
            "{parents}: {message}"
        );
    }
}
