//! `sidecar inject` carries Linkerd's `config.linkerd.io/inbound-port`,
//! `outbound-port` and `admin-port` into the sidecar itself, not only into
//! the ports its container declares and is probed on: its environment gets
//! `MESH_INBOUND_LISTEN_ADDR`, `MESH_OUTBOUND_LISTEN_ADDR` and
//! `MESH_ADMIN_LISTEN_ADDR`, which the sidecar listens on whatever its
//! file says, as Linkerd's injector sets `LINKERD2_PROXY_*_LISTEN_ADDR`.
//! A port without an annotation gets no variable: the file decides it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::{
    config::{ADMIN_LISTEN_ENV, INBOUND_LISTEN_ENV, INGRESS_MODE_ENV, OUTBOUND_LISTEN_ENV},
    inject::{self, CONTAINER_NAME, Image, InjectConfig, Outcome},
};
use serde::Deserialize as _;
use serde_yaml_ng::Value;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

/// A Deployment whose pod template has `annotations` (a flow mapping).
fn deployment(annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  template:
    metadata: {{annotations: {annotations}}}
    spec:
      containers: [{{name: web, image: web:v1, ports: [{{containerPort: 8080}}]}}]
"
    )
}

/// The sidecar container of the first document of `yaml`.
fn sidecar(yaml: &str) -> Value {
    let document = serde_yaml_ng::Deserializer::from_str(yaml).next().unwrap();
    let value = Value::deserialize(document).unwrap();
    value["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some(CONTAINER_NAME))
        .unwrap()
        .clone()
}

/// The sidecar's environment, as `NAME=value`.
fn env(container: &Value) -> Vec<String> {
    container["env"]
        .as_sequence()
        .map(|env| {
            env.iter()
                .map(|var| {
                    format!(
                        "{}={}",
                        var["name"].as_str().unwrap(),
                        var["value"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn injected(annotations: &str) -> String {
    let injected = inject::inject("web.yaml", &deployment(annotations), &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    injected.yaml
}

#[test]
fn each_port_annotation_sets_the_sidecars_listen_address() {
    let yaml = injected(
        "{config.linkerd.io/inbound-port: \"5143\", config.linkerd.io/outbound-port: \"5140\", \
         config.linkerd.io/admin-port: \"5191\"}",
    );
    let container = sidecar(&yaml);
    assert_eq!(
        env(&container),
        [
            format!("{INBOUND_LISTEN_ENV}=0.0.0.0:5143"),
            format!("{OUTBOUND_LISTEN_ENV}=127.0.0.1:5140"),
            format!("{ADMIN_LISTEN_ENV}=0.0.0.0:5191"),
        ]
    );
    // The ports it declares and its probes agree with where it listens.
    let declared: Vec<u64> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    assert_eq!(declared, [5143, 5140, 5191]);
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 5191);
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], 5191);

    // Injecting again changes nothing.
    let again = inject::inject("web.yaml", &yaml, &config()).unwrap();
    assert_eq!(again.notes[0].outcome, Outcome::AlreadyInjected);
    assert_eq!(again.yaml, yaml);
}

#[test]
fn only_the_annotated_ports_get_a_variable() {
    let yaml = injected("{config.linkerd.io/admin-port: \"9990\"}");
    assert_eq!(
        env(&sidecar(&yaml)),
        [format!("{ADMIN_LISTEN_ENV}=0.0.0.0:9990")]
    );
    // An annotation that names the default port is followed all the same:
    // it says where the sidecar listens, whatever the file writes.
    let yaml = injected("{config.linkerd.io/outbound-port: \"4140\"}");
    assert_eq!(
        env(&sidecar(&yaml)),
        [format!("{OUTBOUND_LISTEN_ENV}=127.0.0.1:4140")]
    );
}

#[test]
fn without_an_annotation_the_file_decides() {
    let yaml = injected("{}");
    let container = sidecar(&yaml);
    assert!(container["env"].is_null(), "{container:?}");
}

#[test]
fn a_namespaces_annotation_sets_them_too() {
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop, annotations: \
         {{config.linkerd.io/inbound-port: \"6143\"}}}}\n---\n{}",
        deployment("{}")
    );
    let injected = inject::inject("all.yaml", &manifest, &config()).unwrap();
    let deployment = injected.yaml.split("---\n").nth(1).unwrap();
    assert_eq!(
        env(&sidecar(deployment)),
        [format!("{INBOUND_LISTEN_ENV}=0.0.0.0:6143")]
    );
}

#[test]
fn taking_the_annotation_off_and_injecting_again_takes_the_variable_off() {
    let annotated = injected("{config.linkerd.io/admin-port: \"9990\", mesh.io/inject: ingress}");
    assert_eq!(
        env(&sidecar(&annotated)),
        [
            format!("{INGRESS_MODE_ENV}=true"),
            format!("{ADMIN_LISTEN_ENV}=0.0.0.0:9990"),
        ]
    );
    let plain = annotated.replace("config.linkerd.io/admin-port: '9990'", "");
    assert_ne!(plain, annotated, "{annotated}");
    let again = inject::inject("web.yaml", &plain, &config()).unwrap();
    assert_eq!(
        env(&sidecar(&again.yaml)),
        [format!("{INGRESS_MODE_ENV}=true")]
    );
}
