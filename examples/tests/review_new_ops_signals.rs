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

/// The status line of `GET path` on the admin server at `admin`.
async fn admin_status(admin: std::net::SocketAddr, path: &str) -> String {
    let answer = support::raw_exchange(
        admin,
        &format!("GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"),
    )
    .await;
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_a_second_sigterm_during_the_drain_neither_cut_it_nor_read_files() {
    let (app, gate) = support::backend().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("routes.yaml");
    std::fs::write(&policy, "").unwrap();
    let inbound: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let (_config_dir, config) = support::config::file(format!(
        "inbound:\n  listen: {inbound}\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: {admin}\n\
         server:\n  threads: 1\n  shutdown_grace: 60s\n\
         policy:\n  files: [{}]\n  watch_interval: 1h\n",
        policy.display(),
    ));
    let (mut child, lines) = support::run_logging(&config, "info");
    wait_for(&lines, "sidecar started");

    // A request the application holds, so that the drain lasts.
    let held = tokio::spawn(async move {
        let req = http::Request::get(format!("http://{inbound}/hold"))
            .body(support::full(""))
            .unwrap();
        let res = support::http1().request(req).await.unwrap();
        let status = res.status();
        (status, support::body_bytes(res).await)
    });
    gate.arrived.notified().await;
    signal(&child, "-TERM");
    wait_for(&lines, "SIGTERM: draining");
    signal(&child, "-HUP");
    signal(&child, "-TERM");
    // Through the drain the admin server answers, /ready with 503.
    assert_eq!(
        admin_status(admin, "/ready").await,
        "HTTP/1.1 503 Service Unavailable"
    );
    assert_eq!(admin_status(admin, "/live").await, "HTTP/1.1 200 OK");

    // The held request finishes, then the sidecar stops, exiting 0.
    gate.release.notify_one();
    let (status, body) = held.await.unwrap();
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(&body[..], b"held");
    let log = wait_for(&lines, "sidecar stopped");
    assert!(!log.contains("SIGHUP"), "{log}");
    assert!(child.wait().unwrap().success());
}
