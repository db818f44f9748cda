//! `sidecar inject` for an ingress controller: a workload annotated
//! `mesh.io/inject: ingress` gets a sidecar whose environment turns
//! ingress mode on (`MESH_INGRESS_MODE=true`), which the sidecar reads
//! over its configuration file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::Command;

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::{
    config::INGRESS_MODE_ENV,
    inject::{self, CONTAINER_NAME, Image, InjectConfig, InjectError, Outcome},
};
use serde::Deserialize as _;
use serde_yaml_ng::Value;
use support::sidecar_binary;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

/// A Deployment `name` in `namespace`, with `annotations` on the
/// Deployment and `template` on its pod template (YAML flow mappings).
fn deployment(name: &str, namespace: &str, annotations: &str, template: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}, annotations: {annotations}}}
spec:
  template:
    metadata: {{annotations: {template}}}
    spec:
      containers: [{{name: {name}, image: {name}:v1}}]
"
    )
}

/// The `env` of the sidecar container of each document in `yaml`, in
/// order, wherever the sidecar is (a container, or a native sidecar).
fn sidecar_envs(yaml: &str) -> Vec<Option<Value>> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|document| {
            let value = Value::deserialize(document).unwrap();
            let spec = &value["spec"]["template"]["spec"];
            let spec = if spec.is_null() {
                &value["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            } else {
                spec
            };
            ["containers", "initContainers"]
                .iter()
                .filter_map(|list| spec[*list].as_sequence())
                .flatten()
                .find(|c| c["name"].as_str() == Some(CONTAINER_NAME))
                .map(|c| c["env"].clone())
                .filter(|env| !env.is_null())
        })
        .collect()
}

fn ingress_env() -> Value {
    serde_yaml_ng::from_str(&format!("[{{name: {INGRESS_MODE_ENV}, value: \"true\"}}]")).unwrap()
}

#[test]
fn an_ingress_workload_gets_ingress_mode_in_its_sidecars_environment() {
    let manifest = deployment("nginx", "ingress", "{}", "{mesh.io/inject: ingress}");
    let injected = inject::inject("nginx.yaml", &manifest, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    assert_eq!(sidecar_envs(&injected.yaml), [Some(ingress_env())]);

    // Injecting again changes nothing.
    let again = inject::inject("nginx.yaml", &injected.yaml, &config()).unwrap();
    assert_eq!(again.notes[0].outcome, Outcome::AlreadyInjected);
    assert_eq!(again.yaml, injected.yaml);
}

#[test]
fn the_nearest_annotation_decides_the_mode_too() {
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: edge, annotations: {mesh.io/inject: ingress}}\n";
    let manifest = [
        namespace.to_owned(),
        // The Deployment's own annotation.
        deployment("traefik", "default", "{mesh.io/inject: ingress}", "{}"),
        // Nothing on the workload: its namespace's `ingress`.
        deployment("nginx", "edge", "{}", "{}"),
        // `enabled` on the pod template, nearer than the namespace.
        deployment("web", "edge", "{}", "{mesh.io/inject: enabled}"),
        // Nothing anywhere.
        deployment("emoji", "emojivoto", "{}", "{}"),
    ]
    .join("---\n");
    let injected = inject::inject("all.yaml", &manifest, &config()).unwrap();
    assert!(
        injected.notes[1..]
            .iter()
            .all(|n| n.outcome == Outcome::Injected),
        "{:?}",
        injected.notes
    );
    assert_eq!(
        sidecar_envs(&injected.yaml),
        [None, Some(ingress_env()), Some(ingress_env()), None, None]
    );
}

#[test]
fn a_job_in_ingress_mode_gets_it_on_its_native_sidecar() {
    let manifest = "apiVersion: batch/v1
kind: CronJob
metadata: {name: smoke, namespace: edge, annotations: {mesh.io/inject: ingress}}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: curl, image: curl:v1}]
";
    let injected = inject::inject("job.yaml", manifest, &config()).unwrap();
    assert_eq!(sidecar_envs(&injected.yaml), [Some(ingress_env())]);
}

#[test]
fn changing_the_annotation_and_injecting_again_changes_the_sidecar() {
    let ingress = deployment("nginx", "edge", "{}", "{mesh.io/inject: ingress}");
    let injected = inject::inject("nginx.yaml", &ingress, &config()).unwrap();
    let enabled = injected
        .yaml
        .replace("mesh.io/inject: ingress", "mesh.io/inject: enabled");
    assert_ne!(enabled, injected.yaml);
    let back = inject::inject("nginx.yaml", &enabled, &config()).unwrap();
    assert_eq!(back.notes[0].outcome, Outcome::Injected);
    assert_eq!(sidecar_envs(&back.yaml), [None]);
    let plain = inject::inject(
        "nginx.yaml",
        &deployment("nginx", "edge", "{}", "{mesh.io/inject: enabled}"),
        &config(),
    )
    .unwrap();
    assert_eq!(back.yaml, plain.yaml);
}

#[test]
fn an_unknown_inject_value_names_ingress_among_the_accepted_ones() {
    let manifest = deployment("nginx", "edge", "{}", "{mesh.io/inject: ingres}");
    let error = inject::inject("nginx.yaml", &manifest, &config()).unwrap_err();
    let InjectError::Manifest(error) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(error.kind(), ResourceErrorKind::InvalidValue);
    let message = error.to_string();
    assert!(
        message.contains("\"enabled\", \"ingress\" or \"disabled\""),
        "{message}"
    );
}

/// The environment inject writes is the one the sidecar reads: `sidecar
/// check` on a configuration without outbound services warns about
/// ingress mode only when it is set.
#[test]
fn the_sidecar_reads_the_environment_inject_writes() {
    let (_dir, path) =
        support::config::file("outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n");
    let manifest = deployment("nginx", "edge", "{}", "{mesh.io/inject: ingress}");
    let injected = inject::inject("nginx.yaml", &manifest, &config()).unwrap();
    let env = sidecar_envs(&injected.yaml).remove(0).unwrap();
    let (name, value) = (
        env[0]["name"].as_str().unwrap(),
        env[0]["value"].as_str().unwrap(),
    );

    let check = |env: Option<(&str, &str)>| {
        let mut command = Command::new(sidecar_binary());
        command.args(["check", "--pre", "--config"]).arg(&path);
        command.env_remove(INGRESS_MODE_ENV);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let output = command.output().expect(
            "the sidecar example is built: run `cargo test` without `--test`, \
             or `cargo build -p mesh-examples --example sidecar`",
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let warning = "‼ ingress mode has outbound services to route to";
    let with = check(Some((name, value)));
    assert!(with.contains(warning), "{with}");
    let without = check(None);
    assert!(!without.contains("ingress mode"), "{without}");
}
