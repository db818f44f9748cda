//! A trace collector that is one of the sidecar's own listeners: spans
//! sent to the admin server are refused with 404, and spans sent to an
//! inbound listener go to the application. Either is a mistake in the
//! file, refused at `tracing.collector` as an application address that is
//! a listener of the sidecar is. `sidecar check` would otherwise see the
//! address accept connections and pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::config::ConfigErrorKind;

use crate::support;

use support::config::{assert_error, parse, reject};

#[test]
fn a_collector_on_the_admin_server_is_refused() {
    // admin.listen is 0.0.0.0:4191 by default.
    let error = reject("tracing:\n  collector: http://127.0.0.1:4191\n");
    assert_error(&error, ConfigErrorKind::Conflict, "tracing.collector", 2);
    let text = error.to_string();
    assert!(text.contains("admin.listen"), "{text}");
}

#[test]
fn a_collector_on_an_inbound_or_outbound_listener_is_refused() {
    let yaml = "\
inbound:
  listen: 127.0.0.1:4143
  app: 127.0.0.1:8080
tracing:
  collector: http://127.0.0.1:4143/v1/traces
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Conflict, "tracing.collector", 5);
    assert!(error.to_string().contains("inbound.listen"), "{error}");

    let yaml = "\
outbound:
  listen: \"[::1]:4140\"
tracing:
  collector: http://[::1]:4140
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Conflict, "tracing.collector", 4);
}

#[test]
fn a_collector_elsewhere_is_accepted() {
    parse("tracing:\n  collector: http://127.0.0.1:4318\n").unwrap();
    parse("tracing:\n  collector: http://otel-collector.tracing:4318\n").unwrap();
    // Port 80 when the URL names none: no listener of the sidecar there.
    parse("tracing:\n  collector: http://127.0.0.1\n").unwrap();
}
