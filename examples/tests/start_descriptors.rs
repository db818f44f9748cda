//! A sidecar that runs out of file descriptors binding its listeners says
//! that the number of sockets (one per runtime thread) is the cause, not
//! the listener's address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::Command;

#[test]
fn too_many_threads_for_the_descriptor_limit_is_named_at_start() {
    let (_dir, config) = support::config::file(
        "admin:\n  listen: 127.0.0.1:0\noutbound:\n  listen: 127.0.0.1:0\nserver:\n  threads: 100\n",
    );
    // 64 descriptors cannot hold the outbound listener's 100 sockets.
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" run --config \"$1\"")
        .arg(support::sidecar_binary())
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "outbound.listen: cannot listen on 127.0.0.1:0 with 100 sockets, one per runtime thread (server.threads)"
        ),
        "{stderr}"
    );
}
