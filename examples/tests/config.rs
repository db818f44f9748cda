//! The sidecar's YAML configuration: what a good file gives, and how every
//! kind of bad file is reported (kind, field path, line).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use mesh_examples::sidecar::config::{
    ConfigError, ConfigErrorKind, DEFAULT_OPAQUE_PORTS, InboundPort, PortProtocol, ServerTuning,
    ServiceName, SidecarConfig, format_duration, parse_duration,
};

use crate::support;

use support::config::{assert_error, parse, reject};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

const FULL: &str = "\
inbound:
  listen: 0.0.0.0:4143
  app: 127.0.0.1:8080
  protocol: http
  ports:
    - listen: 0.0.0.0:4144
      app: 127.0.0.1:5432
    - listen: '[::]:4145'
      app: 127.0.0.1:9090
      protocol: opaque
outbound:
  listen: 127.0.0.1:4140
  services:
    - name: emoji
      endpoints: [127.0.0.1:8081, 127.0.0.1:8082]
    - name: voting.emojivoto.svc.cluster.local
      endpoints:
        - '[::1]:8083'
admin:
  listen: 127.0.0.1:9991
server:
  header_read_timeout: 5s
  detect_timeout: 1m30s
  max_connections: 250
  shutdown_grace: 500ms
  threads: 2
  http2_keep_alive_interval: 5s
  http2_keep_alive_timeout: 7s
  write_stall_timeout: 45s
  stream_idle_timeout: 5m
  max_request_head_bytes: 32768
";

#[test]
fn full_example_parses_to_the_values_written() {
    let config = parse(FULL).unwrap();
    assert_eq!(
        config.inbound.ports(),
        &[
            InboundPort {
                listen: addr("0.0.0.0:4143"),
                app: addr("127.0.0.1:8080"),
                protocol: PortProtocol::Http,
            },
            InboundPort {
                listen: addr("0.0.0.0:4144"),
                app: addr("127.0.0.1:5432"),
                protocol: PortProtocol::Opaque,
            },
            InboundPort {
                listen: addr("[::]:4145"),
                app: addr("127.0.0.1:9090"),
                protocol: PortProtocol::Opaque,
            },
        ]
    );
    assert_eq!(config.outbound.listen, addr("127.0.0.1:4140"));
    let services = &config.outbound.services;
    assert_eq!(services.len(), 2);
    assert_eq!(services[0].name.as_str(), "emoji");
    assert_eq!(
        services[0].endpoints,
        [addr("127.0.0.1:8081"), addr("127.0.0.1:8082")]
    );
    assert_eq!(
        services[1].name.as_str(),
        "voting.emojivoto.svc.cluster.local"
    );
    assert_eq!(services[1].endpoints, [addr("[::1]:8083")]);
    assert_eq!(config.admin.listen, addr("127.0.0.1:9991"));
    assert_eq!(
        config.server,
        ServerTuning {
            header_read_timeout: Duration::from_secs(5),
            detect_timeout: Duration::from_secs(90),
            max_connections: NonZeroUsize::new(250).unwrap(),
            shutdown_grace: Duration::from_millis(500),
            threads: 2,
            http2_keep_alive_interval: Some(Duration::from_secs(5)),
            http2_keep_alive_timeout: Duration::from_secs(7),
            write_stall_timeout: Duration::from_secs(45),
            stream_idle_timeout: Some(Duration::from_secs(300)),
            max_request_head_bytes: 32768,
        }
    );
    assert_eq!(config.server.worker_threads().get(), 2);
}

