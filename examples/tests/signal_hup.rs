//! SIGHUP reads the policy files at once, rather than at the next
//! `policy.watch_interval`, with the rules of a reload found by polling: a
//! change is put in force whole, a bad one is refused and named in the log
//! while the last good policy stays, and the sidecar keeps serving (the
//! signal's default action would end it). These run the `sidecar` binary
//! (`cargo build -p mesh-examples --example sidecar` first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, StatusCode};
use support::{
    full,
    policy::{AUTHZ, DANGLING, authz_closed},
    signal, wait_for,
};

/// The status of a GET through the inbound listener at `inbound`.
async fn inbound_status(inbound: SocketAddr) -> StatusCode {
    let req = Request::get(format!("http://{inbound}/list"))
        .body(full(""))
        .unwrap();
    support::http1().request(req).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_policy_files_now_and_a_bad_change_keeps_the_last_good_one() {
    let app = support::ok_app(false).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, AUTHZ).unwrap();
    let inbound: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    // Read every hour: within the test, only SIGHUP reads them again.
    let (_config_dir, config) = support::config::file(format!(
        "inbound:\n  listen: {inbound}\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  shutdown_grace: 0s\n\
         policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
         \x20   ports: {{http: {}}}\n  default_policy: deny\n  files: [{}]\n  watch_interval: 1h\n",
        app.port(),
        policy.display(),
    ));
    let (mut child, lines) = support::run_logging(&config, "info");
    wait_for(&lines, "sidecar started");
    assert_eq!(inbound_status(inbound).await, StatusCode::OK);

    // A good change, in force once SIGHUP has read it.
    support::replace_file(&policy, authz_closed());
    signal(&child, "-HUP");
    let log = wait_for(&lines, "policy files reloaded, as asked");
    assert!(
        log.contains("SIGHUP: reading the policy files again"),
        "{log}"
    );
    assert_eq!(inbound_status(inbound).await, StatusCode::FORBIDDEN);

    // A bad change: named in the log, and the last good policy stays.
    support::replace_file(&policy, authz_closed() + DANGLING);
    signal(&child, "-HUP");
    let refused = wait_for(&lines, "policy rejected");
    assert!(refused.contains("policy.yaml"), "{refused}");
    assert!(refused.contains("dangling"), "{refused}");
    assert_eq!(inbound_status(inbound).await, StatusCode::FORBIDDEN);

    // Asked again with the same bad file: it is named again.
    signal(&child, "-HUP");
    let again = wait_for(&lines, "policy rejected");
    assert!(again.contains("dangling"), "{again}");

    // Unchanged files are said to be, and nothing changes.
    support::replace_file(&policy, authz_closed());
    signal(&child, "-HUP");
    wait_for(&lines, "policy files reloaded, as asked");
    signal(&child, "-HUP");
    wait_for(&lines, "policy files unchanged");
    assert_eq!(inbound_status(inbound).await, StatusCode::FORBIDDEN);

    // It still serves, and stops on SIGTERM as before.
    signal(&child, "-TERM");
    wait_for(&lines, "sidecar stopped");
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_policy_files_says_so_and_keeps_serving() {
    let (_config_dir, config) = support::config::file(
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  shutdown_grace: 0s\n",
    );
    let (mut child, lines) = support::run_logging(&config, "info");
    wait_for(&lines, "sidecar started");
    signal(&child, "-HUP");
    wait_for(&lines, "SIGHUP: no policy files to read again");
    signal(&child, "-TERM");
    wait_for(&lines, "sidecar stopped");
    assert!(child.wait().unwrap().success());
}
