//! The sidecar's log is plain text when standard error is not a terminal:
//! a log collected to a file or by a container runtime carries no colour
//! codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use support::run_logging;

#[test]
fn a_log_written_to_a_pipe_has_no_colour_codes() {
    let (_dir, config) =
        support::config::file("outbound: {listen: 127.0.0.1:0}\nadmin: {listen: 127.0.0.1:0}\n");
    let (mut child, received) = run_logging(&config, "info");
    let line = received
        .recv_timeout(Duration::from_secs(20))
        .expect("a log line at start");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.contains("INFO"), "{line:?}");
    assert!(!line.contains('\x1b'), "colour codes in {line:?}");
}
