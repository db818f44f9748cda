//! `sidecar inject` names the object an error is about as the resource
//! reader does, and as kubectl does: `Kind namespace/name` for one with a
//! `metadata.namespace`, so that `web` in `emojivoto` and `web` in `shop`,
//! in one file, are told apart by more than their document number; `Kind
//! name` for one without. An item of a `kind: List` is named by its own
//! namespace, not the List's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, InjectConfig};
use support::sidecar_cli_with_input;

/// A Deployment without a pod template, in `emojivoto`.
const NO_TEMPLATE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: emojivoto}
spec:
  replicas: 1
";

/// The error's text, its kind and the namespace it names.
fn error(text: &str) -> (String, ResourceErrorKind, Option<String>) {
    let error = inject::inject("emojivoto.yaml", text, &InjectConfig::new()).unwrap_err();
    let manifest = error.as_manifest().expect("a manifest error");
    (
        error.to_string(),
        manifest.kind(),
        manifest.namespace().map(str::to_owned),
    )
}

#[test]
fn an_error_about_a_namespaced_workload_names_its_namespace() {
    let (message, kind, namespace) = error(NO_TEMPLATE);
    assert_eq!(kind, ResourceErrorKind::MissingField);
    assert_eq!(namespace.as_deref(), Some("emojivoto"));
    assert_eq!(
        message,
        "emojivoto.yaml: document 1 (Deployment emojivoto/web): spec.template: \
         a Deployment needs a pod template at spec.template at line 5 column 3"
    );
}

#[test]
fn the_cli_names_the_namespace_of_the_workload_it_refuses() {
    let output = sidecar_cli_with_input(&["inject", "-"], NO_TEMPLATE);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "stdin: document 1 (Deployment emojivoto/web): spec.template: \
             a Deployment needs a pod template"
        ),
        "{stderr}"
    );
}

#[test]
fn a_merge_key_that_merges_no_mapping_names_the_namespace() {
    let text = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: emojivoto}
spec:
  template:
    spec:
      <<: 1
      containers: [{name: web, image: web}]
";
    let (message, kind, namespace) = error(text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!(namespace.as_deref(), Some("emojivoto"));
    assert!(
        message.starts_with(
            "emojivoto.yaml: document 1 (Deployment emojivoto/web): spec.template.spec: "
        ),
        "{message}"
    );
}

/// A List, in `lists` (which kubectl does not apply to its items), of a
/// Service in `shop` and a Deployment without a pod template, `metadata`.
fn list(metadata: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: List
metadata: {{namespace: lists}}
items:
- apiVersion: v1
  kind: Service
  metadata: {{name: web, namespace: shop}}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {metadata}
  spec: {{replicas: 1}}
"
    )
}

#[test]
fn an_error_about_a_list_item_names_the_items_own_namespace() {
    let (message, _, namespace) = error(&list("{name: web, namespace: shop}"));
    assert_eq!(namespace.as_deref(), Some("shop"));
    assert!(
        message.starts_with(
            "emojivoto.yaml: document 1 (Deployment shop/web): items[1].spec.template: "
        ),
        "{message}"
    );
}

#[test]
fn an_error_about_a_list_item_without_a_namespace_names_none() {
    // Not the List's: the item is applied where `kubectl apply -n` says.
    let (message, _, _) = error(&list("{name: web}"));
    assert!(
        message
            .starts_with("emojivoto.yaml: document 1 (Deployment web): items[1].spec.template: "),
        "{message}"
    );
    // A namespace that is not one names none either; its value, a terminal
    // escape here, is not written.
    let (message, _, _) = error(&list("{name: web, namespace: \"Shop\\e[2J\"}"));
    assert!(
        message.starts_with("emojivoto.yaml: document 1 (Deployment web): items[1]."),
        "{message}"
    );
    assert!(!message.contains(char::is_control), "{message:?}");
}
