//! `sidecar check` warns of each route attached to an `EgressNetwork` that
//! does not apply to the workload: one that no `EgressNetwork` of the
//! policy is (a misspelt `parentRefs` entry), one of another namespace,
//! and one of the global egress namespace where the workload's namespace
//! has networks of its own. Each is read and serves no request, as
//! Linkerd's policy controller marks a route whose parent is missing
//! (`Accepted: False`, `NoMatchingParent`). A route on a network that
//! applies is not warned about.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::check::{self, CheckOptions, Report, Status};

/// A network in the workload's namespace, one in the global egress
/// namespace and one in `books`, and a route on each and on a network
/// written nowhere.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: local, namespace: emojivoto}
spec: {trafficPolicy: Allow}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: global, namespace: linkerd-egress}
spec: {trafficPolicy: Allow}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: theirs, namespace: books}
spec: {trafficPolicy: Allow}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: applies, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: local}]
  rules: [{matches: [{path: {value: /get}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: misspelt, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: lokal}]
  rules: [{matches: [{path: {value: /get}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: emojivoto}
spec:
  parentRefs:
  - {group: policy.linkerd.io, kind: EgressNetwork, name: theirs, namespace: books}
  rules: [{matches: [{path: {value: /get}}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: hidden, namespace: emojivoto}
spec:
  hostnames: [httpbin.org]
  parentRefs:
  - {group: policy.linkerd.io, kind: EgressNetwork, name: global, namespace: linkerd-egress,
     port: 443}
  rules:
  - backendRefs:
    - {group: policy.linkerd.io, kind: EgressNetwork, name: global, namespace: linkerd-egress}
";

/// `sidecar check --pre` of a workload in `emojivoto` whose policy file
/// is `POLICY`.
async fn check_policy() -> Report {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("egress.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
             policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
            policy.display()
        ),
    )
    .unwrap();
    check::run(&config, &CheckOptions::default().with_pre(true)).await
}

/// The titles of the policy group's warnings that name `route`.
fn warnings_of(report: &Report, route: &str) -> Vec<String> {
    report
        .group("sidecar-policy")
        .unwrap_or_else(|| panic!("no policy group in\n{report}"))
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn && c.title.contains(route))
        .map(|c| c.title.clone())
        .collect()
}

#[tokio::test]
async fn a_route_on_a_network_written_nowhere_is_warned_about_at_its_parent_ref() {
    let report = check_policy().await;
    let warnings = warnings_of(&report, "emojivoto/misspelt");
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(
        warnings[0].ends_with(
            "egress.yaml: document 5 (HTTPRoute emojivoto/misspelt): spec.parentRefs[0]: \
             no EgressNetwork emojivoto/lokal is in the policy, so this route serves no \
             request (Linkerd marks its parent not accepted, NoMatchingParent); correct the \
             name or namespace, or add the network"
        ),
        "{report}"
    );
    // Warnings, not failures: the sidecar starts with them.
    assert!(report.is_success(), "{report}");
}

#[tokio::test]
async fn a_route_on_another_namespaces_network_is_warned_about_as_not_applying() {
    let report = check_policy().await;
    let warnings = warnings_of(&report, "emojivoto/elsewhere");
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(
        warnings[0].contains(
            "(HTTPRoute emojivoto/elsewhere): spec.parentRefs[0]: EgressNetwork books/theirs \
             does not apply to this workload: a workload in emojivoto is served the \
             EgressNetworks of its own namespace, else those of the global egress namespace \
             linkerd-egress"
        ),
        "{report}"
    );
}

#[tokio::test]
async fn a_route_on_a_global_network_the_namespace_hides_is_warned_about() {
    let report = check_policy().await;
    let warnings = warnings_of(&report, "emojivoto/hidden");
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(
        warnings[0].contains(
            "(TLSRoute emojivoto/hidden): spec.parentRefs[0]: EgressNetwork \
             linkerd-egress/global of the global egress namespace does not apply to this \
             workload, as the workload's namespace emojivoto has EgressNetworks of its own"
        ),
        "{report}"
    );
}

#[tokio::test]
async fn a_route_on_a_network_that_applies_is_not_warned_about() {
    let report = check_policy().await;
    // The routes beside it are: the check looked at the networks.
    assert_eq!(
        warnings_of(&report, "emojivoto/misspelt").len(),
        1,
        "{report}"
    );
    assert_eq!(
        warnings_of(&report, "emojivoto/applies"),
        [""; 0],
        "{report}"
    );
    assert!(
        warnings_of(&report, "EgressNetwork emojivoto/local").is_empty(),
        "{report}"
    );
}
