//! `sidecar inject` refuses a manifest whose aliases stand for far more
//! than its text holds. One anchored list of ten thousand items,
//! referred to ten thousand times, is 50 KB of text and a hundred million
//! values once read: gigabytes. The YAML parser bounds how often aliases
//! are followed, not how much each one stands for, and kubectl's reader
//! refuses such a document ("excessive aliasing").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, InjectConfig, Outcome};
use support::sidecar_binary;

/// A ConfigMap, after a Deployment, whose list `a` of `items` numbers is
/// referred to `aliases` times.
fn bomb(items: usize, aliases: usize) -> String {
    let list = vec!["1"; items].join(",");
    let refs = vec!["*a"; aliases].join(",");
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  template:\n    \
         spec: {{containers: [{{name: web, image: web}}]}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\nx:\n  a: &a [{list}]\n  b: [{refs}]\n"
    )
}

/// Runs `sidecar inject -` on `input` with its memory bounded to 2 GiB
/// and its CPU time to 60 s, so a reader that follows every alias fails
/// here rather than take the machine down.
fn inject_bounded(input: &str) -> std::process::Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && ulimit -t 60 && exec \"$0\" inject -")
        .arg(sidecar_binary())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn aliases_that_stand_for_far_more_than_the_text_are_refused() {
    let output = inject_bounded(&bomb(10_000, 10_000));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("document 2") && stderr.contains("alias"),
        "{stderr}"
    );
}

#[test]
fn the_refusal_names_the_document_and_the_limit() {
    let error = inject::inject("bomb.yaml", &bomb(2_000, 1_000), &InjectConfig::new()).unwrap_err();
    let manifest = error.as_manifest().unwrap();
    assert_eq!(manifest.kind(), ResourceErrorKind::LimitExceeded);
    assert_eq!(manifest.document(), Some(2));
}

#[test]
fn aliases_as_manifests_use_them_are_read() {
    // A few hundred values reused a few times: what anchors are for.
    let injected = inject::inject("ok.yaml", &bomb(100, 100), &InjectConfig::new()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    assert_eq!(injected.notes[1].outcome, Outcome::NotAWorkload);
}
