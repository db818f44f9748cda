//! Addresses the sidecar connects to: an inbound application address that
//! is one of the sidecar's own listeners (a forwarding loop), and port 0,
//! which no connection can reach, are refused with the field and line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::config::ConfigErrorKind;

use crate::support;

use support::config::{assert_error, parse, reject};

#[test]
fn an_inbound_app_that_is_its_own_listener_is_rejected() {
    // 0.0.0.0:4143 (the default inbound.listen) takes 127.0.0.1:4143 too:
    // every connection would be forwarded back to the listener.
    let error = reject("inbound:\n  app: 127.0.0.1:4143\n");
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.app", 2);
    assert!(error.to_string().contains("inbound.listen"), "{error}");

    let yaml = "\
inbound:
  ports:
    - listen: 0.0.0.0:4144
      app: 127.0.0.1:4144
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.ports[0].app", 4);
    assert!(
        error.to_string().contains("inbound.ports[0].listen"),
        "{error}"
    );
}

#[test]
fn an_inbound_app_on_another_sidecar_listener_is_rejected() {
    // The outbound listener, by default 127.0.0.1:4140.
    let error = reject("inbound:\n  app: 127.0.0.1:4140\n");
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.app", 2);
    assert!(error.to_string().contains("outbound.listen"), "{error}");

    // The admin listener, by default 0.0.0.0:4191, reached on loopback.
    let yaml = "\
inbound:
  app: 127.0.0.1:8080
  ports:
    - listen: 0.0.0.0:4150
      app: 127.0.0.1:4191
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.ports[0].app", 5);
    assert!(error.to_string().contains("admin.listen"), "{error}");

    // Another inbound listener of the same sidecar.
    let yaml = "\
inbound:
  app: 127.0.0.1:4144
  ports:
    - listen: 127.0.0.1:4144
      app: 127.0.0.1:8080
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.app", 2);
}

/// An address of this host that is not a loopback one: the address its
/// packets to the documentation network leave from (connecting a UDP
/// socket sends nothing).
fn this_hosts_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("198.51.100.1:9")
        .expect("a host with a route off loopback");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

#[test]
fn an_inbound_app_at_this_hosts_own_address_on_a_wildcard_listener_is_rejected() {
    // 0.0.0.0:4143 takes the host's every address, the pod's own IP
    // included: an application there on the listener's port is the
    // listener, and each connection would loop through the sidecar until
    // it ran out of file descriptors.
    let ip = this_hosts_address();
    let error = reject(&format!("inbound:\n  app: {ip}:4143\n"));
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.app", 2);
    assert!(error.to_string().contains("inbound.listen"), "{error}");
    // On another port it is the application.
    assert!(parse(&format!("inbound:\n  app: {ip}:8080\n")).is_ok());
}

#[test]
fn an_inbound_app_beside_a_listener_is_accepted() {
    // The same port on another specific address is another socket.
    let yaml = "inbound:\n  listen: 127.0.0.2:4143\n  app: 127.0.0.1:4143\n";
    assert_eq!(parse(yaml).unwrap().inbound.ports().len(), 1);
    // A listener on port 0 takes a port the system picks, never the app's.
    let yaml = "inbound:\n  listen: 127.0.0.1:0\n  app: 127.0.0.1:8080\n";
    assert!(parse(yaml).is_ok());
    // An application on another host, on the port the sidecar listens on.
    let yaml = "inbound:\n  app: 10.0.0.7:4143\n";
    assert!(parse(yaml).is_ok());
}

#[test]
fn an_inbound_app_on_port_zero_is_rejected() {
    let error = reject("inbound:\n  app: 127.0.0.1:0\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "inbound.app", 2);
    assert!(error.to_string().contains("port 0"), "{error}");

    let yaml = "\
inbound:
  ports:
    - listen: 0.0.0.0:4144
      app: 127.0.0.1:0
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "inbound.ports[0].app",
        4,
    );
}

