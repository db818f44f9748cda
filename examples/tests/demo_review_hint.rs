//! The `--admin-port 0` hint of a demo that cannot start: shown when an
//! admin port it was told to use is taken, and only then. A sidecar that
//! fails for another reason (out of file descriptors, an unreadable file)
//! is not helped by other ports, and a hint that says so sends the reader
//! the wrong way. Needs the program built:
//! `cargo build -p mesh-examples --example demo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::{
    demo::DemoError,
    sidecar::{
        StartError,
        wait_ready::{NotReady, wait_ready},
    },
};
use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpListener},
    process::{Command, Output},
    time::Duration,
};

/// Runs the demo with `args`, its file descriptors limited to `fds`.
fn demo_with_fds(fds: u32, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -n \"$0\" && exec \"$@\"")
        .arg(fds.to_string())
        .arg(support::example_binary("demo"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`")
}

/// A port that was free a moment ago, low enough for the next three to
/// be ports too.
fn free_admin_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port <= 65_532 {
            return port;
        }
    }
}

#[test]
fn a_sidecar_that_fails_for_want_of_descriptors_gets_no_port_hint() {
    // With few descriptors, the demo fails to write its files, then, with
    // a few more, to start a sidecar: the hint said the admin ports might
    // be taken, though none was.
    let mut seen = Vec::new();
    for fds in 10..=64 {
        let port = free_admin_port().to_string();
        let output = demo_with_fds(fds, &["--admin-port", &port, "--duration", "1s"]);
        let err = String::from_utf8_lossy(&output.stderr);
        let sidecar = err
            .lines()
            .any(|line| line.starts_with("demo: cannot start ") && line.ends_with("sidecar"));
        if !sidecar {
            seen.push(format!(
                "{fds}: {:?} {:?}",
                output.status.code(),
                err.lines().next()
            ));
            if output.status.success() || err.is_empty() {
                break;
            }
            continue;
        }
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(err.contains("Too many open files"), "{err}");
        assert!(!err.contains("hint"), "with {fds} descriptors: {err}");
        return;
    }
    panic!(
        "no descriptor limit made a sidecar fail to start:\n{}",
        seen.join("\n")
    );
}

#[test]
fn a_taken_admin_port_gets_the_hint_naming_it() {
    // web's admin port is held; voting's and emoji's, the next two, start
    // first.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    if port > 65_532 {
        return;
    }
    let output = Command::new(support::example_binary("demo"))
        .args(["--admin-port", &port.to_string(), "--duration", "1s"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.starts_with("demo: cannot start "), "{err}");
    assert!(err.contains("--admin-port 0"), "{err}");
    if err.contains("cannot start web's sidecar") {
        assert!(err.contains(&format!("127.0.0.1:{port} is taken")), "{err}");
    }
}

/// What waiting on an admin server nothing listens on ends with.
fn not_ready() -> NotReady {
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(wait_ready(refused, Duration::from_millis(10)))
        .unwrap_err()
}

#[test]
fn only_a_taken_admin_port_is_named() {
    let bind = |field: &str, addr: &str, kind: ErrorKind| {
        DemoError::Start(
            "web",
            StartError::Bind {
                field: field.into(),
                addr: addr.parse().unwrap(),
                source: kind.into(),
                sockets: 1,
            },
        )
    };
    let taken: SocketAddr = "127.0.0.1:4191".parse().unwrap();
    assert_eq!(
        bind("admin.listen", "127.0.0.1:4191", ErrorKind::AddrInUse).taken_admin_port(),
        Some(taken)
    );
    for not_taken in [
        // Another reason: other ports would not help.
        bind(
            "admin.listen",
            "127.0.0.1:4191",
            ErrorKind::PermissionDenied,
        ),
        // Out of ephemeral ports, Linux says "in use" for port 0 too;
        // the system picked it already.
        bind("admin.listen", "127.0.0.1:0", ErrorKind::AddrInUse),
        // Every other listener is on port 0.
        bind("outbound.listen", "127.0.0.1:0", ErrorKind::AddrInUse),
        DemoError::NotReady("web", not_ready()),
    ] {
        assert_eq!(not_taken.taken_admin_port(), None, "{not_taken:?}");
    }
}
