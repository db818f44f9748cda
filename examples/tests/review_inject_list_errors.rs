//! An error about an item of a `kind: List` names the item, its kind and
//! name, as well as its index: `kubectl get ns,deploy -A -o yaml` prints
//! one List of hundreds of objects, and "document 1 (List)" says nothing
//! of which one to fix. A workload's errors did; a Namespace's, which
//! inject reads for the workloads in it, named the List.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, InjectConfig};

/// A List of a Service, the Namespace `shop` with `annotations`, and a
/// Deployment in it.
fn list(annotations: &str) -> String {
    format!(
        "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {{name: web, namespace: shop}}
- apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
    annotations: {{{annotations}}}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {{name: web, namespace: shop}}
  spec:
    template:
      spec:
        containers: [{{name: web, image: web}}]
"
    )
}

/// The error's message, kind and line.
fn error(text: &str) -> (String, ResourceErrorKind, Option<usize>) {
    let error = inject::inject("all.yaml", text, &InjectConfig::new()).unwrap_err();
    let manifest = error.as_manifest().expect("a manifest error");
    (error.to_string(), manifest.kind(), manifest.line())
}

#[test]
fn a_namespace_items_bad_inject_annotation_names_the_namespace() {
    let (message, kind, line) = error(&list("mesh.io/inject: sometimes"));
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!(line, Some(11));
    assert!(
        message.starts_with(
            "all.yaml: document 1 (Namespace shop): items[1].metadata.annotations.mesh.io/inject: "
        ),
        "{message}"
    );
}

#[test]
fn a_namespace_items_bad_proxy_annotation_names_the_namespace() {
    let (message, _, line) = error(&list("config.linkerd.io/proxy-memory-limit: lots"));
    assert_eq!(line, Some(11));
    assert!(
        message
            .starts_with("all.yaml: document 1 (Namespace shop): items[1].metadata.annotations."),
        "{message}"
    );
}

#[test]
fn a_second_namespace_item_of_one_name_names_the_namespace() {
    let text = format!(
        "{}- apiVersion: v1\n  kind: Namespace\n  metadata: {{name: shop}}\n",
        list("mesh.io/inject: enabled")
    );
    let (message, _, line) = error(&text);
    assert_eq!(line, Some(21));
    assert!(
        message.starts_with("all.yaml: document 1 (Namespace shop): items[3].metadata.name: "),
        "{message}"
    );
    // And where the first one is.
    assert!(
        message.contains("document 1, items[1] (line 10)"),
        "{message}"
    );
}

#[test]
fn a_namespace_document_of_its_own_is_named_as_before() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations: {mesh.io/inject: sometimes}\n";
    let (message, _, line) = error(text);
    assert_eq!(line, Some(5));
    assert!(
        message.starts_with("all.yaml: document 1 (Namespace shop): metadata.annotations."),
        "{message}"
    );
}
