//! `inbound.tls` and `inbound.access_log` apply to the inbound listeners.
//! Written with no listener (no `app`, no `ports`), they would apply to
//! nothing: an operator who wrote `tls: strict` would believe the workload
//! refuses plaintext while no listener is in front of it. As for
//! `inbound.listen` and `inbound.protocol`, the file is refused and the
//! missing `app` named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::config::ConfigErrorKind;
use mesh_tls::InboundMode;
use support::config::{assert_error, parse, reject};

#[test]
fn inbound_tls_without_a_listener_is_rejected() {
    let error = reject("identity:\n  dir: /a\ninbound:\n  tls: strict\n");
    assert_error(&error, ConfigErrorKind::MissingField, "inbound.app", 4);
    assert!(error.to_string().contains("inbound.tls"), "{error}");
}

#[test]
fn an_access_log_without_a_listener_is_rejected() {
    let error = reject("inbound:\n  access_log: json\n");
    assert_error(&error, ConfigErrorKind::MissingField, "inbound.app", 2);
    assert!(error.to_string().contains("inbound.access_log"), "{error}");
}

#[test]
fn inbound_tls_with_a_listener_from_app_or_ports_is_accepted() {
    let config =
        parse("identity:\n  dir: /a\ninbound:\n  app: 127.0.0.1:8080\n  tls: strict\n").unwrap();
    assert_eq!(config.inbound.tls, InboundMode::Strict);
    let config = parse(
        "identity:\n  dir: /a\ninbound:\n  tls: strict\n  access_log: apache\n  ports:\n    \
         - {listen: 0.0.0.0:4144, app: 127.0.0.1:5432}\n",
    )
    .unwrap();
    assert_eq!(config.inbound.tls, InboundMode::Strict);
    assert_eq!(config.inbound.ports().len(), 1);
}
