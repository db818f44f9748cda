//! `RUST_LOG` as the sidecar reads it: a filter that does not parse is
//! named in a warning, rather than silently replaced, and an empty one
//! (`value: ""` in a manifest) is the same as none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use support::sidecar_binary;

/// The sidecar's log lines, from its start to the `sidecar started` line,
/// run with `RUST_LOG` set to `filter`. Empty when nothing is logged
/// before that line's time is up.
fn log_until_started(filter: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        "outbound: {listen: 127.0.0.1:0}\nadmin: {listen: 127.0.0.1:0}\n",
    )
    .unwrap();
    let mut child = Command::new(sidecar_binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", filter)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sidecar example is built: run `cargo test` without `--test`");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
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