#[test]
fn defaults_are_linkerds_ports() {
    let config = parse("inbound:\n  app: 127.0.0.1:8080\n").unwrap();
    assert_eq!(
        config.inbound.ports(),
        &[InboundPort {
            listen: addr("0.0.0.0:4143"),
            app: addr("127.0.0.1:8080"),
            protocol: PortProtocol::Detect,
        }]
    );
    assert_eq!(config.outbound.listen, addr("127.0.0.1:4140"));
    assert!(config.outbound.services.is_empty());
    assert_eq!(config.admin.listen, addr("0.0.0.0:4191"));
    let server = config.server;
    assert_eq!(server.header_read_timeout, Duration::from_secs(60));
    assert_eq!(server.detect_timeout, Duration::from_secs(10));
    assert_eq!(server.max_connections.get(), 10_000);
    assert_eq!(server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(server.threads, 0);
    assert!(server.worker_threads().get() >= 1);
}

#[test]
fn server_first_app_ports_default_to_opaque() {
    assert_eq!(
        DEFAULT_OPAQUE_PORTS,
        [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]
    );
    for port in DEFAULT_OPAQUE_PORTS {
        let yaml = format!("inbound:\n  app: 127.0.0.1:{port}\n");
        let config = parse(&yaml).unwrap();
        assert_eq!(
            config.inbound.ports()[0].protocol,
            PortProtocol::Opaque,
            "{port}"
        );

        let yaml =
            format!("inbound:\n  ports:\n    - listen: 0.0.0.0:4150\n      app: 10.0.0.1:{port}\n");
        let config = parse(&yaml).unwrap();
        assert_eq!(
            config.inbound.ports()[0].protocol,
            PortProtocol::Opaque,
            "{port}"
        );
    }
    // Any other port is detected, and a protocol written in the file wins.
    let config = parse(
        "inbound:\n  app: 127.0.0.1:5433\n  ports:\n    - listen: 0.0.0.0:4144\n      app: 127.0.0.1:3306\n      protocol: detect\n",
    )
    .unwrap();
    assert_eq!(config.inbound.ports()[0].protocol, PortProtocol::Detect);
    assert_eq!(config.inbound.ports()[1].protocol, PortProtocol::Detect);
    // The default follows the application's port, not the listener's.
    let config = parse("inbound:\n  listen: 0.0.0.0:6379\n  app: 127.0.0.1:8080\n").unwrap();
    assert_eq!(config.inbound.ports()[0].protocol, PortProtocol::Detect);
}

#[test]
fn an_empty_file_is_the_default_configuration() {
    let default = SidecarConfig::default();
    assert!(default.inbound.ports().is_empty());
    assert!(default.outbound.services.is_empty());
    assert_eq!(default.outbound.listen.port(), 4140);
    assert_eq!(default.admin.listen.port(), 4191);
    for yaml in ["", "\n", "# nothing yet\n", "---\n", "~\n", "null\n"] {
        assert_eq!(parse(yaml).unwrap(), default, "{yaml:?}");
    }
}

#[test]
fn empty_sections_and_lists_mean_their_defaults() {
    let yaml = "inbound:\n  ports:\noutbound:\n  services:\nadmin:\nserver:\n";
    assert_eq!(parse(yaml).unwrap(), SidecarConfig::default());
}

#[test]
fn an_unclosed_bracket_is_a_syntax_error() {
    let error = reject(
        "outbound:\n  services:\n    - name: emoji\n      endpoints: [127.0.0.1:8081, 127.0.0.1:8082\nadmin:\n  listen: 0.0.0.0:4191\n",
    );
    assert_error(&error, ConfigErrorKind::Syntax, "", 5);
    let text = error.to_string();
    assert!(
        text.contains("while parsing a flow sequence at line 4"),
        "{text}"
    );
}

#[test]
fn bad_indentation_is_a_syntax_error() {
    // A key indented less than its siblings.
    let error = reject("outbound:\n  listen: 127.0.0.1:4140\n services: []\nadmin: {}\n");
    assert_error(&error, ConfigErrorKind::Syntax, "", 3);
    // A key indented more than its siblings.
    let error = reject(
        "admin:\n  listen: 0.0.0.0:4191\n\n\noutbound:\n  listen: 127.0.0.1:4140\n    services: []\n",
    );
    assert_error(&error, ConfigErrorKind::Syntax, "", 7);
    // A tab.
    let error = reject("outbound:\n\tlisten: 127.0.0.1:4140\n");
    assert_error(&error, ConfigErrorKind::Syntax, "", 2);
}

#[test]
fn syntax_errors_win_over_type_errors_before_them() {
    // Read in order, `listen: 1` is wrong first; the broken structure below
    // it is the real problem.
    let error = reject("outbound:\n  listen: 1\n services: [\n");
    assert_eq!(error.kind(), ConfigErrorKind::Syntax, "{error}");
}

#[test]
fn more_than_one_document_is_a_syntax_error() {
    let error = reject("admin: {}\n---\nadmin: {}\n");
    assert_eq!(error.kind(), ConfigErrorKind::Syntax);
}

#[test]
fn an_unknown_field_names_its_path_and_line() {
    let error =
        reject("# sidecar\noutbound:\n  listen: 127.0.0.1:4140\n  servcies:\n    - name: emoji\n");
    assert_error(
        &error,
        ConfigErrorKind::UnknownField,
        "outbound.servcies",
        4,
    );
    assert_eq!(error.column(), Some(3));
    assert!(
        error
            .to_string()
            .contains("expected one of `listen`, `services`, `ingress_mode`"),
        "{error}"
    );

    let error =
        reject("outbound:\n  services:\n    - name: emoji\n      endpoint: [127.0.0.1:1]\n");
    assert_error(
        &error,
        ConfigErrorKind::UnknownField,
        "outbound.services[0].endpoint",
        4,
    );
}

#[test]
fn an_unknown_section_is_an_unknown_field() {
    let error = reject("admin: {}\nlogging:\n  level: debug\n");
    assert_error(&error, ConfigErrorKind::UnknownField, "logging", 2);
    let error = reject("logging: {}\n");
    assert_error(&error, ConfigErrorKind::UnknownField, "logging", 1);
}

#[test]
fn a_port_out_of_range_is_an_invalid_address() {
    let error = reject("admin:\n  listen: 127.0.0.1:99999\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "admin.listen", 2);
    assert_eq!(
        error.to_string(),
        "sidecar.yaml: admin.listen: invalid socket address \"127.0.0.1:99999\" \
         (expected ip:port with a port up to 65535, such as 127.0.0.1:8080) at line 2 column 11"
    );
    assert!(error.source().is_none(), "the reason is in the message");
}

#[test]
fn nonsense_is_an_invalid_address() {
    let error = reject("outbound:\n  listen: nonsense\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "outbound.listen", 2);
    assert!(
        error
            .to_string()
            .contains("invalid socket address \"nonsense\"")
    );
    // Host names are not addresses.
    let error = reject("inbound:\n  app: localhost:8080\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "inbound.app", 2);
}

#[test]
fn a_bad_endpoint_is_reported_at_its_own_line_and_column() {
    let yaml = "\
inbound:
  app: 127.0.0.1:8080
outbound:
  listen: 127.0.0.1:4140
  services:
    - name: web
      endpoints: [127.0.0.1:9000]
    - name: emoji
      endpoints:
        - 127.0.0.1:8081
        - 127.0.0.1:8082
    - name: vote
      endpoints: [127.0.0.1:8083, 127.0.0.1:99999]
";
    let error = reject(yaml);
    assert_eq!(
        error.to_string(),
        "sidecar.yaml: outbound.services[2].endpoints[1]: invalid socket address \"127.0.0.1:99999\" \
         (expected ip:port with a port up to 65535, such as 127.0.0.1:8080) at line 13 column 35"
    );
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[2].endpoints[1]",
        13,
    );

    let error = reject(&yaml.replace("- 127.0.0.1:8082", "- 127.0.0.1:80820"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[1].endpoints[1]",
        11,
    );
    assert_eq!(error.column(), Some(11));
}

#[test]
fn a_value_of_the_wrong_shape_is_an_invalid_type() {
    let error = reject("outbound:\n  services: emoji\n");
    assert_error(&error, ConfigErrorKind::InvalidType, "outbound.services", 2);
    let error = reject("admin:\n  listen: [0.0.0.0:4191]\n");
    assert_error(&error, ConfigErrorKind::InvalidType, "admin.listen", 2);
    let error = reject("server:\n  threads: many\n");
    assert_error(&error, ConfigErrorKind::InvalidType, "server.threads", 2);
    let error = reject("[admin]\n");
    assert_error(&error, ConfigErrorKind::InvalidType, "", 1);
}

#[test]
fn two_listeners_on_one_port_are_rejected_at_the_second() {
    let yaml = "\
outbound:
  listen: 127.0.0.1:4191
admin:
  listen: 0.0.0.0:4191
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "admin.listen",
        4,
    );
    let text = error.to_string();
    assert!(
        text.contains("outbound.listen (127.0.0.1:4191, line 2)"),
        "{text}"
    );

    // The order in the file decides which one is second.
    let yaml = "admin:\n  listen: 0.0.0.0:4191\noutbound:\n  listen: 127.0.0.1:4191\n";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "outbound.listen",
        4,
    );
    assert!(error.to_string().contains("admin.listen"), "{error}");
}

#[test]
fn a_listener_on_a_default_port_is_the_one_reported() {
    // admin.listen is not written: it defaults to 0.0.0.0:4191.
    let error = reject("outbound:\n  listen: 127.0.0.1:4191\n");
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "outbound.listen",
        2,
    );
    let text = error.to_string();
    assert!(
        text.contains("admin.listen (0.0.0.0:4191, the default)"),
        "{text}"
    );

    // inbound.listen defaults to 0.0.0.0:4143.
    let yaml = "inbound:\n  app: 127.0.0.1:8080\n  ports:\n    - listen: 127.0.0.1:4143\n      app: 127.0.0.1:8081\n";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "inbound.ports[0].listen",
        4,
    );
    assert!(error.to_string().contains("inbound.listen"), "{error}");
}

