//! `sidecar inject` writes no proxy resources the API server refuses: a
//! request over its limit, or a negative quantity, is an error naming the
//! annotation and its line, and a limit under the default request lowers
//! the request with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, InjectConfig, Outcome};
use serde_yaml_ng::Value;

fn deployment(template_annotations: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: emojivoto
spec:
  template:
    metadata:
      annotations: {{{template_annotations}}}
    spec:
      containers: [{{name: web, image: web}}]
"
    )
}

fn namespace(annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: emojivoto\n  annotations: {{{annotations}}}\n---\n"
    )
}

/// The sidecar's `resources` once `text`, whose last document is the
/// Deployment, is injected.
fn resources(text: &str) -> Value {
    let injected = inject::inject("web.yaml", text, &InjectConfig::new()).unwrap();
    assert_eq!(injected.notes.last().unwrap().outcome, Outcome::Injected);
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&injected.yaml)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect();
    let containers = &documents.last().unwrap()["spec"]["template"]["spec"]["containers"];
    containers[0]["resources"].clone()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

/// The error's kind, field path, line and message.
fn refused(text: &str) -> (ResourceErrorKind, String, Option<usize>, String) {
    let error = inject::inject("web.yaml", text, &InjectConfig::new()).unwrap_err();
    let manifest = error.as_manifest().expect("a manifest error");
    (
        manifest.kind(),
        manifest.field_path().to_owned(),
        manifest.line(),
        manifest.message().to_owned(),
    )
}

#[test]
fn a_memory_request_over_its_annotated_limit_is_refused_at_the_request() {
    let text = deployment(
        "config.linkerd.io/proxy-memory-request: 1Gi, config.linkerd.io/proxy-memory-limit: 100Mi",
    );
    let (kind, path, line, message) = refused(&text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!(
        path,
        "spec.template.metadata.annotations.config.linkerd.io/proxy-memory-request"
    );
    assert_eq!(line, Some(9));
    assert_eq!(
        message,
        "config.linkerd.io/proxy-memory-request 1Gi is over config.linkerd.io/proxy-memory-limit 100Mi: the API server refuses a request over its limit"
    );
}

#[test]
fn a_cpu_request_over_its_annotated_limit_is_refused() {
    let text = deployment(
        "config.linkerd.io/proxy-cpu-request: '2', config.linkerd.io/proxy-cpu-limit: 1500m",
    );
    let (kind, path, _, message) = refused(&text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(
        path.ends_with("config.linkerd.io/proxy-cpu-request"),
        "{path}"
    );
    assert_eq!(
        message,
        "config.linkerd.io/proxy-cpu-request 2 is over config.linkerd.io/proxy-cpu-limit 1500m: the API server refuses a request over its limit"
    );
    // Equal is allowed: the API server refuses only a request above.
    let equal = deployment(
        "config.linkerd.io/proxy-cpu-request: 1500m, config.linkerd.io/proxy-cpu-limit: '1.5'",
    );
    assert_eq!(
        resources(&equal),
        yaml("{requests: {cpu: 1500m, memory: 20Mi}, limits: {cpu: '1.5', memory: 250Mi}}")
    );
}

#[test]
fn a_limit_under_the_default_request_lowers_the_request_to_it() {
    let text = deployment(
        "config.linkerd.io/proxy-cpu-limit: 50m, config.linkerd.io/proxy-memory-limit: 10Mi",
    );
    assert_eq!(
        resources(&text),
        yaml("{requests: {cpu: 50m, memory: 10Mi}, limits: {cpu: 50m, memory: 10Mi}}")
    );
    // Above the default request, the default stays.
    let text = deployment("config.linkerd.io/proxy-cpu-limit: 200m");
    assert_eq!(
        resources(&text),
        yaml("{requests: {cpu: 100m, memory: 20Mi}, limits: {cpu: 200m, memory: 250Mi}}")
    );
}

#[test]
fn a_namespaces_limit_under_the_pods_request_is_refused_at_the_pods_request() {
    let text = namespace("config.linkerd.io/proxy-memory-limit: 64Mi")
        + &deployment("config.linkerd.io/proxy-memory-request: 128Mi");
    let (_, path, _, message) = refused(&text);
    assert!(
        path.ends_with("annotations.config.linkerd.io/proxy-memory-request"),
        "{path}"
    );
    assert!(
        message.ends_with("is over config.linkerd.io/proxy-memory-limit 64Mi (from namespace emojivoto): the API server refuses a request over its limit"),
        "{message}"
    );

    // Both from the Namespace: reported at the pod template's
    // annotations, where this workload can override them.
    let text = namespace(
        "config.linkerd.io/proxy-cpu-request: '1', config.linkerd.io/proxy-cpu-limit: 500m",
    ) + &deployment("");
    let (_, path, _, message) = refused(&text);
    assert_eq!(path, "spec.template.metadata.annotations");
    assert!(message.contains("(from namespace emojivoto)"), "{message}");
}

#[test]
fn a_negative_quantity_is_refused_where_it_is() {
    let text = deployment("config.linkerd.io/proxy-memory-limit: -1Mi");
    let (kind, path, line, message) = refused(&text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(
        path.ends_with("config.linkerd.io/proxy-memory-limit"),
        "{path}"
    );
    assert_eq!(line, Some(9));
    assert!(message.contains("\"-1Mi\""), "{message}");
}

#[test]
fn a_quantity_too_large_to_be_one_is_refused() {
    let text = deployment("config.linkerd.io/proxy-cpu-limit: '1e999'");
    let (kind, _, _, message) = refused(&text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(message.contains("\"1e999\""), "{message}");
}
