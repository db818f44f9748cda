//! A `ServerAuthorization` whose `server.selector` matches no Server by
//! its labels applies, as the guide's manifests need, to the Servers whose
//! pods it selects: only those whose `podSelector.matchLabels` make every
//! pod they select satisfy it. A requirement that a label be absent, or
//! not have some value, holds for every such pod only when the
//! `matchLabels` pin that label: a pod a Server selects may carry any
//! label the selector leaves free.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_policy::{PolicyConfig, WarningKind, Workload};
use support::{T::*, Want::*, *};

/// The `web` Server (itself labelled `app: srv` and `env: prod`, so that
/// no selector below matches it by its own labels) for the pods whose
/// `app` is `web`,
/// and a ServerAuthorization that lets every client from anywhere reach
/// the Servers `selector` selects.
fn policy(selector: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web, namespace: ns, labels: {{app: srv, env: prod}}}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: 80
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {{name: open, namespace: ns}}
spec:
  server: {{selector: {selector}}}
  client:
    unauthenticated: true
    networks: [{{cidr: 0.0.0.0/0}}]
"
    )
}

/// A production pod of `web`: it carries `env: prod`, which the Server's
/// `podSelector` does not name.
fn prod_pod() -> Workload {
    Workload::new("ns")
        .with_label("app", "web")
        .with_label("env", "prod")
}

fn at_80(text: &str) -> Want {
    let policy = compile(text, &prod_pod(), &PolicyConfig::default());
    decide(&policy, 80, Plain, Some("203.0.113.7"), "GET", "/", &[])
}

/// Selectors meant for the pods that are not production ones: nothing
/// says the Server's pods are not, so the authorization applies to no
/// Server, as in Linkerd, and a production pod's port stays shut.
#[test]
fn a_requirement_on_a_label_the_pod_selector_leaves_free_does_not_select_its_server() {
    for selector in [
        "{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}",
        "{matchExpressions: [{key: env, operator: DoesNotExist}]}",
        "{matchLabels: {app: web}, matchExpressions: [{key: env, operator: DoesNotExist}]}",
    ] {
        let text = policy(selector);
        assert_eq!(at_80(&text), Deny("web"), "{selector}");
        let warnings = try_compile_warnings(&text);
        assert!(
            warnings
                .iter()
                .any(|(kind, text)| *kind == WarningKind::NotApplied
                    && text.contains("selects no Server")),
            "{selector}: {warnings:#?}"
        );
    }
}

/// What the `matchLabels` pin still decides: a value they fix that the
/// selector requires or excludes, or a label they fix that must be absent.
#[test]
fn a_requirement_the_pod_selector_pins_still_selects_its_server() {
    for (selector, want) in [
        ("{matchLabels: {app: web}}", true),
        (
            "{matchExpressions: [{key: app, operator: In, values: [web, api]}]}",
            true,
        ),
        (
            "{matchExpressions: [{key: app, operator: NotIn, values: [srv, api]}]}",
            true,
        ),
        (
            "{matchLabels: {app: web}, matchExpressions: [{key: app, operator: NotIn, values: [srv, web]}]}",
            false,
        ),
        (
            "{matchExpressions: [{key: app, operator: DoesNotExist}]}",
            false,
        ),
    ] {
        let got = at_80(&policy(selector));
        let allowed = matches!(got, Allow("web", "default", "open"));
        assert_eq!(allowed, want, "{selector}: {got:?}");
    }
}

fn try_compile_warnings(text: &str) -> Vec<(WarningKind, String)> {
    mesh_policy::Policy::compile(
        &[mesh_policy::PolicySource::new("policy.yaml", text)],
        &prod_pod(),
        &PolicyConfig::default(),
        &mesh_policy::PolicyMetrics::default(),
    )
    .unwrap()
    .warnings
    .iter()
    .map(|w| (w.kind, w.to_string()))
    .collect()
}