#[test]
fn two_inbound_ports_on_one_port_are_rejected() {
    let yaml = "\
inbound:
  ports:
    - listen: 0.0.0.0:4144
      app: 127.0.0.1:8080
    - listen: 0.0.0.0:4145
      app: 127.0.0.1:8081
    - listen: 0.0.0.0:4144
      app: 127.0.0.1:8082
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "inbound.ports[2].listen",
        7,
    );
    assert!(
        error.to_string().contains("inbound.ports[0].listen"),
        "{error}"
    );
}

#[test]
fn listeners_that_cannot_collide_are_accepted() {
    // Port 0 asks the system for a free port each time.
    let yaml = "\
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:8080
  ports:
    - listen: 127.0.0.1:0
      app: 127.0.0.1:8081
outbound:
  listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
";
    assert_eq!(parse(yaml).unwrap().inbound.ports().len(), 2);
    // The same port on two different specific addresses.
    let yaml = "outbound:\n  listen: 127.0.0.1:4191\nadmin:\n  listen: 127.0.0.2:4191\n";
    assert!(parse(yaml).is_ok());
    // An application address is not a listener.
    let yaml = "inbound:\n  app: 127.0.0.1:4191\nadmin:\n  listen: 127.0.0.1:9991\n";
    assert!(parse(yaml).is_ok());
}

