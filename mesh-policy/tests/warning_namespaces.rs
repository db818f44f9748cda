//! Warnings name a resource as errors do, and as kubectl does: `Kind
//! namespace/name` for a document with a `metadata.namespace`, so that
//! resources of one name in two namespaces are told apart; `Kind name`
//! for one without.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_policy::{
    Compiled, Policy, PolicyConfig, PolicyMetrics, PolicySource, WarningKind, Workload,
};

/// An opaque Server with a field it does not read, an HTTPRoute under it
/// (not applied: an opaque port has no routes), and a ServiceProfile (a
/// kind authorization does not read): each warned about, in `shop`.
const SHOP: &str = "\
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
  proxyProtocol: opaque
  colour: blue
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin, namespace: shop}
spec:
  parentRefs:
    - {group: policy.linkerd.io, kind: Server, name: web}
  rules: [{matches: [{path: {type: PathPrefix, value: /admin}}]}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.shop.svc.cluster.local, namespace: shop}
spec: {}
";

fn compiled(text: &str) -> Compiled {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &Workload::new("shop").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The warning of `kind`, displayed.
fn warning(compiled: &Compiled, kind: WarningKind) -> (Option<String>, String) {
    let found: Vec<_> = compiled
        .warnings
        .iter()
        .filter(|w| w.kind == kind)
        .collect();
    let [warning] = found[..] else {
        panic!("one {kind:?} warning: {}", compiled.warnings)
    };
    (warning.namespace.clone(), warning.to_string())
}

#[test]
fn a_warning_about_a_namespaced_document_names_its_namespace() {
    let compiled = compiled(SHOP);
    assert_eq!(compiled.warnings.len(), 3, "{}", compiled.warnings);
    // An ignored field, as the resource reader lists it.
    let (namespace, ignored) = warning(&compiled, WarningKind::IgnoredField);
    assert_eq!(namespace.as_deref(), Some("shop"));
    assert_eq!(
        ignored,
        "policy.yaml: document 1 (Server shop/web): spec.colour: \
         field is not supported and was ignored"
    );
    // A warning policy writes about a document it read.
    let (namespace, not_applied) = warning(&compiled, WarningKind::NotApplied);
    assert_eq!(namespace.as_deref(), Some("shop"));
    assert!(
        not_applied
            .starts_with("policy.yaml: document 2 (HTTPRoute shop/admin): spec.parentRefs[0]: "),
        "{not_applied}"
    );
    // A kind authorization does not read.
    let (namespace, other) = warning(&compiled, WarningKind::UnsupportedKind);
    assert_eq!(namespace.as_deref(), Some("shop"));
    assert_eq!(
        other,
        "policy.yaml: document 3 (ServiceProfile shop/web.shop.svc.cluster.local): \
         kind ServiceProfile (linkerd.io/v1alpha2) is not enforced by authorization"
    );
}

#[test]
fn a_warning_about_a_document_without_a_namespace_names_it_alone() {
    let compiled = compiled(&SHOP.replace(", namespace: shop}", "}"));
    assert_eq!(compiled.warnings.len(), 3, "{}", compiled.warnings);
    for kind in [
        WarningKind::IgnoredField,
        WarningKind::NotApplied,
        WarningKind::UnsupportedKind,
    ] {
        let (namespace, text) = warning(&compiled, kind);
        assert_eq!(namespace, None, "{text}");
        assert!(!text.contains("shop/"), "{text}");
    }
    let (_, ignored) = warning(&compiled, WarningKind::IgnoredField);
    assert!(
        ignored.starts_with("policy.yaml: document 1 (Server web): spec.colour: "),
        "{ignored}"
    );
}

#[test]
fn a_namespace_that_is_not_one_is_not_shown() {
    // `Shop` is no DNS-1123 label: the Server's ObjectMeta refuses it, so
    // only the ServiceProfile, which is not read past its envelope, can
    // carry it into a warning.
    let text = SHOP.replace(
        "metadata: {name: web.shop.svc.cluster.local, namespace: shop}",
        "metadata: {name: web.shop.svc.cluster.local, namespace: Shop}",
    );
    let (_, other) = warning(&compiled(&text), WarningKind::UnsupportedKind);
    assert!(
        other.starts_with("policy.yaml: document 3 (ServiceProfile web.shop.svc.cluster.local): "),
        "{other}"
    );
}
