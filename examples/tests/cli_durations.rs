//! The command line's durations: a zero `--interval`, `--window`,
//! `--timeout` or `--ttl` is a usage error naming the flag (exit code 2),
//! not a panic or a view divided by a zero window.
//!
//! Needs the binary: `cargo build -p mesh-examples --example sidecar`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::Command;

use support::sidecar_binary;

/// Runs the sidecar with `args` and returns its exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(sidecar_binary())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_zero_duration_on_the_command_line_is_a_usage_error() {
    // Port 1 on loopback refuses connections: nothing is ever reached, and
    // a duration that passed parsing would fail later with exit code 1.
    let cases: [&[&str]; 5] = [
        &["top", "--admin", "127.0.0.1:1", "--interval", "0s"],
        &["stat", "--admin", "127.0.0.1:1", "--window", "0ms"],
        &["routes", "--admin", "127.0.0.1:1", "--window", "0s"],
        &["check", "--config", "/nonexistent.yaml", "--timeout", "0s"],
        &[
            "certs",
            "issue",
            "--ca",
            "/nonexistent",
            "--identity",
            "spiffe://example.org/ns/a/sa/b",
            "--out",
            "/nonexistent/out",
            "--ttl",
            "0s",
        ],
    ];
    for args in cases {
        let (code, stderr) = run(args);
        let flag = args[args.len() - 2];
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(stderr.contains("greater than zero"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_positive_duration_passes_parsing() {
    // The same flags with a positive value get past parsing: the failure
    // is the unreachable admin server or the missing file (exit code 1).
    let cases: [&[&str]; 2] = [
        &["stat", "--admin", "127.0.0.1:1", "--window", "1ms"],
        &["check", "--config", "/nonexistent.yaml", "--timeout", "1s"],
    ];
    for args in cases {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
    }
}
