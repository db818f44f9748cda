//! What the configuration file takes, read as a demanding first user
//! writes it: retried statuses and codes that would retry successes,
//! numbers out of range (negative, fractional, past any integer), merge
//! keys chained through anchors and the mistakes in what they merge, and
//! a control character: each refused at its field and line with what is
//! allowed, or read as Kubernetes' YAML reader reads it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mesh_examples::sidecar::{
    config::{ConfigErrorKind, SidecarConfig},
    policy,
};

use crate::support;

use support::config::{assert_error, parse, reject};

fn service_retry(retry: &str) -> String {
    format!(
        "outbound:\n  services:\n    - name: emoji\n      endpoints: [127.0.0.1:8081]\n      \
         retry: {retry}\n"
    )
}

#[test]
fn a_service_retry_on_grpc_ok_is_refused() {
    // `ok` was taken: every successful call of an `any_method` service
    // was sent again, as Linkerd refuses for `retry.linkerd.io/grpc`.
    for codes in ["ok", "unavailable,ok", "0"] {
        let error = reject(&service_retry(&format!(
            "{{grpc: '{codes}', any_method: true}}"
        )));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            "outbound.services[0].retry.grpc",
            5,
        );
        assert!(error.to_string().contains("ok (0)"), "{error}");
    }
    let config = parse(&service_retry("{grpc: 'unavailable,internal'}")).unwrap();
    assert!(config.outbound.services[0].retry.is_some());
}

#[test]
fn a_service_retry_on_successes_or_statuses_past_599_is_refused() {
    // `2xx` retried every request that succeeded, up to the budget;
    // `6xx` named statuses HTTP does not have.
    for (statuses, named) in [
        ("2xx", "200"),
        ("5xx,200", "200"),
        ("100-599", "200"),
        ("6xx", "600"),
        ("500-700", "600"),
    ] {
        let error = reject(&service_retry(&format!("{{http: '{statuses}'}}")));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            "outbound.services[0].retry.http",
            5,
        );
        let text = error.to_string();
        assert!(text.contains(named), "{statuses}: {text}");
        assert!(text.contains("100 to 599"), "{statuses}: {text}");
    }
    for statuses in ["5xx", "gateway-error", "429,500-504", "503", "408,4xx,5xx"] {
        let config = parse(&service_retry(&format!("{{http: '{statuses}'}}"))).unwrap();
        assert!(config.outbound.services[0].retry.is_some(), "{statuses}");
    }
}

