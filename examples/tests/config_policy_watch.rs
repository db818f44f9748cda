//! `policy.watch_interval` says how often `policy.files` are read again.
//! Without files it would be silently ignored (inline resources are part
//! of the configuration file, read once), so it is an error, as
//! `identity.watch_interval` beside `identity.ca` is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{assert_error, parse, reject};

#[test]
fn a_watch_interval_without_files_to_watch_is_rejected() {
    let error = reject(
        "policy:
  default_policy: deny
  watch_interval: 1s
",
    );
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "policy.watch_interval",
        3,
    );
    assert!(error.to_string().contains("policy.files"), "{error}");

    let error = reject("policy:\n  watch_interval: 1s\n  files: []\n  inline: ''\n");
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "policy.watch_interval",
        2,
    );
}

#[test]
fn a_watch_interval_with_files_is_kept() {
    let config = parse("policy:\n  files: [policy.yaml]\n  watch_interval: 1s\n").unwrap();
    assert_eq!(config.policy.watch_interval, Duration::from_secs(1));
}
