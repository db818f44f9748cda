//! Paths in the configuration file: an empty one names no file, and is
//! refused where it is written rather than when the sidecar opens it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{assert_error, parse, reject};

#[test]
fn an_empty_policy_file_path_is_rejected_at_its_line() {
    let error = reject("policy:\n  files:\n    - /etc/mesh/policy.yaml\n    - \"\"\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "policy.files[1]", 4);
    assert!(error.to_string().contains("empty"), "{error}");
}

#[test]
fn an_empty_policy_file_path_in_a_flow_list_is_rejected() {
    let error = reject("policy:\n  files: ['']\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "policy.files[0]", 2);
}

#[test]
fn policy_file_paths_are_kept_as_written() {
    let config = parse("policy:\n  files: [policy.yaml, /etc/mesh/routes.yaml]\n").unwrap();
    assert_eq!(
        config.policy.sources.files,
        [
            std::path::PathBuf::from("policy.yaml"),
            std::path::PathBuf::from("/etc/mesh/routes.yaml")
        ]
    );
}
