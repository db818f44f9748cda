//! `sidecar inject` follows Linkerd's proxy configuration annotations that
//! the sidecar's container can carry: `config.linkerd.io/proxy-log-level`
//! and `config.alpha.linkerd.io/proxy-wait-before-exit-seconds`, on the
//! pod template or else on its Namespace, as Linkerd's injector reads
//! them. A workload moved from Linkerd keeps the log level it was debugged
//! with, and the time its application is given to finish its own requests
//! through the mesh once the pod is stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, Image, InjectConfig, Outcome};
use serde_yaml_ng::Value;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

/// A Deployment in namespace `shop`, its pod template annotated with
/// `annotations` (flow mapping entries), after the Namespace `shop`
/// annotated with `namespace`.
fn manifest(namespace: &str, annotations: &str, pod_spec: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {{{namespace}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      annotations: {{{annotations}}}
    spec:
      {pod_spec}containers: [{{name: web, image: web}}]
"
    )
}

/// The injected pod spec of the Deployment of `text`.
fn pod_spec(text: &str) -> Value {
    let injected = inject::inject("web.yaml", text, &config()).unwrap();
    assert_eq!(injected.notes[1].outcome, Outcome::Injected);
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&injected.yaml)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect();
    documents[1]["spec"]["template"]["spec"].clone()
}

/// The sidecar container of `spec`, wherever it was put.
fn sidecar(spec: &Value) -> Value {
    ["containers", "initContainers"]
        .into_iter()
        .filter_map(|key| spec[key].as_sequence())
        .flatten()
        .find(|container| container["name"] == "mesh-proxy")
        .cloned()
        .unwrap()
}

fn env(container: &Value, name: &str) -> Option<Value> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|variable| variable["name"] == name)
        .map(|variable| variable["value"].clone())
}

#[test]
fn the_proxy_log_level_becomes_the_sidecars_log_filter() {
    let text = manifest(
        "",
        "config.linkerd.io/proxy-log-level: 'warn,mesh_core=debug'",
        "",
    );
    let sidecar = sidecar(&pod_spec(&text));
    assert_eq!(
        env(&sidecar, "RUST_LOG"),
        Some(Value::from("warn,mesh_core=debug"))
    );
}

#[test]
fn the_namespaces_proxy_log_level_is_the_default_of_its_pods() {
    let text = manifest("config.linkerd.io/proxy-log-level: debug", "", "");
    assert_eq!(
        env(&sidecar(&pod_spec(&text)), "RUST_LOG"),
        Some(Value::from("debug"))
    );
    let text = manifest(
        "config.linkerd.io/proxy-log-level: debug",
        "config.linkerd.io/proxy-log-level: error",
        "",
    );
    assert_eq!(
        env(&sidecar(&pod_spec(&text)), "RUST_LOG"),
        Some(Value::from("error"))
    );
}

#[test]
fn without_a_log_level_the_sidecar_has_no_log_filter_set() {
    let sidecar = sidecar(&pod_spec(&manifest("", "", "")));
    assert_eq!(env(&sidecar, "RUST_LOG"), None);
}

#[test]
fn a_log_level_that_is_not_a_filter_is_refused_where_it_is() {
    let text = manifest(
        "",
        "config.linkerd.io/proxy-log-level: 'info,mesh=loud'",
        "",
    );
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    let manifest = error.as_manifest().unwrap();
    assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(manifest.document(), Some(2));
    assert_eq!(manifest.line(), Some(15));
    let message = error.to_string();
    assert!(
        message.contains("config.linkerd.io/proxy-log-level") && message.contains("mesh=loud"),
        "{message}"
    );
}

#[test]
fn a_log_level_and_ingress_mode_are_both_in_the_environment() {
    let text = manifest(
        "",
        "config.linkerd.io/proxy-log-level: info, mesh.io/inject: ingress",
        "",
    );
    let sidecar = sidecar(&pod_spec(&text));
    assert_eq!(env(&sidecar, "RUST_LOG"), Some(Value::from("info")));
    assert_eq!(
        env(&sidecar, "MESH_INGRESS_MODE"),
        Some(Value::from("true"))
    );
}

#[test]
fn wait_before_exit_delays_the_sidecars_stop_as_linkerds_prestop_does() {
    let text = manifest(
        "",
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '40'",
        "terminationGracePeriodSeconds: 60\n      ",
    );
    let sidecar = sidecar(&pod_spec(&text));
    assert_eq!(
        sidecar["lifecycle"]["preStop"],
        serde_yaml_ng::from_str::<Value>("{sleep: {seconds: 40}}").unwrap()
    );
}

#[test]
fn the_namespaces_wait_before_exit_is_the_default_of_its_pods() {
    let text = manifest(
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '20'",
        "",
        "",
    );
    let sidecar = sidecar(&pod_spec(&text));
    assert_eq!(sidecar["lifecycle"]["preStop"]["sleep"]["seconds"], 20);
}