#[test]
fn a_number_out_of_range_is_refused_with_the_range_not_a_rust_type() {
    // serde's integers said `expected usize` or `a nonzero u32`, and
    // called -1 or 1.5 a value of the wrong type.
    let no_attempts = service_retry("{attempts: 0}");
    let negative_attempts = service_retry("{attempts: -3}");
    let cases = [
        (
            "server:\n  threads: -1\n",
            "server.threads",
            2,
            "from 0 to 1024",
        ),
        (
            "server:\n  threads: 1.5\n",
            "server.threads",
            2,
            "from 0 to 1024",
        ),
        (
            "server:\n  threads: 99999999999999999999999\n",
            "server.threads",
            2,
            "from 0 to 1024",
        ),
        (
            "server:\n  max_connections: 0\n",
            "server.max_connections",
            2,
            "at least 1",
        ),
        (
            "server:\n  max_connections: -5\n",
            "server.max_connections",
            2,
            "at least 1",
        ),
        (
            "server:\n  max_connections: 18446744073709551616\n",
            "server.max_connections",
            2,
            "at least 1",
        ),
        (
            "server:\n  max_request_head_bytes: -100\n",
            "server.max_request_head_bytes",
            2,
            "from 8192 to 1048576",
        ),
        (
            no_attempts.as_str(),
            "outbound.services[0].retry.attempts",
            5,
            "from 1 to",
        ),
        (
            negative_attempts.as_str(),
            "outbound.services[0].retry.attempts",
            5,
            "from 1 to",
        ),
        (
            "policy:\n  workload:\n    ports: {http: 70000}\n",
            "policy.workload.ports.http",
            3,
            "from 1 to 65535",
        ),
    ];
    for (yaml, path, line, allowed) in cases {
        let error = reject(yaml);
        assert_error(&error, ConfigErrorKind::InvalidValue, path, line);
        let text = error.to_string();
        assert!(text.contains(allowed), "{text}");
        for jargon in ["usize", "u32", "u16", "u128", "nonzero"] {
            assert!(!text.contains(jargon), "{text}");
        }
    }
    // 1e3 is not the whole number 1000, which the field would take.
    let error = reject("server:\n  threads: 1e3\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "server.threads", 2);
    assert!(
        error.to_string().contains("invalid number 1000.0 "),
        "{error}"
    );
    // A word where a number belongs is still a value of the wrong type.
    let error = reject("server:\n  threads: many\n");
    assert_error(&error, ConfigErrorKind::InvalidType, "server.threads", 2);
    assert!(error.to_string().contains("from 0 to 1024"), "{error}");
    let error = reject(
        "outbound:\n  services:\n    - name: emoji\n      endpoints: [127.0.0.1:8081]\n      \
         budget: {retry_ratio: lots}\n",
    );
    assert_error(
        &error,
        ConfigErrorKind::InvalidType,
        "outbound.services[0].budget.retry_ratio",
        5,
    );
    assert!(!error.to_string().contains("f64"), "{error}");

    let config =
        parse("server:\n  threads: 1024\n  max_connections: 1\n  max_request_head_bytes: 8192\n")
            .unwrap();
    assert_eq!(config.server.threads, 1024);
    assert_eq!(config.server.max_connections.get(), 1);
    assert_eq!(config.server.max_request_head_bytes, 8192);
}

/// Three services, each built on the one before through an anchor that
/// has a merge key of its own.
const CHAINED: &str = "outbound:
  services:
    - name: emoji
      endpoints: [127.0.0.1:8081]
      timeouts: &base {request: 10s, per_try: 5s}
    - name: voting
      endpoints: [127.0.0.1:8082]
      timeouts: &quick {<<: *base, per_try: 1s}
    - name: web
      endpoints: [127.0.0.1:8083]
      timeouts:
        <<: *quick
        idle: 30s
";

#[test]
fn a_merged_anchor_brings_its_own_merges_along() {
    // The third service's `timeouts` was refused: `unknown field `<<``,
    // the second's merge key merged in unapplied.
    let config = parse(CHAINED).unwrap();
    let timeouts: Vec<_> = config
        .outbound
        .services
        .iter()
        .map(|service| service.timeouts)
        .collect();
    let secs = |s| Some(Duration::from_secs(s));
    assert_eq!(timeouts[0].request, secs(10));
    assert_eq!(timeouts[0].per_try, secs(5));
    // Written nearer wins: the anchor's own per_try over its base's.
    assert_eq!(timeouts[1].request, secs(10));
    assert_eq!(timeouts[1].per_try, secs(1));
    assert_eq!(timeouts[2].request, secs(10));
    assert_eq!(timeouts[2].per_try, secs(1));
    assert_eq!(timeouts[2].idle, secs(30));
}

#[test]
fn a_mistake_merged_in_is_refused_at_the_mapping_that_merges_it() {
    // The merged field is not written at its path: the error had no line.
    let yaml = "server:\n  threads: 1\n  <<: {detect_timeout: 1.5s}\n";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "server.detect_timeout",
        2,
    );
    let error = reject("server:\n  threads: 1\n  <<: {detect_timout: 1s}\n");
    assert_error(
        &error,
        ConfigErrorKind::UnknownField,
        "server.detect_timout",
        2,
    );
}

#[test]
fn a_merge_key_that_names_no_mapping_is_refused_where_it_is() {
    // It was refused with neither a field nor a line.
    let yaml = CHAINED.replace("<<: *quick", "<<: 30s");
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[2].timeouts",
        12,
    );
    assert!(error.to_string().contains("merge key"), "{error}");
}

#[test]
fn a_control_character_is_refused_at_its_line() {
    // The reader's refusal said `at position 21 at line 1 column 1`.
    let error = reject("server:\n  threads: 1\n\u{0}\n");
    assert_error(&error, ConfigErrorKind::Syntax, "", 3);
    assert_eq!(error.column(), Some(1), "{error}");
    assert!(!error.to_string().contains("position"), "{error}");
    let error = reject("server:\n  threads: 1\n  ab\u{1}: 2\n");
    assert_error(&error, ConfigErrorKind::Syntax, "", 3);
    assert_eq!(error.column(), Some(5), "{error}");
}

#[test]
fn an_inline_policy_mistake_after_blank_lines_is_reported_at_its_own_line() {
    // The blank line after `inline: |` is the text's first line: the
    // mistake on line 9 was reported at line 10.
    let yaml = "policy:
  inline: |

    apiVersion: policy.linkerd.io/v1beta3
    kind: Server
    metadata: {name: web}
    spec:
      podSelector: {matchLabels: {app: web}}
      proxyProtocol: carrier-pigeon
      port: 8080
";
    let config = parse(yaml).unwrap();
    let error = match policy::compile(&config.policy) {
        Ok(_) => panic!("a bad policy compiled"),
        Err(error) => error,
    };
    assert_eq!(error.line(), Some(9), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(
            "sidecar.yaml: policy.inline: document 1 (Server web): spec.proxyProtocol: "
        ),
        "{text}"
    );
    assert!(text.contains(" at line 9 column 22"), "{text}");
    // Without the blank line, everything moves up one.
    let config = parse(&yaml.replacen("|\n\n", "|\n", 1)).unwrap();
    let error = policy::compile(&config.policy).err().unwrap();
    assert_eq!(error.line(), Some(8), "{error}");
}

