//! The `server` section's settings that only mean something together: a
//! ping timeout with pings turned off would be silently ignored, so it is
//! an error, as `ttl` beside certificate files is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{assert_error, parse, reject};

#[test]
fn a_ping_timeout_with_pings_turned_off_is_rejected_at_the_timeout() {
    let error = reject(
        "server:
  http2_keep_alive_interval: 0s
  http2_keep_alive_timeout: 5s
",
    );
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "server.http2_keep_alive_timeout",
        3,
    );
    assert!(
        error.to_string().contains("http2_keep_alive_interval"),
        "{error}"
    );
}

#[test]
fn pings_turned_off_alone_or_with_their_timeout_on_are_accepted() {
    let off = parse("server:\n  http2_keep_alive_interval: 0s\n").unwrap();
    assert_eq!(off.server.http2_keep_alive_interval, None);

    let on = parse("server:\n  http2_keep_alive_interval: 5s\n  http2_keep_alive_timeout: 5s\n")
        .unwrap();
    assert_eq!(
        on.server.http2_keep_alive_interval,
        Some(Duration::from_secs(5))
    );
    assert_eq!(on.server.http2_keep_alive_timeout, Duration::from_secs(5));
}

#[test]
fn the_request_head_bound_defaults_to_64_kib_and_takes_a_byte_count() {
    let default = parse("").unwrap();
    assert_eq!(default.server.max_request_head_bytes, 64 * 1024);
    let set = parse("server:\n  max_request_head_bytes: 16384\n").unwrap();
    assert_eq!(set.server.max_request_head_bytes, 16384);
}

#[test]
fn a_request_head_bound_out_of_range_is_rejected_with_the_range() {
    for value in ["100", "8191", "1048577"] {
        let error = reject(&format!(
            "server:\n  threads: 1\n  max_request_head_bytes: {value}\n"
        ));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            "server.max_request_head_bytes",
            3,
        );
        let text = error.to_string();
        assert!(
            text.contains("8192") && text.contains("1048576"),
            "{value}: {text}"
        );
    }
}

#[test]
fn more_threads_than_a_runtime_per_thread_can_take_is_rejected_with_the_range() {
    // Each thread is a runtime of its own with its listeners and timers:
    // 100,000 of them would fail at start, far from the file.
    let error = reject("server:\n  threads: 100000\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "server.threads", 2);
    assert!(error.to_string().contains("1024"), "{error}");
    assert_eq!(
        parse("server:\n  threads: 1024\n").unwrap().server.threads,
        1024
    );
}
