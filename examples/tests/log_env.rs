//! `RUST_LOG` as the sidecar reads it: a filter that does not parse is
//! named in a warning, rather than silently replaced, and an empty one
//! (`value: ""` in a manifest) is the same as none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use support::run_logging;

/// The sidecar's log lines, from its start to the `sidecar started` line,
/// run with `RUST_LOG` set to `filter`. Empty when nothing is logged
/// before that line's time is up.
fn log_until_started(filter: &str) -> Vec<String> {
    let (_dir, config) =
        support::config::file("outbound: {listen: 127.0.0.1:0}\nadmin: {listen: 127.0.0.1:0}\n");
    let (mut child, received) = run_logging(&config, filter);
    let mut seen = Vec::new();
    // A bound for a sidecar that never logs its start, not a measure.
    while let Ok(line) = received.recv_timeout(Duration::from_secs(10)) {
        let started = line.contains("sidecar started");
        seen.push(line);
        if started {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

#[test]
fn a_rust_log_that_does_not_parse_is_named_in_a_warning() {
    let lines = log_until_started("warn,mesh_core=loud");
    let warning = lines
        .iter()
        .find(|line| line.contains("WARN") && line.contains("RUST_LOG"))
        .unwrap_or_else(|| panic!("no warning about RUST_LOG in {lines:#?}"));
    assert!(warning.contains("mesh_core=loud"), "{warning}");
    assert!(warning.contains("info"), "says what it logs at: {warning}");
    assert!(
        lines.last().unwrap().contains("sidecar started"),
        "{lines:#?}"
    );
}

#[test]
fn an_empty_rust_log_is_the_default_filter() {
    let lines = log_until_started("");
    assert!(
        lines
            .last()
            .is_some_and(|line| line.contains("INFO") && line.contains("sidecar started")),
        "nothing logged at info with RUST_LOG empty: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("WARN")),
        "{lines:#?}"
    );
}
