//! The sidecar's log is plain text when standard error is not a terminal:
//! a log collected to a file or by a container runtime carries no colour
//! codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use support::sidecar_binary;

#[test]
fn a_log_written_to_a_pipe_has_no_colour_codes() {
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
        .env("RUST_LOG", "info")
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
    let line = received
        .recv_timeout(Duration::from_secs(20))
        .expect("a log line at start");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.contains("INFO"), "{line:?}");
    assert!(!line.contains('\x1b'), "colour codes in {line:?}");
}