/// The environment `sidecar inject` gives a pod whose admin port is
/// annotated, with `addr` as the address.
fn admin_env(addr: &'static str) -> impl Fn(&str) -> Option<std::ffi::OsString> {
    move |name| (name == "MESH_ADMIN_LISTEN_ADDR").then(|| addr.into())
}

#[test]
fn a_listener_the_environment_moved_is_not_placed_at_the_files_line() {
    // The file's `admin.listen` on line 2 is not what clashes: the
    // variable's address is. The error pointed at line 2 all the same.
    let (_dir, path) = support::config::file("admin:\n  listen: 0.0.0.0:5191\n");
    let error = SidecarConfig::load_with_env(&path, admin_env("127.0.0.1:4140")).unwrap_err();
    assert_eq!(error.origin(), "environment", "{error}");
    assert_eq!(error.field_path(), "MESH_ADMIN_LISTEN_ADDR", "{error}");
    let text = error.to_string();
    assert!(
        text.contains("admin.listen: port 4140 is already taken by outbound.listen"),
        "{text}"
    );
    assert!(!text.contains("line 2"), "{text}");

    // A listener of the file's own that the moved one clashes with is
    // still placed at its line, and the moved one not at the file's.
    let yaml = "admin:
  listen: 0.0.0.0:5191
outbound:
  services:
    - name: db
      endpoints: [127.0.0.1:5432]
  ports:
    - listen: 127.0.0.1:15432
      service: db
";
    let (_dir, path) = support::config::file(yaml);
    let error = SidecarConfig::load_with_env(&path, admin_env("127.0.0.1:15432")).unwrap_err();
    assert_eq!(error.field_path(), "MESH_ADMIN_LISTEN_ADDR", "{error}");
    let text = error.to_string();
    assert!(
        text.contains(
            "outbound.ports[0].listen: port 15432 is already taken by admin.listen \
             (127.0.0.1:15432) at line 8 column 15"
        ),
        "{text}"
    );
    // Without the variable the file is fine, and with a free address too.
    let (_dir, path) = support::config::file(yaml);
    SidecarConfig::load_with_env(&path, |_| None).unwrap();
    let config = SidecarConfig::load_with_env(&path, admin_env("127.0.0.1:15191")).unwrap();
    assert_eq!(config.admin.listen.port(), 15191);
}

#[test]
fn a_tab_that_indents_is_named_a_tab() {
    // libyaml says only `found character that cannot start any token`.
    let error = reject("server:\n\tthreads: 1\n");
    assert_error(&error, ConfigErrorKind::Syntax, "", 2);
    assert!(
        error.to_string().contains("a tab cannot indent YAML"),
        "{error}"
    );
    let error = reject("outbound:\n  services:\n    - name: emoji\n\t  endpoints: []\n");
    assert_eq!(error.line(), Some(4), "{error}");
    assert!(error.to_string().contains("tab"), "{error}");
    // A tab between a key and its value is a separator, and no mistake.
    let config = parse("server:\n  threads:\t2\n").unwrap();
    assert_eq!(config.server.threads, 2);
}

#[test]
fn a_file_saved_as_utf16_is_refused_as_such() {
    let text: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain("server: {}\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (_dir, path) = support::config::file(text);
    let error = SidecarConfig::load(&path).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::Syntax, "{error}");
    assert_eq!(error.line(), Some(1), "{error}");
    assert!(error.to_string().contains("utf-16"), "{error}");
}

#[test]
fn a_clash_found_across_fields_in_a_merged_value_is_placed_at_its_mapping() {
    // The checks across fields run after the merge keys are applied, and
    // found no line for a value merged in.
    let error = reject("admin:\n  <<: {listen: 127.0.0.1:4140}\n");
    assert_error(
        &error,
        ConfigErrorKind::DuplicateListener,
        "admin.listen",
        2,
    );
    let yaml = "outbound:
  services:
    - &emoji {name: emoji, endpoints: [127.0.0.1:8081]}
    - <<: *emoji
      endpoints: [127.0.0.1:8082]
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::DuplicateService,
        "outbound.services[1].name",
        4,
    );
}