#[test]
fn an_endpoint_on_port_zero_is_rejected_as_a_named_one_is() {
    let yaml = "\
outbound:
  services:
    - name: emoji
      endpoints: [127.0.0.1:8080, 127.0.0.1:0]
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].endpoints[1]",
        4,
    );
    assert!(error.to_string().contains("127.0.0.1:0"), "{error}");

    let yaml = "\
outbound:
  services:
    - name: emoji
      endpoints: ['[::1]:0']
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].endpoints[0]",
        4,
    );
}

#[test]
fn a_named_workload_port_of_zero_is_rejected() {
    // A Server that selects `port: http` would select port 0, which no
    // application port ever is.
    let error = reject("policy:\n  workload:\n    ports:\n      http: 0\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "policy.workload.ports.http",
        4,
    );
    let config = parse("policy:\n  workload:\n    ports:\n      http: 8080\n").unwrap();
    assert_eq!(config.policy.workload.ports["http"], 8080);
}

#[test]
fn an_ipv4_mapped_ipv6_address_is_the_ipv4_address_it_maps() {
    // [::ffff:127.0.0.1] is 127.0.0.1 on the wire: a connection to it
    // reaches the default inbound listener, 0.0.0.0:4143.
    let error = reject("inbound:\n  app: \"[::ffff:127.0.0.1]:4143\"\n");
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.app", 2);
    assert!(error.to_string().contains("inbound.listen"), "{error}");

    // The system lets both be bound with SO_REUSEPORT, and shares the
    // port's connections between them.
    let yaml = "\
outbound:
  listen: 127.0.0.1:4140
admin:
  listen: \"[::ffff:127.0.0.1]:4140\"
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "admin.listen",
        4,
    );
    assert!(error.to_string().contains("outbound.listen"), "{error}");

    let yaml = "\
outbound:
  listen: \"[::ffff:0.0.0.0]:4140\"
admin:
  listen: 127.0.0.1:4140
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "admin.listen",
        4,
    );

    // [::1] is not 127.0.0.1: an IPv4 listener does not take it.
    parse("inbound:\n  listen: 0.0.0.0:4143\n  app: \"[::1]:4143\"\n").unwrap();
}

#[test]
fn a_dashboard_peer_on_port_zero_is_rejected() {
    let yaml = "\
admin:
  dashboard:
    name: web
    peers:
      - {name: emoji, admin: 10.0.0.7:4191}
      - {name: voting, admin: 10.0.1.3:0}
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "admin.dashboard.peers[1].admin",
        6,
    );
    assert!(error.to_string().contains("port 0"), "{error}");
}

#[test]
fn a_trace_collector_on_port_zero_is_rejected() {
    let error = reject("tracing:\n  collector: http://127.0.0.1:0\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "tracing.collector",
        2,
    );
    assert!(error.to_string().contains("port 0"), "{error}");
    // Without a port, the URL's default (80) is meant, as written.
    parse("tracing:\n  collector: http://otel-collector.local\n").unwrap();
}

#[test]
fn an_ipv4_wildcard_and_an_ipv6_address_share_no_port() {
    // 0.0.0.0 takes the port on every IPv4 address and no IPv6 one, so a
    // listener on [::1] of the same port is another socket's.
    let yaml = "\
outbound:
  listen: 0.0.0.0:4140
admin:
  listen: \"[::1]:4140\"
";
    let config = parse(yaml).unwrap();
    assert_eq!(config.admin.listen, "[::1]:4140".parse().unwrap());

    // [::] is dual-stack (the system's default, which the sidecar keeps):
    // it takes the IPv4 addresses too, so it does clash with 127.0.0.1.
    let yaml = "\
outbound:
  listen: \"[::]:4140\"
admin:
  listen: 127.0.0.1:4140
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "admin.listen",
        4,
    );
    let yaml = "\
outbound:
  listen: 0.0.0.0:4140
admin:
  listen: \"[::]:4140\"
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "admin.listen",
        4,
    );
}
