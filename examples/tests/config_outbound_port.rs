//! The `port` of an `outbound.ports` entry: the service port the TCP
//! listener stands for, which the service's `TLSRoute`s and `TCPRoute`s
//! are matched against; 1 to 65535 when written, the listener's own port
//! when not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::config::ConfigErrorKind;

use crate::support;

use support::config::{assert_error, parse, reject};

/// Service `db` with a TCP port for it, `more` written after its
/// `service`.
fn ports(more: &str) -> String {
    format!(
        "outbound:\n  services:\n    - name: db\n      endpoints: [127.0.0.1:5432]\n  \
         ports:\n    - listen: 127.0.0.1:15432\n      service: db\n{more}"
    )
}

#[test]
fn a_port_is_read_as_written_and_is_none_when_left_out() {
    let config = parse(&ports("      port: 5432\n")).unwrap();
    assert_eq!(config.outbound.ports[0].port, Some(5432));
    let config = parse(&ports("")).unwrap();
    assert_eq!(config.outbound.ports[0].port, None);
}

#[test]
fn port_zero_or_out_of_range_is_refused_where_written() {
    let error = reject(&ports("      port: 0\n"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.ports[0].port",
        8,
    );
    assert!(
        error.to_string().contains("port 0 is no service port"),
        "{error}"
    );
    let error = reject(&ports("      port: 70000\n"));
    assert_eq!(error.field_path(), "outbound.ports[0].port", "{error}");
}