#[test]
fn an_empty_endpoint_list_is_rejected() {
    let error = reject("outbound:\n  services:\n    - name: emoji\n      endpoints: []\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].endpoints",
        4,
    );
    assert!(
        error.to_string().contains("at least one endpoint"),
        "{error}"
    );

    // `endpoints:` with nothing after it.
    let error = reject(
        "outbound:\n  services:\n    - name: emoji\n      endpoints:\n    - name: vote\n      endpoints: [127.0.0.1:1]\n",
    );
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].endpoints",
        4,
    );
}

#[test]
fn a_service_without_endpoints_is_missing_a_field() {
    let error = reject("outbound:\n  services:\n    - name: emoji\n");
    assert_error(
        &error,
        ConfigErrorKind::MissingField,
        "outbound.services[0].endpoints",
        3,
    );
}

#[test]
fn a_service_named_twice_is_rejected_at_the_second() {
    let yaml = "\
outbound:
  services:
    - name: emoji
      endpoints: [127.0.0.1:8081]
    - name: vote
      endpoints: [127.0.0.1:8082]
    - name: emoji
      endpoints: [127.0.0.1:8083]
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateService,
        "outbound.services[2].name",
        7,
    );
    assert!(
        error.to_string().contains("outbound.services[0]"),
        "{error}"
    );
}

