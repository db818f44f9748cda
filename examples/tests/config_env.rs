//! `MESH_INGRESS_MODE` decides `outbound.ingress_mode` whatever the file
//! says; when the file says otherwise, the sidecar says which one it
//! follows, rather than silently run against what the file reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::Command;

use support::sidecar_binary;

/// The standard error of `sidecar check --pre` on `yaml`, with
/// `MESH_INGRESS_MODE` set to `env`.
fn check_stderr(yaml: &str, env: &str) -> String {
    let (_dir, config) = support::config::file(yaml);
    let output = Command::new(sidecar_binary())
        .args(["check", "--pre", "--config"])
        .arg(&config)
        .env("MESH_INGRESS_MODE", env)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    String::from_utf8(output.stderr).unwrap()
}

const LISTENERS: &str = "admin: {listen: 127.0.0.1:0}\n";

#[test]
fn an_environment_that_overrides_the_file_is_named_in_a_warning() {
    let yaml = format!("{LISTENERS}outbound:\n  listen: 127.0.0.1:0\n  ingress_mode: true\n");
    let stderr = check_stderr(&yaml, "false");
    let warning = stderr
        .lines()
        .find(|line| line.contains("WARN") && line.contains("MESH_INGRESS_MODE"))
        .unwrap_or_else(|| panic!("no warning in {stderr:?}"));
    assert!(warning.contains("outbound.ingress_mode"), "{warning}");
    assert!(warning.contains("line 4"), "{warning}");
}

#[test]
fn an_environment_that_agrees_with_the_file_or_fills_it_in_is_not_a_warning() {
    let written = format!("{LISTENERS}outbound:\n  listen: 127.0.0.1:0\n  ingress_mode: true\n");
    let stderr = check_stderr(&written, "true");
    assert!(!stderr.contains("MESH_INGRESS_MODE"), "{stderr}");

    // What `sidecar inject` does for an ingress: the file leaves it out.
    let unwritten = format!("{LISTENERS}outbound:\n  listen: 127.0.0.1:0\n");
    let stderr = check_stderr(&unwritten, "true");
    assert!(!stderr.contains("MESH_INGRESS_MODE"), "{stderr}");
}
