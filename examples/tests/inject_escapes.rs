//! `sidecar inject` writes what it read from a manifest to standard error,
//! a terminal: names, kinds and namespaces. A manifest from anywhere may
//! hold escape sequences there, which would act on the terminal, or a
//! newline, which would forge a note; each control character is written
//! escaped, in notes, warnings and errors alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::inject::{self, InjectConfig};
use support::sidecar_cli_with_input;

/// A Service, and a Deployment with a Linkerd annotation inject warns
/// about, named with a screen clear, a bell, a C1 CSI and a newline.
const HOSTILE: &str = "\
apiVersion: v1
kind: Service
metadata: {name: \"svc\\e[31m\\u009b2J\"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: \"web\\e[2J\", namespace: \"ns\\a\\nforged: injected\"}
spec:
  template:
    metadata:
      annotations: {config.linkerd.io/opaque-ports: '3306'}
    spec:
      containers: [{name: web, image: web}]
";

fn run(input: &str) -> (Option<i32>, String, String) {
    let output = sidecar_cli_with_input(&["inject", "-"], input);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect()
}

#[test]
fn notes_and_warnings_escape_the_control_characters_of_names() {
    let (code, _, stderr) = run(HOSTILE);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(controls(&stderr), [], "{stderr:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "one line per note and warning: {stderr}");
    assert_eq!(
        lines[0],
        "stdin: document 1 (Service svc\\u{1b}[31m\\u{9b}2J): not a workload, passed through unchanged"
    );
    assert_eq!(
        lines[1],
        "stdin: document 2 (Deployment web\\u{1b}[2J): injected"
    );
    assert!(
        lines[2].contains("on Deployment ns\\u{7}\\u{a}forged: injected/web\\u{1b}[2J (at"),
        "{}",
        lines[2]
    );
}

#[test]
fn an_error_escapes_the_name_of_its_document() {
    let text = HOSTILE.replace("opaque-ports: '3306'", "proxy-cpu-limit: lots");
    let (code, stdout, stderr) = run(&text);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    assert_eq!(controls(&stderr), [], "{stderr:?}");
    assert!(
        stderr.contains("document 2 (Deployment web\\u{1b}[2J): spec.template"),
        "{stderr}"
    );
}

#[test]
fn the_manifests_keep_their_names_as_they_were() {
    let injected = inject::inject("hostile.yaml", HOSTILE, &InjectConfig::new()).unwrap();
    assert_eq!(injected.notes[1].name.as_deref(), Some("web\u{1b}[2J"));
    assert!(
        injected.yaml.contains("name: \"web\\e[2J\""),
        "{}",
        injected.yaml
    );
}