#[test]
fn a_bad_service_name_is_rejected() {
    for name in [
        "Emoji",
        "emoji_svc",
        "-emoji",
        "emoji-",
        "emoji..svc",
        "'emoji.'",
        "''",
        "\"em oji\"",
    ] {
        let yaml =
            format!("outbound:\n  services:\n    - endpoints: [127.0.0.1:1]\n      name: {name}\n");
        let error = reject(&yaml);
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            "outbound.services[0].name",
            4,
        );
        assert!(
            error.to_string().contains("invalid service name"),
            "{error}"
        );
        // The reason follows the value, in parentheses.
        assert!(error.to_string().contains("\" ("), "{error}");
    }
    let long = "a".repeat(64);
    let error = reject(&format!(
        "outbound:\n  services:\n    - name: {long}\n      endpoints: [127.0.0.1:1]\n"
    ));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].name",
        3,
    );
}

#[test]
fn a_bad_duration_is_rejected() {
    let error = reject("server:\n  max_connections: 10\n  detect_timeout: 1.5s\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "server.detect_timeout",
        3,
    );
    assert_eq!(
        error.to_string(),
        "sidecar.yaml: server.detect_timeout: invalid timeout \"1.5s\" (expected 1 to 4 parts, \
         each a whole number of up to 5 digits followed by h, m, s or ms, such as 10s, 1m30s or 500ms) \
         at line 3 column 19"
    );

    let error = reject("server:\n  shutdown_grace: 30\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "server.shutdown_grace",
        2,
    );
    assert!(error.to_string().contains("such as 10s"), "{error}");
}

#[test]
fn a_zero_timeout_is_rejected_but_a_zero_grace_is_not() {
    let error = reject("server:\n  header_read_timeout: 0s\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "server.header_read_timeout",
        2,
    );
    let config = parse("server:\n  shutdown_grace: 0ms\n").unwrap();
    assert_eq!(config.server.shutdown_grace, Duration::ZERO);
}

#[test]
fn http2_pings_default_to_10s_and_20s_and_0s_turns_them_off() {
    let config = parse("").unwrap();
    assert_eq!(
        config.server.http2_keep_alive_interval,
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        config.server.http2_keep_alive_timeout,
        Duration::from_secs(20)
    );
    let config = parse("server:\n  http2_keep_alive_interval: 0s\n").unwrap();
    assert_eq!(config.server.http2_keep_alive_interval, None);
    let error = reject("server:\n  threads: 1\n  http2_keep_alive_timeout: 0s\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "server.http2_keep_alive_timeout",
        3,
    );
}

#[test]
fn the_write_stall_timeout_defaults_to_60s_and_is_never_zero() {
    assert_eq!(
        parse("").unwrap().server.write_stall_timeout,
        Duration::from_secs(60)
    );
    let error = reject("server:\n  threads: 1\n  write_stall_timeout: 0s\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "server.write_stall_timeout",
        3,
    );
}

#[test]
fn zero_max_connections_is_rejected() {
    let error = reject("server:\n  max_connections: 0\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "server.max_connections",
        2,
    );
}

#[test]
fn a_bad_protocol_is_rejected() {
    let error = reject("inbound:\n  app: 127.0.0.1:8080\n  protocol: tcp\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "inbound.protocol", 3);
    assert!(
        error.to_string().contains("invalid protocol \"tcp\""),
        "{error}"
    );
    assert!(error.to_string().contains("(expected"), "{error}");

    let error = reject(
        "inbound:\n  ports:\n    - listen: 0.0.0.0:4144\n      app: 127.0.0.1:8080\n      protocol: HTTP\n",
    );
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "inbound.ports[0].protocol",
        5,
    );
}

#[test]
fn an_inbound_listener_without_an_app_is_rejected() {
    let error = reject("admin: {}\ninbound:\n  listen: 0.0.0.0:4143\n");
    assert_error(&error, ConfigErrorKind::MissingField, "inbound.app", 3);
    let error = reject("inbound:\n  protocol: http\n");
    assert_error(&error, ConfigErrorKind::MissingField, "inbound.app", 2);
    // A port entry needs its own app.
    let error = reject("inbound:\n  ports:\n    - listen: 0.0.0.0:4144\n");
    assert_error(
        &error,
        ConfigErrorKind::MissingField,
        "inbound.ports[0].app",
        3,
    );
}

