//! SIGHUP while `sidecar run` reads its configuration file: the signal's
//! default action would end the process before it serves, so the sidecar
//! listens for it before it reads anything. These run the `sidecar`
//! binary (`cargo build -p mesh-examples --example sidecar` first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::Write as _;

use support::{signal, wait_for};

const YAML: &str = "outbound:\n  listen: 127.0.0.1:0\n\
                    admin:\n  listen: 127.0.0.1:0\n\
                    server:\n  threads: 1\n  shutdown_grace: 0s\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_while_the_configuration_file_is_read_does_not_end_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    // A named pipe: the sidecar's read of its configuration waits for the
    // test to write it, so that the signal comes while it reads.
    let config = dir.path().join("sidecar.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&config)
        .status()
        .unwrap();
    assert!(made.success());
    let (mut child, lines) = support::run_logging(&config, "info");
    // Opening the pipe to write returns once the sidecar has opened it to
    // read: it is reading its configuration.
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&config)
        .unwrap();
    signal(&child, "-HUP");
    writer.write_all(YAML.as_bytes()).unwrap();
    drop(writer);

    let log = wait_for(&lines, "sidecar started");
    assert!(!log.contains("error"), "{log}");
    // The signal, pending while the sidecar started, reads what there is
    // to read, here nothing, and the sidecar serves on.
    wait_for(&lines, "SIGHUP: no policy files to read again");
    signal(&child, "-TERM");
    wait_for(&lines, "sidecar stopped");
    assert!(child.wait().unwrap().success());
}
