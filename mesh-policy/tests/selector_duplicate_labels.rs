//! A label written twice in a selector's `matchLabels` is refused, as
//! kubectl refuses a repeated key and as the mesh refuses one in
//! `metadata.labels`: read through serde, the second value would replace
//! the first without a word, and a Server would select other pods than
//! the ones its author named, leaving their port to the default policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::PolicyConfig;
use support::{T::*, Want::*, *};

fn server(selector: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web, namespace: ns}}
spec:
  podSelector: {selector}
  port: 80
"
    )
}

#[test]
fn a_label_written_twice_in_a_pod_selector_is_refused() {
    // Read with the last value winning, the Server would select the `api`
    // pods, and port 80 of `web` would stay open to everyone.
    let text = server("{matchLabels: {app: web, app: api}}");
    let err = try_compile_web(&text).unwrap_err();
    assert_eq!(err.kind(), Kind::DuplicateField, "{err}");
    assert_eq!(
        err.field_path(),
        "spec.podSelector.matchLabels.app",
        "{err}"
    );
    assert!(err.to_string().contains("`app`"), "{err}");

    // Written once, the label selects the workload, whose port is shut.
    let once = compile(
        &server("{matchLabels: {app: web}}"),
        &web_workload(),
        &PolicyConfig::default(),
    );
    assert_eq!(
        decide(&once, 80, Plain, Some("10.0.0.1"), "GET", "/", &[]),
        Deny("web")
    );
}

#[test]
fn a_label_written_twice_in_a_server_authorizations_selector_is_refused() {
    let text = format!(
        "{}---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {{name: open, namespace: ns}}
spec:
  server: {{selector: {{matchLabels: {{tier: db, tier: web}}}}}}
  client: {{unauthenticated: true}}
",
        server("{matchLabels: {app: web}}")
    );
    let err = try_compile_web(&text).unwrap_err();
    assert_eq!(err.kind(), Kind::DuplicateField, "{err}");
    assert_eq!(
        err.field_path(),
        "spec.server.selector.matchLabels.tier",
        "{err}"
    );
}