#[test]
fn a_key_written_twice_is_rejected() {
    let error = reject("admin:\n  listen: 0.0.0.0:4191\n  listen: 0.0.0.0:4192\n");
    assert_eq!(error.kind(), ConfigErrorKind::DuplicateField);
    assert_eq!(error.field_path(), "admin.listen");
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("mesh-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let good = dir.join("good.yaml");
    std::fs::write(&good, FULL).unwrap();
    assert_eq!(SidecarConfig::load(&good).unwrap(), parse(FULL).unwrap());

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "admin:\n  listen: nonsense\n").unwrap();
    let error = SidecarConfig::load(&bad).unwrap_err();
    assert_eq!(error.origin(), bad.display().to_string());
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: admin.listen: ", bad.display()))
    );

    let binary = dir.join("binary.yaml");
    // 'é' is two bytes but one column.
    std::fs::write(&binary, b"admin:\n  listen: '\xc3\xa9\xff'\n").unwrap();
    let error = SidecarConfig::load(&binary).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::Syntax);
    assert_eq!(error.line(), Some(2));
    assert_eq!(error.column(), Some(13));

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreadable_file_is_an_io_error_with_its_cause() {
    let missing = PathBuf::from("/nonexistent/mesh/sidecar.yaml");
    let error = SidecarConfig::load(&missing).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::Io);
    assert_eq!(error.field_path(), "");
    assert_eq!(error.line(), None);
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/mesh/sidecar.yaml: "),
        "{error}"
    );
    let cause = error
        .source()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(cause.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn durations_follow_the_gateway_api_format() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    for text in ["24h", "1m30s", "500ms", "1h1m1s1ms", "0s", "2h5ms"] {
        let duration = parse_duration(text).unwrap();
        assert_eq!(format_duration(duration), text, "round trip of {text}");
    }
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(
        parse_duration("1h30m30s500ms"),
        Ok(Duration::from_millis(5_430_500))
    );
    for bad in ["10", "1.5s", "100000s", "1s1s1s1s1s", "1d", "-1s", ""] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn service_names_match_hosts_ignoring_case_and_port() {
    let name: ServiceName = "emoji.emojivoto".parse().unwrap();
    assert_eq!(name.as_str(), "emoji.emojivoto");
    for authority in [
        "emoji.emojivoto",
        "EMOJI.emojivoto:8080",
        "emoji.emojivoto.",
        "emoji.emojivoto.:80",
    ] {
        assert!(name.matches_authority(authority), "{authority}");
    }
    for authority in [
        "emoji",
        "emoji.emojivoto.svc",
        "xemoji.emojivoto",
        "[::1]:80",
        "",
    ] {
        assert!(!name.matches_authority(authority), "{authority}");
    }
    assert!(ServiceName::try_from("a".repeat(63)).is_ok());
    let label = "a".repeat(63);
    let four_labels = [label.as_str(); 4].join(".");
    assert_eq!(four_labels.len(), 255);
    assert!(ServiceName::try_from(four_labels).is_err());
    let three_and_a_bit = format!("{}.b", [label.as_str(); 3].join("."));
    assert_eq!(three_and_a_bit.len(), 193);
    assert!(ServiceName::try_from(three_and_a_bit).is_ok());

    let config = parse(FULL).unwrap();
    let routed = config.outbound.service_for("Emoji:4140").unwrap();
    assert_eq!(routed.name.as_str(), "emoji");
    assert!(config.outbound.service_for("web").is_none());
}

#[test]
fn errors_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ConfigError>();
}

const TCP_PORTS: &str = "\
outbound:
  listen: 127.0.0.1:4140
  services:
    - name: db
      endpoints: [127.0.0.1:5432]
    - name: cache
      endpoints: [127.0.0.1:6379]
  ports:
    - listen: 127.0.0.1:15432
      service: db
    - listen: 127.0.0.1:16379
      service: cache
";

#[test]
fn outbound_tcp_ports_parse_in_file_order() {
    use mesh_examples::sidecar::config::OutboundPort;
    let config = parse(TCP_PORTS).unwrap();
    assert_eq!(
        config.outbound.ports,
        [
            OutboundPort {
                listen: addr("127.0.0.1:15432"),
                service: "db".parse().unwrap(),
                port: None,
            },
            OutboundPort {
                listen: addr("127.0.0.1:16379"),
                service: "cache".parse().unwrap(),
                port: None,
            },
        ]
    );
    assert!(parse("outbound: {}\n").unwrap().outbound.ports.is_empty());
}

