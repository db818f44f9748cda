//! A sidecar that says it started keeps its admin port open: one whose
//! runtime could not be built (out of file descriptors) logged the
//! failure from its thread, which then ended and closed its listeners,
//! yet `start` had returned their addresses, and the program logged
//! "sidecar started" and ran on serving nothing, so that its probes
//! failed instead of its start. Needs the program built:
//! `cargo build -p mesh-examples --example sidecar`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, ErrorKind, Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

fn sidecar_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/sidecar")
}

/// Whether the admin port at `admin` is closed: nothing listens on it.
/// A port that takes the connection and then gives no answer, or a short
/// one, is open: that is a sidecar that runs, short of descriptors for
/// the connection.
fn refused(admin: &str) -> bool {
    let Ok(mut conn) = TcpStream::connect(admin) else {
        return true;
    };
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sent =
        conn.write_all(b"GET /live HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    let mut answer = String::new();
    let read = sent.and_then(|()| conn.read_to_string(&mut answer));
    read.is_err_and(|e| matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe))
}

#[test]
fn a_sidecar_whose_runtime_cannot_be_built_fails_to_start() {
    // With two threads, the second may fail after the first serves: that
    // one must stop too, its listeners closed.
    for threads in [1, 2] {
        runs_out_of_descriptors(threads);
    }
}

fn runs_out_of_descriptors(threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "outbound:\n  listen: 127.0.0.1:0\n  services: []\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: {threads}\n"
        ),
    )
    .unwrap();
    let mut failures = 0;
    // From too few descriptors to start at all, to enough.
    for fds in 8..=28 {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -n \"$0\" && exec \"$@\"")
            .arg(fds.to_string())
            .arg(sidecar_path())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "the sidecar example is built: `cargo build -p mesh-examples --example sidecar`",
            );
        let (lines, read) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut log = Vec::new();
        let mut admin = None;
        // A bound on a program that hangs while starting (it waited for
        // word from a runtime thread that had panicked); it starts or
        // fails at once.
        loop {
            let line = match read.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "with {fds} descriptors and {threads} threads, the sidecar \
                         neither started nor failed: {log:#?}"
                    );
                }
            };
            log.push(line.clone());
            if line.contains("sidecar started") {
                let addr = line.split("admin=").nth(1).unwrap();
                admin = Some(addr.split(' ').next().unwrap().to_owned());
                break;
            }
        }
        let Some(admin) = admin else {
            // It did not start: it said so and failed.
            let status = child.wait().unwrap();
            assert!(!status.success(), "with {fds} descriptors: {log:#?}");
            assert_reported(status, &log, fds);
            failures += 1;
            continue;
        };
        // Before, the thread whose runtime failed dropped its listeners
        // and ended, and the program ran on with its admin port closed.
        if !refused(&admin) {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        // Closed: then the program must have failed, not run on. Its
        // standard error closes when it exits, at once; the bound is on
        // one that runs on.
        let exited = loop {
            match read.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break true,
                Err(mpsc::RecvTimeoutError::Timeout) => break false,
            }
        };
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert!(
            exited && !status.success(),
            "with {fds} descriptors and {threads} threads, the sidecar said it started, runs on, and \
             its admin port is closed: {log:#?}"
        );
        assert_reported(status, &log, fds);
        failures += 1;
    }
    assert!(failures > 0, "every run had descriptors enough");
}

/// A failure short of descriptors is an error the program reports and
/// exits 1 with, not a panic of the program (exit code 101). (tokio
/// itself panics, caught, in a runtime thread that cannot make its
/// signal pipe; that message may be in the log.)
fn assert_reported(status: std::process::ExitStatus, log: &[String], fds: u32) {
    assert_eq!(status.code(), Some(1), "with {fds} descriptors: {log:#?}");
}
