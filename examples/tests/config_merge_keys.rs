//! YAML merge keys in the sidecar's configuration: services that share
//! their settings write them once, as they would in a Kubernetes manifest
//! or a Compose file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{assert_error, parse, reject};

const SHARED: &str = "outbound:
  services:
    - name: emoji
      endpoints: [127.0.0.1:8081]
      timeouts: &slow {request: 10s, per_try: 2s}
    - name: voting
      endpoints: [127.0.0.1:8082]
      timeouts:
        <<: *slow
        per_try: 1s
";

#[test]
fn a_merge_key_takes_the_fields_of_its_anchor() {
    // `<<` was refused as an unknown field of `timeouts`.
    let config = parse(SHARED).unwrap();
    let services = &config.outbound.services;
    assert_eq!(services[1].timeouts.request, Some(Duration::from_secs(10)));
    // A field written beside the merge key wins over the merged one.
    assert_eq!(services[1].timeouts.per_try, Some(Duration::from_secs(1)));
    assert_eq!(services[0].timeouts.per_try, Some(Duration::from_secs(2)));
}

#[test]
fn an_error_in_a_file_with_merge_keys_names_its_field_and_line() {
    let error = reject(&SHARED.replace("per_try: 1s", "per_try: soon"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[1].timeouts.per_try",
        10,
    );
}

#[test]
fn an_unknown_field_in_a_file_with_merge_keys_is_still_refused() {
    let error = reject(&SHARED.replace("per_try: 1s", "pertry: 1s"));
    assert_error(
        &error,
        ConfigErrorKind::UnknownField,
        "outbound.services[1].timeouts.pertry",
        10,
    );
}

#[test]
fn a_merge_key_that_names_no_mapping_is_refused() {
    let error = reject(&SHARED.replace("<<: *slow", "<<: 3"));
    assert_eq!(error.kind(), ConfigErrorKind::InvalidValue, "{error}");
    assert!(error.to_string().contains("merge key"), "{error}");
}

#[test]
fn a_key_written_twice_in_a_file_with_merge_keys_is_still_refused() {
    let error = reject(&format!(
        "{SHARED}policy:\n  workload:\n    labels:\n      app: web\n      app: api\n"
    ));
    assert_eq!(error.kind(), ConfigErrorKind::DuplicateField, "{error}");
    assert_eq!(error.line(), Some(15), "{error}");
}
