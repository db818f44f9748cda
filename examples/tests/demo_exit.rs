//! How the `demo` program ends, run as people run it: a closed terminal
//! must not leave the CA's keys behind, and flag values the demo cannot
//! honour are refused before anything starts. Needs the program built:
//! `cargo build -p mesh-examples --example demo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Output, Stdio},
};

fn demo() -> Command {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/demo");
    let mut command = Command::new(path);
    command.env("RUST_LOG", "off");
    command
}

/// Starts the demo, waits until it prints where its files are and its
/// dashboard (it is running by then), sends `signal`, and returns the
/// directory and how the program ended.
fn stop_with(signal: &str) -> (PathBuf, Output) {
    let mut child = demo()
        .args(["--admin-port", "0", "--rps", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("files: ") {
            dir = Some(PathBuf::from(rest.split(' ').next().unwrap()));
        }
        if line.starts_with("dashboard: ") {
            break;
        }
    }
    let dir = dir.expect("the demo printed its files");
    assert!(dir.join("ca").exists(), "{}", dir.display());
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Read the rest of standard output so the demo never blocks on it.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut output = child.wait_with_output().unwrap();
    output.stdout = rest.join("\n").into_bytes();
    (dir, output)
}

#[test]
fn a_closed_terminal_stops_the_demo_and_removes_its_ca_keys() {
    // Closing the terminal sends SIGHUP. Its default action ended the
    // process at once and left the CA's private keys in the temporary
    // directory.
    let (dir, output) = stop_with("-HUP");
    let left = dir.exists();
    if left {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(!left, "{} was left behind: {output:?}", dir.display());
    assert!(output.status.code().is_some(), "{output:?}");
}

fn refused(args: &[&str]) -> String {
    let output = demo().args(args).output().unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    assert!(output.stdout.is_empty(), "{args:?} started the demo");
    err
}

#[test]
fn a_request_rate_the_load_generator_cannot_keep_is_refused() {
    // Above a billion a second the request interval rounded to zero, and
    // the load generator panicked: the demo then failed with "web made no
    // calls" after the whole run.
    let err = refused(&["--rps", "2000000000", "--duration", "1s"]);
    assert!(err.contains("--rps"), "{err}");
    assert!(err.contains("1..=10000"), "{err}");
}

#[test]
fn admin_ports_that_would_run_past_65535_are_refused() {
    // web's admin port and the next three: from 65533 on, the last ones
    // were all clamped to 65535, the demo collided with itself and blamed
    // "ports 65533-65535 are taken".
    let err = refused(&["--admin-port", "65533", "--duration", "1s"]);
    assert!(err.contains("--admin-port"), "{err}");
    assert!(err.contains("65532"), "{err}");
}

#[test]
fn a_zero_duration_is_refused() {
    // `--duration 0s` ran no traffic to speak of and still printed "demo
    // passed".
    let err = refused(&["--duration", "0s"]);
    assert!(err.contains("--duration"), "{err}");
}

#[test]
fn a_reader_gone_before_the_summary_is_an_error_not_a_panic() {
    // `demo | head`: once the reader has gone, writing the summary with
    // `println!` panicked, with a backtrace and exit code 101, after a
    // run that may well have passed.
    let mut child = demo()
        .args(["--admin-port", "0", "--rps", "5", "--duration", "1s"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("files: ") {
            dir = Some(PathBuf::from(rest.split(' ').next().unwrap()));
        }
        if line.starts_with("dashboard: ") {
            break;
        }
    }
    // The reader goes away; at 1 s, before its first table, the demo
    // writes its summary.
    drop(lines);
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the output"), "{err}");
    // The verdict is not lost with standard output.
    assert!(
        err.contains("demo passed") || err.contains("demo FAILED"),
        "{err}"
    );
    let dir = dir.expect("the demo printed its files");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}
