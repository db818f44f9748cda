//! The balancer queues' settings in `outbound`: how many requests (HTTP)
//! and connections (TCP ports and `CONNECT`) may wait for an endpoint,
//! and for how long before the service fails fast, as Linkerd's
//! `LINKERD2_PROXY_OUTBOUND_{HTTP,TCP}_QUEUE_CAPACITY` and
//! `..._FAILFAST_TIMEOUT` set them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_core::proxy::Queue;
use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{assert_error, parse, reject};

#[test]
fn the_defaults_are_linkerds_for_http_and_tcp() {
    let config = parse("").unwrap();
    let linkerd = Queue::new(10_000, Duration::from_secs(3));
    assert_eq!(config.outbound.http_queue, linkerd);
    assert_eq!(config.outbound.tcp_queue, linkerd);
    let config = parse("outbound:\n  listen: 127.0.0.1:4140\n").unwrap();
    assert_eq!(config.outbound.http_queue, linkerd);
    assert_eq!(config.outbound.tcp_queue, linkerd);
}

#[test]
fn each_setting_is_read_on_its_own() {
    let config = parse(
        "outbound:\n  http_queue_capacity: 100\n  http_failfast_timeout: 500ms\n  \
         tcp_queue_capacity: 7\n  tcp_failfast_timeout: 1m\n",
    )
    .unwrap();
    assert_eq!(
        config.outbound.http_queue,
        Queue::new(100, Duration::from_millis(500))
    );
    assert_eq!(
        config.outbound.tcp_queue,
        Queue::new(7, Duration::from_secs(60))
    );
    // One left out keeps its default.
    let config = parse("outbound:\n  tcp_failfast_timeout: 10s\n").unwrap();
    assert_eq!(config.outbound.http_queue, Queue::default());
    assert_eq!(
        config.outbound.tcp_queue,
        Queue::new(10_000, Duration::from_secs(10))
    );
}

#[test]
fn a_zero_failfast_timeout_waits_for_nothing() {
    let config = parse("outbound:\n  http_failfast_timeout: 0s\n").unwrap();
    assert_eq!(
        config.outbound.http_queue.failfast_timeout(),
        Duration::ZERO
    );
}

#[test]
fn a_zero_capacity_is_refused_naming_the_key_value_and_line() {
    for key in ["http_queue_capacity", "tcp_queue_capacity"] {
        let error = reject(&format!(
            "outbound:\n  listen: 127.0.0.1:4140\n  {key}: 0\n"
        ));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            &format!("outbound.{key}"),
            3,
        );
        let text = error.to_string();
        assert!(text.contains("queue capacity 0"), "{text}");
        assert!(text.contains("at least 1"), "{text}");
    }
}

#[test]
fn a_capacity_that_is_no_whole_number_is_refused_where_it_is() {
    for value in ["-1", "1.5", "lots", "\"100\""] {
        let error = reject(&format!("outbound:\n  tcp_queue_capacity: {value}\n"));
        assert_eq!(error.field_path(), "outbound.tcp_queue_capacity", "{error}");
        assert_eq!(error.line(), Some(2), "{value}: {error}");
        assert!(error.to_string().contains("queue capacity"), "{error}");
    }
}

#[test]
fn a_failfast_timeout_that_is_no_duration_is_refused_with_its_value() {
    for key in ["http_failfast_timeout", "tcp_failfast_timeout"] {
        let error = reject(&format!("outbound:\n  {key}: 1.5s\n"));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            &format!("outbound.{key}"),
            2,
        );
        let text = error.to_string();
        assert!(text.contains("\"1.5s\""), "{text}");
        assert!(text.contains("1m30s"), "the format: {text}");
        // A bare number has no unit.
        let error = reject(&format!("outbound:\n  {key}: 3\n"));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            &format!("outbound.{key}"),
            2,
        );
        assert!(error.to_string().contains("\"3\""), "{error}");
    }
}
