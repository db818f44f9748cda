//! A key written twice in one of the file's free-form mappings (a
//! workload's labels or named ports, the trace attributes) is an error, as
//! it is among the fields of a section: YAML leaves duplicate keys
//! undefined, and taking the last one silently would, for a label, select
//! another workload than the one written first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{assert_error, parse, reject};

#[test]
fn a_label_written_twice_is_rejected_at_its_second_line() {
    let error = reject(
        "policy:
  workload:
    labels:
      app: web
      tier: front
      app: api
",
    );
    assert_error(
        &error,
        ConfigErrorKind::DuplicateField,
        "policy.workload.labels.app",
        6,
    );
    assert!(
        error.to_string().contains("duplicate field `app`"),
        "{error}"
    );
}

#[test]
fn a_label_written_twice_in_flow_style_is_rejected() {
    let error = reject("policy:\n  workload:\n    labels: {app: web, app: api}\n");
    assert_error(
        &error,
        ConfigErrorKind::DuplicateField,
        "policy.workload.labels.app",
        3,
    );
}

#[test]
fn a_named_port_written_twice_is_rejected() {
    let error = reject("policy:\n  workload:\n    ports:\n      http: 8080\n      http: 9090\n");
    assert_error(
        &error,
        ConfigErrorKind::DuplicateField,
        "policy.workload.ports.http",
        5,
    );
}

#[test]
fn a_trace_attribute_written_twice_is_rejected() {
    let error = reject(
        "tracing:
  collector: http://127.0.0.1:4318
  attributes:
    k8s.namespace.name: emojivoto
    k8s.namespace.name: default
",
    );
    assert_error(
        &error,
        ConfigErrorKind::DuplicateField,
        "tracing.attributes.k8s.namespace.name",
        5,
    );
}

#[test]
fn distinct_keys_are_kept_in_full() {
    let config = parse(
        "policy:
  workload:
    labels: {app: web, tier: front}
    ports: {http: 8080, admin: 9990}
tracing:
  collector: http://127.0.0.1:4318
  attributes: {k8s.namespace.name: emojivoto, k8s.pod.name: web-0}
",
    )
    .unwrap();
    let workload = &config.policy.workload;
    assert_eq!(workload.labels.len(), 2);
    assert_eq!(workload.labels["app"], "web");
    assert_eq!(workload.labels["tier"], "front");
    assert_eq!(workload.ports.len(), 2);
    assert_eq!(workload.ports["http"], 8080);
    let resource = &config.tracing.unwrap().resource;
    assert_eq!(
        resource,
        &[
            ("service.name".to_owned(), "web".to_owned()),
            ("k8s.namespace.name".to_owned(), "emojivoto".to_owned()),
            ("k8s.pod.name".to_owned(), "web-0".to_owned()),
        ]
    );
}

#[test]
fn a_field_written_twice_is_reported_at_its_second_line() {
    let error = reject("admin:\n  listen: 0.0.0.0:4191\n\n  # moved\n  listen: 0.0.0.0:4192\n");
    assert_error(&error, ConfigErrorKind::DuplicateField, "admin.listen", 5);
}

#[test]
fn a_field_written_twice_in_a_list_item_is_reported_at_its_second_line() {
    let error = reject(
        "inbound:
  ports:
    - listen: 127.0.0.1:4144
      app: 127.0.0.1:8080
      listen: 127.0.0.1:4145
",
    );
    assert_error(
        &error,
        ConfigErrorKind::DuplicateField,
        "inbound.ports[0].listen",
        5,
    );
}
