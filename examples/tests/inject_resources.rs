//! `sidecar inject` gives the sidecar the CPU and memory that Linkerd's
//! `config.linkerd.io/proxy-*` annotations ask for, as `linkerd inject`
//! gives its proxy: a workload moved from Linkerd keeps the proxy
//! resources it was tuned with, rather than a 250Mi limit it outgrew.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, Image, InjectConfig, Outcome};
use serde_yaml_ng::Value;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

fn deployment(workload_annotations: &str, template_annotations: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {{{workload_annotations}}}
spec:
  template:
    metadata:
      annotations: {{{template_annotations}}}
    spec:
      containers: [{{name: web, image: web}}]
"
    )
}

/// The sidecar's `resources` once `text` is injected.
fn resources(text: &str) -> Value {
    let injected = inject::inject("web.yaml", text, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    let document: Value = serde_yaml_ng::from_str(&injected.yaml).unwrap();
    let containers = &document["spec"]["template"]["spec"]["containers"];
    containers[0]["resources"].clone()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn without_annotations_the_sidecar_gets_the_default_resources() {
    assert_eq!(
        resources(&deployment("", "")),
        yaml("{requests: {cpu: 100m, memory: 20Mi}, limits: {memory: 250Mi}}")
    );
}

#[test]
fn linkerds_proxy_resource_annotations_set_the_sidecars_resources() {
    let annotations = "config.linkerd.io/proxy-cpu-request: 250m, \
        config.linkerd.io/proxy-cpu-limit: '1', \
        config.linkerd.io/proxy-memory-request: 64Mi, \
        config.linkerd.io/proxy-memory-limit: 1Gi";
    assert_eq!(
        resources(&deployment("", annotations)),
        yaml("{requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: '1', memory: 1Gi}}")
    );
}

#[test]
fn annotations_on_the_workload_itself_are_not_read_as_in_linkerd() {
    let text = deployment(
        "config.linkerd.io/proxy-memory-limit: 512Mi, config.linkerd.io/proxy-cpu-request: 50m",
        "config.linkerd.io/proxy-memory-limit: 1Gi",
    );
    assert_eq!(
        resources(&text),
        yaml("{requests: {cpu: 100m, memory: 20Mi}, limits: {memory: 1Gi}}")
    );
}

#[test]
fn a_value_that_is_not_a_quantity_is_refused_where_it_is() {
    let text = deployment("", "config.linkerd.io/proxy-memory-limit: lots");
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    let manifest = error.as_manifest().unwrap();
    assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(manifest.line(), Some(9));
    assert!(error.to_string().contains("\"lots\""), "{error}");
}

#[test]
fn a_memory_request_over_the_default_limit_asks_for_a_limit() {
    let text = deployment("", "config.linkerd.io/proxy-memory-request: 512Mi");
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("config.linkerd.io/proxy-memory-limit"),
        "{message}"
    );
    let with_limit = deployment(
        "",
        "config.linkerd.io/proxy-memory-request: 512Mi, config.linkerd.io/proxy-memory-limit: 1Gi",
    );
    assert_eq!(
        resources(&with_limit)["requests"]["memory"],
        Value::from("512Mi")
    );
}

#[test]
fn injecting_with_annotated_resources_twice_changes_nothing() {
    let text = deployment("", "config.linkerd.io/proxy-cpu-limit: 500m");
    let once = inject::inject("web.yaml", &text, &config()).unwrap();
    let twice = inject::inject("web.yaml", &once.yaml, &config()).unwrap();
    assert_eq!(twice.yaml, once.yaml);
    assert_eq!(twice.notes[0].outcome, Outcome::AlreadyInjected);
}

#[test]
fn linkerds_ephemeral_storage_annotations_set_the_sidecars_ephemeral_storage() {
    // Linkerd sets none by default, and neither does inject.
    assert!(
        resources(&deployment("", ""))["requests"]
            .get("ephemeral-storage")
            .is_none()
    );
    let annotations = "config.linkerd.io/proxy-ephemeral-storage-request: 10Mi, \
        config.linkerd.io/proxy-ephemeral-storage-limit: 100Mi";
    assert_eq!(
        resources(&deployment("", annotations)),
        yaml(
            "{requests: {cpu: 100m, memory: 20Mi, ephemeral-storage: 10Mi}, \
             limits: {memory: 250Mi, ephemeral-storage: 100Mi}}"
        )
    );
    // A limit alone leaves the request to the API server, which sets it
    // to the limit.
    let limit = resources(&deployment(
        "",
        "config.linkerd.io/proxy-ephemeral-storage-limit: 1Gi",
    ));
    assert_eq!(limit["limits"]["ephemeral-storage"], "1Gi");
    assert!(limit["requests"].get("ephemeral-storage").is_none());
    let warned = inject::inject("web.yaml", &deployment("", annotations), &config()).unwrap();
    assert!(warned.notes[0].warnings.is_empty(), "{:?}", warned.notes);
}

#[test]
fn a_bad_ephemeral_storage_annotation_is_refused_where_it_is() {
    let text = deployment(
        "",
        "config.linkerd.io/proxy-ephemeral-storage-request: plenty",
    );
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    let manifest = error.as_manifest().unwrap();
    assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(manifest.line(), Some(9));
    assert!(
        error
            .to_string()
            .contains("proxy-ephemeral-storage-request")
            && error.to_string().contains("\"plenty\""),
        "{error}"
    );
    let text = deployment(
        "",
        "config.linkerd.io/proxy-ephemeral-storage-request: 2Gi, \
         config.linkerd.io/proxy-ephemeral-storage-limit: 1Gi",
    );
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("proxy-ephemeral-storage-request 2Gi is over"),
        "{error}"
    );
    let text = deployment("", "config.linkerd.io/proxy-ephemeral-storage-limit: '-1'");
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    assert!(error.to_string().contains("negative"), "{error}");
}

#[test]
fn a_namespaces_ephemeral_storage_annotations_are_the_defaults_of_its_pods() {
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  \
        annotations: {config.linkerd.io/proxy-ephemeral-storage-limit: 2Gi}\n---\n";
    let text = format!(
        "{namespace}{}",
        deployment("", "config.linkerd.io/proxy-ephemeral-storage-request: 1Gi")
    );
    let injected = inject::inject("web.yaml", &text, &config()).unwrap();
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&injected.yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let proxy = &documents[1]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(proxy["resources"]["requests"]["ephemeral-storage"], "1Gi");
    assert_eq!(proxy["resources"]["limits"]["ephemeral-storage"], "2Gi");
}
