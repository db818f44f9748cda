//! The sidecar's configuration and the policy files it reloads refuse a
//! text whose aliases stand for far more than it holds, as `sidecar
//! inject` does. One anchored list of ten thousand items referred to ten
//! thousand times is 50 KB of text and a hundred million values once
//! read into a tree (which a merge key, `<<`, makes the reader build).
//! A bad reload keeps the last good policy instead of taking the sidecar
//! down.
//!
//! Each bomb is read in a child process (this test binary again, one test
//! in it) whose memory is bounded to 2 GiB and CPU time to 60 s, so a
//! reader that follows every alias fails there rather than take the test
//! runner, or the machine, down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Command, sync::Arc};

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::config::{ConfigErrorKind, SidecarConfig};
use mesh_policy::{PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload};

/// Set in the child process: the test reads its bomb itself.
const CHILD: &str = "MESH_ALIASES_TEST_CHILD";

/// Runs test `name` of this binary in a child process with bounded memory
/// and CPU time; true when it passed.
fn passes_bounded(name: &str) -> bool {
    let output = Command::new("sh")
        .arg("-c")
        .arg(
            "ulimit -v 2097152 && ulimit -t 60 && \
             exec \"$0\" --exact \"$1\" --test-threads=1 --nocapture",
        )
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "child {name}: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.status.success() && stdout.contains("1 passed")
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Top-level fields: `x`, a list of `items` numbers, and `y`, which
/// refers to it `aliases` times; with a merge key, so the text is read
/// into a tree, unknown fields and all.
fn bomb(items: usize, aliases: usize) -> String {
    let list = vec!["1"; items].join(",");
    let refs = vec!["*a"; aliases].join(",");
    format!("<<: {{}}\nx: &a [{list}]\ny: [{refs}]\n")
}

const STRICT: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 80
";

#[test]
fn a_configuration_whose_aliases_stand_for_a_hundred_million_values_is_refused() {
    if !in_child() {
        assert!(passes_bounded(
            "a_configuration_whose_aliases_stand_for_a_hundred_million_values_is_refused"
        ));
        return;
    }
    let text = format!("# sidecar\n{}", bomb(10_000, 10_000));
    let error = SidecarConfig::from_yaml(&text, "sidecar.yaml").unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::LimitExceeded, "{error}");
    assert_eq!(error.origin(), "sidecar.yaml");
    // The count passes the bound inside the anchored list, on line 3.
    assert_eq!(error.line(), Some(3), "{error}");
    let message = error.to_string();
    assert!(message.contains("alias"), "{message}");
    assert!(
        message.contains(&(text.len() + 100_000).to_string()),
        "{message}"
    );
}

#[test]
fn a_configuration_that_reuses_anchors_is_read() {
    // Defaults merged into one place: what anchors are for.
    let text = "x: &a [1, 2, 3]\ny: [*a, *a]\n";
    let error = SidecarConfig::from_yaml(text, "sidecar.yaml").unwrap_err();
    // Read, and refused for its unknown field, not for its aliases.
    assert_ne!(error.kind(), ConfigErrorKind::LimitExceeded, "{error}");
}

#[test]
fn a_reloaded_policy_whose_aliases_stand_for_too_much_keeps_the_last_good_one() {
    if !in_child() {
        assert!(passes_bounded(
            "a_reloaded_policy_whose_aliases_stand_for_too_much_keeps_the_last_good_one"
        ));
        return;
    }
    let store = PolicyStore::new(
        Workload::new("default"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", STRICT)])
        .unwrap();
    let before = store.current();
    let changes = store.subscribe();

    let bad = format!("{STRICT}---\n{STRICT}{}", bomb(10_000, 10_000));
    let error = store
        .reload(&[PolicySource::new("policy.yaml", &bad)])
        .unwrap_err();
    assert_eq!(error.kind(), ResourceErrorKind::LimitExceeded, "{error}");
    assert_eq!(error.document(), Some(2), "{error}");
    assert!(Arc::ptr_eq(&before, &store.current()));
    assert!(!changes.has_changed().unwrap());
}
