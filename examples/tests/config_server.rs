//! The `server` section's settings that only mean something together: a
//! ping timeout with pings turned off would be silently ignored, so it is
//! an error, as `ttl` beside certificate files is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

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