#[test]
fn no_wait_before_exit_or_zero_adds_no_prestop() {
    for annotations in [
        "",
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '0'",
    ] {
        let sidecar = sidecar(&pod_spec(&manifest("", annotations, "")));
        // Only the await, which holds the application back at start.
        let hooks: Vec<_> = sidecar["lifecycle"].as_mapping().unwrap().keys().collect();
        assert_eq!(hooks, ["postStart"], "{annotations}");
    }
}

#[test]
fn a_native_sidecar_needs_no_wait_before_exit() {
    // Kubernetes stops a native sidecar only once the application's
    // containers have exited; Linkerd adds no preStop to one either.
    let text = manifest(
        "",
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '40', \
         config.alpha.linkerd.io/proxy-enable-native-sidecar: 'true'",
        "",
    );
    let spec = pod_spec(&text);
    assert_eq!(spec["initContainers"][0]["name"], "mesh-proxy");
    assert_eq!(sidecar(&spec).get("lifecycle"), None);
}

#[test]
fn a_wait_before_exit_that_is_not_a_number_of_seconds_is_refused() {
    for bad in ["'soon'", "'-5'", "'1.5'", "'30s'"] {
        let text = manifest(
            "",
            &format!("config.alpha.linkerd.io/proxy-wait-before-exit-seconds: {bad}"),
            "",
        );
        let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
        let manifest = error.as_manifest().unwrap();
        assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue, "{bad}");
        assert_eq!(manifest.line(), Some(15), "{bad}");
        assert!(
            error
                .to_string()
                .contains("config.alpha.linkerd.io/proxy-wait-before-exit-seconds"),
            "{error}"
        );
    }
}

#[test]
fn a_wait_before_exit_beyond_the_grace_period_is_refused() {
    // The API server refuses a preStop sleep longer than the pod's
    // terminationGracePeriodSeconds, 30 unless it is set.
    let text = manifest(
        "",
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '45'",
        "",
    );
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    assert_eq!(error.as_manifest().unwrap().line(), Some(15));
    let message = error.to_string();
    assert!(
        message.contains("terminationGracePeriodSeconds") && message.contains("30"),
        "{message}"
    );
    // From the Namespace, it is refused at the pod template, where this
    // workload can say otherwise.
    let text = manifest(
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '45'",
        "",
        "terminationGracePeriodSeconds: 40\n      ",
    );
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("namespace shop") && message.contains("40"),
        "{message}"
    );
    let text = manifest(
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '45'",
        "",
        "terminationGracePeriodSeconds: 45\n      ",
    );
    let sidecar = sidecar(&pod_spec(&text));
    assert_eq!(sidecar["lifecycle"]["preStop"]["sleep"]["seconds"], 45);
}

#[test]
fn injecting_with_these_annotations_twice_changes_nothing() {
    let text = manifest(
        "config.linkerd.io/proxy-log-level: debug",
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '10'",
        "",
    );
    let once = inject::inject("web.yaml", &text, &config()).unwrap();
    let twice = inject::inject("web.yaml", &once.yaml, &config()).unwrap();
    assert_eq!(twice.yaml, once.yaml);
    assert_eq!(twice.notes[1].outcome, Outcome::AlreadyInjected);
}

#[test]
fn taking_the_annotations_off_takes_their_settings_off() {
    let text = manifest(
        "",
        "config.linkerd.io/proxy-log-level: debug, \
         config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '10'",
        "",
    );
    let once = inject::inject("web.yaml", &text, &config()).unwrap();
    let without: String = once
        .yaml
        .lines()
        .filter(|line| !line.contains("proxy-log-level") && !line.contains("wait-before-exit"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(without, once.yaml);
    let sidecar = sidecar(&pod_spec(&without));
    assert_eq!(env(&sidecar, "RUST_LOG"), None);
    assert_eq!(sidecar["lifecycle"].get("preStop"), None);
    assert!(sidecar["lifecycle"].get("postStart").is_some());
}

#[test]
fn the_namespaces_native_sidecar_annotation_is_the_default_of_its_pods() {
    let native = "config.alpha.linkerd.io/proxy-enable-native-sidecar: 'true'";
    let spec = pod_spec(&manifest(native, "", ""));
    assert_eq!(spec["initContainers"][0]["name"], "mesh-proxy");
    assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
    // The pod template's own value decides over its Namespace's.
    let not_native = "config.alpha.linkerd.io/proxy-enable-native-sidecar: 'false'";
    let spec = pod_spec(&manifest(native, not_native, ""));
    assert_eq!(spec["containers"][0]["name"], "mesh-proxy");
    assert_eq!(spec.get("initContainers"), None);
}

#[test]
fn a_native_sidecar_annotation_that_is_not_a_string_is_refused() {
    // The API server refuses an annotation that is not a string: `true`
    // unquoted would not be applied, and was never read as asked for.
    let text = manifest(
        "",
        "config.alpha.linkerd.io/proxy-enable-native-sidecar: true",
        "",
    );
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    let manifest = error.as_manifest().unwrap();
    assert_eq!(manifest.kind(), ResourceErrorKind::InvalidType);
    assert_eq!(manifest.line(), Some(15));
    assert!(
        manifest
            .field_path()
            .ends_with("config.alpha.linkerd.io/proxy-enable-native-sidecar"),
        "{error}"
    );
}