#[test]
fn an_outbound_tcp_port_for_an_unknown_service_names_the_known_ones() {
    let yaml = TCP_PORTS.replace("service: cache", "service: cash");
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.ports[1].service",
        12,
    );
    let text = error.to_string();
    assert!(
        text.contains("\"cash\" is not in outbound.services"),
        "{text}"
    );
    assert!(text.contains("known: db, cache"), "{text}");

    let error = reject("outbound:\n  ports:\n    - listen: 127.0.0.1:15432\n      service: db\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.ports[0].service",
        4,
    );
    assert!(
        error.to_string().contains("outbound.services is empty"),
        "{error}"
    );
}

#[test]
fn an_outbound_tcp_port_clashing_with_another_listener_is_rejected() {
    // With the outbound listener.
    let yaml = TCP_PORTS.replace("127.0.0.1:16379", "127.0.0.1:4140");
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "outbound.ports[1].listen",
        11,
    );
    assert!(error.to_string().contains("outbound.listen"), "{error}");
    // With another TCP port.
    let yaml = TCP_PORTS.replace("127.0.0.1:16379", "127.0.0.1:15432");
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "outbound.ports[1].listen",
        11,
    );
    assert!(
        error.to_string().contains("outbound.ports[0].listen"),
        "{error}"
    );
    // With an inbound port on every interface, and the default admin one.
    let yaml = format!(
        "inbound:\n  listen: 0.0.0.0:15432\n  app: 127.0.0.1:8080\n{}",
        TCP_PORTS
    );
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "outbound.ports[0].listen",
        12,
    );
    assert!(error.to_string().contains("inbound.listen"), "{error}");
    let yaml = TCP_PORTS.replace("127.0.0.1:16379", "127.0.0.1:4191");
    let error = reject(&yaml);
    assert!(error.to_string().contains("admin.listen"), "{error}");
    // An application address that is a TCP port would loop.
    let yaml = format!("inbound:\n  app: 127.0.0.1:15432\n{TCP_PORTS}");
    let error = reject(&yaml);
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.app", 2);
    assert!(
        error.to_string().contains("outbound.ports[0].listen"),
        "{error}"
    );
}

#[test]
fn an_outbound_tcp_port_needs_listen_and_service_and_nothing_else() {
    let yaml = "outbound:\n  services:\n    - name: db\n      endpoints: [127.0.0.1:5432]\n  ports:\n    - listen: 127.0.0.1:15432\n";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::MissingField,
        "outbound.ports[0].service",
        6,
    );
    let yaml = "outbound:\n  services:\n    - name: db\n      endpoints: [127.0.0.1:5432]\n  ports:\n    - service: db\n";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::MissingField,
        "outbound.ports[0].listen",
        6,
    );
    let yaml = "outbound:\n  services:\n    - name: db\n      endpoints: [127.0.0.1:5432]\n  ports:\n    - listen: 127.0.0.1:15432\n      service: db\n      retry: {}\n";
    let error = reject(yaml);
    assert_eq!(error.kind(), ConfigErrorKind::UnknownField, "{error}");
    assert_eq!(error.field_path(), "outbound.ports[0].retry", "{error}");
    let yaml = "outbound:\n  services:\n    - name: db\n      endpoints: [127.0.0.1:5432]\n  ports:\n    - listen: localhost:15432\n      service: db\n";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.ports[0].listen",
        6,
    );
}

/// The complete file `examples/CONFIG.md` opens with is one the sidecar
/// reads: every field it shows exists and takes the value shown.
#[test]
fn the_complete_file_in_config_md_reads() {
    let doc = include_str!("../CONFIG.md");
    let after = doc
        .split_once("## A complete file")
        .expect("CONFIG.md has a complete file")
        .1;
    let yaml = after
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the complete file is a yaml block")
        .0;
    let config = parse(yaml).unwrap_or_else(|error| panic!("CONFIG.md: {error}"));
    assert_eq!(config.server.write_stall_timeout, Duration::from_secs(60));
    assert_eq!(config.server.stream_idle_timeout, None);
}
