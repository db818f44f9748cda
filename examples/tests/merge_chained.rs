//! Chained YAML merge keys (an anchor that itself merges another, merged
//! into a third mapping) in what the sidecar reads: its configuration and
//! `sidecar inject`'s manifests, read as Kubernetes' YAML reader reads
//! them, with mistakes in merged values reported at a line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::config::ConfigErrorKind;
use mesh_examples::sidecar::inject::{self, Image, InjectConfig};
use serde_yaml_ng::Value;
use support::config::{assert_error, parse, reject};

const CONFIG: &str = "outbound:
  services:
    - name: emoji
      endpoints: [127.0.0.1:8081]
      timeouts: &base {request: 10s, per_try: 2s}
    - name: voting
      endpoints: [127.0.0.1:8082]
      timeouts: &tighter
        <<: *base
        per_try: 1s
    - name: web
      endpoints: [127.0.0.1:8083]
      timeouts:
        <<: *tighter
";

#[test]
fn a_chained_merge_in_the_configuration_takes_every_link_of_the_chain() {
    let config = parse(CONFIG).unwrap();
    let web = &config.outbound.services[2].timeouts;
    assert_eq!(web.request, Some(Duration::from_secs(10)));
    assert_eq!(web.per_try, Some(Duration::from_secs(1)));
}

#[test]
fn a_merge_key_of_the_configuration_that_names_no_mapping_names_its_line() {
    let error = reject(&CONFIG.replace("<<: *tighter", "<<: [*tighter, 3]"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[2].timeouts",
        14,
    );
}

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// A Deployment whose pod spec takes its volumes through a chain of two
/// anchors, with YAML 1.1 scalars (`0644`, `no`) in what is merged.
const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata:
      labels: {app: web}
    spec:
      <<: &common
        <<: &volumes
          volumes:
          - name: config
            configMap: {name: web, defaultMode: 0644}
        automountServiceAccountToken: no
      containers: [{name: web, image: web}]
";

#[test]
fn a_chained_merge_in_a_manifest_is_injected_as_kubectl_reads_it() {
    let injected = inject::inject("web.yaml", DEPLOYMENT, &config()).unwrap();
    assert!(!injected.yaml.contains("<<"), "{}", injected.yaml);
    let deployment = &documents(&injected.yaml)[0];
    let spec = &deployment["spec"]["template"]["spec"];
    let volumes: Vec<_> = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|volume| volume["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["config", "mesh-config", "mesh-identity"]);
    // The plain scalars are read as YAML 1.1 reads them wherever the
    // merges put them: the tree they were read along held the mapping's
    // keys moved about by the merge, and they stayed strings.
    assert_eq!(
        spec["volumes"][0]["configMap"]["defaultMode"],
        Value::from(420),
        "{}",
        injected.yaml
    );
    assert_eq!(spec["automountServiceAccountToken"], Value::Bool(false));
}

#[test]
fn a_document_with_chained_merges_that_inject_leaves_alone_is_written_as_written() {
    let service = "\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: &app {app: web}
  ports:
    - &http {name: http, port: 80}
    - &admin {<<: *http, name: admin}
    - {<<: *admin, port: 9990}
";
    let text = format!("{service}---\n{DEPLOYMENT}");
    let injected = inject::inject("app.yaml", &text, &config()).unwrap();
    let pieces: Vec<&str> = injected.yaml.split("---\n").collect();
    assert_eq!(pieces[0], service, "{}", injected.yaml);
}

#[test]
fn a_merge_key_of_a_manifest_that_names_no_mapping_names_its_mapping_and_line() {
    let text = DEPLOYMENT.replace("<<: &volumes", "<<: &volumes 3\n        x:");
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    let manifest = error.as_manifest().expect("a manifest error");
    assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue, "{error}");
    assert_eq!(manifest.field_path(), "spec.template.spec.<<", "{error}");
    assert_eq!(manifest.line(), Some(10), "{error}");
}

/// A Server whose selector's expressions are built on one another.
const SERVER: &str = "\
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: ns}
spec:
  podSelector:
    matchExpressions:
    - &app {key: app, operator: In, values: [web]}
    - &tier {<<: *app, key: tier, values: [backend]}
    - {<<: *tier, values: [backend, canary]}
  port: 80
";

#[test]
fn a_chained_merge_in_a_policy_file_is_read_as_kubectl_reads_it() {
    use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};

    // The third expression took the second's `<<` unapplied, and with it
    // the first's `operator`: the Server was refused for an expression
    // without one.
    let workload = Workload::new("ns")
        .with_label("app", "web")
        .with_label("tier", "backend");
    let compiled = Policy::compile(
        &[PolicySource::new("policy.yaml", SERVER)],
        &workload,
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let ports: Vec<_> = compiled
        .policy
        .covered_ports()
        .map(|(port, server, _)| (port, server.to_owned()))
        .collect();
    assert_eq!(ports, [(80, "web".to_owned())]);

    let frontend = Workload::new("ns")
        .with_label("app", "web")
        .with_label("tier", "frontend");
    let compiled = Policy::compile(
        &[PolicySource::new("policy.yaml", SERVER)],
        &frontend,
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(compiled.policy.covered_ports().count(), 0);
}
