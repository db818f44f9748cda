//! The configuration of the mesh features: `identity`, `inbound.tls`, the
//! outbound services' TLS, retries and timeouts, and `policy`. Each bad
//! value is reported with its kind, field path and line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use mesh_examples::sidecar::config::{ConfigErrorKind, CredentialSource, InboundMode, OutboundTls};

use crate::support;

use support::config::{assert_error, parse, reject};

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";

#[test]
fn identity_from_a_directory_watches_its_three_files() {
    let config = parse("identity:\n  dir: /var/run/mesh\n").unwrap();
    let identity = config.identity.unwrap();
    let CredentialSource::Files { files, interval } = identity.source else {
        panic!("{identity:?}");
    };
    assert_eq!(files.cert, PathBuf::from("/var/run/mesh/tls.crt"));
    assert_eq!(files.key, PathBuf::from("/var/run/mesh/tls.key"));
    assert_eq!(files.bundle, PathBuf::from("/var/run/mesh/ca.crt"));
    assert_eq!(interval, Duration::from_secs(1));
    assert_eq!(identity.store.identity, None);
    assert_eq!(config.inbound.tls, InboundMode::Permissive);
}

#[test]
fn identity_from_explicit_files_checks_what_they_name() {
    let yaml = format!(
        "identity:\n  cert: /c/chain.pem\n  key: /c/key.pem\n  bundle: /c/roots.pem\n  \
         identity: {WEB}\n  trust_domain: example.org\n  watch_interval: 250ms\n"
    );
    let identity = parse(&yaml).unwrap().identity.unwrap();
    let CredentialSource::Files { files, interval } = &identity.source else {
        panic!("{identity:?}");
    };
    assert_eq!(files.key, PathBuf::from("/c/key.pem"));
    assert_eq!(*interval, Duration::from_millis(250));
    assert_eq!(identity.store.identity.as_ref().unwrap().as_str(), WEB);
    assert_eq!(
        identity.store.trust_domain.as_ref().unwrap().as_str(),
        "example.org"
    );
    assert_eq!(identity.identity().unwrap().as_str(), WEB);
}

#[test]
fn identity_from_a_ca_directory_issues_for_the_identity_given() {
    let yaml = format!("identity:\n  ca: ./dev-ca\n  identity: {WEB}\n");
    let identity = parse(&yaml).unwrap().identity.unwrap();
    let CredentialSource::Ca {
        dir,
        identity: id,
        ttl,
    } = &identity.source
    else {
        panic!("{identity:?}");
    };
    assert_eq!(dir, &PathBuf::from("./dev-ca"));
    assert_eq!(id.as_str(), WEB);
    assert_eq!(*ttl, Duration::from_secs(24 * 3600));
    assert_eq!(identity.trust_domain().unwrap().as_str(), "example.org");
}

#[test]
fn identity_sources_cannot_be_mixed_or_incomplete() {
    let error = reject("identity:\n  dir: /a\n  ca: /b\n  identity: x.example\n");
    assert_error(&error, ConfigErrorKind::Conflict, "identity.dir", 2);
    let error = reject("identity:\n  dir: /a\n  key: /b\n");
    assert_error(&error, ConfigErrorKind::Conflict, "identity.key", 3);
    let error = reject("admin: {}\nidentity:\n  cert: /a\n  key: /b\n");
    assert_error(&error, ConfigErrorKind::MissingField, "identity.bundle", 3);
    let error = reject("identity:\n  ca: /ca\n");
    assert_error(
        &error,
        ConfigErrorKind::MissingField,
        "identity.identity",
        2,
    );
    let error = reject("identity:\n  ttl: 1h\n  dir: /a\n");
    assert_error(&error, ConfigErrorKind::Conflict, "identity.ttl", 2);
    let error = reject(&format!(
        "identity:\n  ca: /ca\n  identity: {WEB}\n  watch_interval: 1s\n"
    ));
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "identity.watch_interval",
        4,
    );
    let error = reject("\nidentity: {}\n");
    assert_error(&error, ConfigErrorKind::MissingField, "identity.dir", 2);
    let error = reject(&format!(
        "identity:\n  ca: /ca\n  identity: {WEB}\n  trust_domain: other.org\n"
    ));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "identity.identity",
        3,
    );
}

#[test]
fn bad_identity_values_name_their_field() {
    let error = reject("identity:\n  ca: /ca\n  identity: 'spiffe://'\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "identity.identity",
        3,
    );
    // Why the identity is invalid follows it, in parentheses.
    assert!(error.to_string().contains("\"spiffe://\" ("), "{error}");
    let error = reject("identity:\n  dir: /a\ninbound:\n  tls: mandatory\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "inbound.tls", 4);
    assert!(error.to_string().contains("invalid tls mode"), "{error}");
}

#[test]
fn inbound_tls_other_than_disabled_needs_an_identity() {
    let error = reject("inbound:\n  app: 127.0.0.1:8080\n  tls: strict\n");
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.tls", 3);
    let config = parse("inbound:\n  app: 127.0.0.1:8080\n  tls: disabled\n").unwrap();
    assert_eq!(config.inbound.tls, InboundMode::Disabled);
    let config =
        parse("identity:\n  dir: /a\ninbound:\n  app: 127.0.0.1:8080\n  tls: strict\n").unwrap();
    assert_eq!(config.inbound.tls, InboundMode::Strict);
}

fn service(extra: &str) -> String {
    format!(
        "identity:\n  dir: /certs\noutbound:\n  services:\n    - name: emoji\n      \
         endpoints: [10.0.0.7:8080]\n{extra}"
    )
}

#[test]
fn a_service_with_an_identity_is_reached_over_mtls() {
    let config = parse(&service(&format!("      identity: {WEB}\n"))).unwrap();
    let OutboundTls::Mtls(expected) = &config.outbound.services[0].tls else {
        panic!("{config:?}");
    };
    assert_eq!(expected.as_str(), WEB);
    let config = parse(&service(&format!(
        "      identity: {WEB}\n      tls: mtls\n"
    )))
    .unwrap();
    assert!(matches!(
        config.outbound.services[0].tls,
        OutboundTls::Mtls(_)
    ));
    let config = parse(&service("      tls: plaintext\n")).unwrap();
    assert_eq!(config.outbound.services[0].tls, OutboundTls::Plaintext);
    let config = parse(&service("")).unwrap();
    assert_eq!(config.outbound.services[0].tls, OutboundTls::Plaintext);
}

#[test]
fn mtls_without_an_identity_is_rejected_at_its_line() {
    let error = reject(&service("      tls: mtls\n"));
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "outbound.services[0].tls",
        7,
    );
    assert!(error.to_string().contains("identity: spiffe://"), "{error}");
    let error = reject(&service(&format!(
        "      identity: {WEB}\n      tls: plaintext\n"
    )));
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "outbound.services[0].tls",
        8,
    );
    // Without an identity section, the sidecar has no certificate.
    let yaml =
        service(&format!("      identity: {WEB}\n")).replace("identity:\n  dir: /certs\n", "");
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "outbound.services[0].identity",
        5,
    );
    let yaml = service(&format!("      identity: {WEB}\n      tls: mtls\n"))
        .replace("identity:\n  dir: /certs\n", "");
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "outbound.services[0].tls",
        6,
    );
}

#[test]
fn the_policy_section_describes_the_workload_and_its_resources() {
    let yaml = "\
identity:
  ca: /ca
  identity: spiffe://example.org/ns/emojivoto/sa/web
policy:
  workload:
    namespace: emojivoto
    labels: {app: web, version: v2}
    service_account: web
    ports: {http: 8080, admin: 9990}
    cluster_networks: [10.0.0.0/8, 'fd00::/8']
  default_policy: cluster-authenticated
  probe_paths: [/healthz]
  files: [/etc/mesh/policy.yaml, policy.d/web.yaml]
  watch_interval: 5s
  inline: |
    apiVersion: policy.linkerd.io/v1beta3
    kind: Server
";
    let policy = parse(yaml).unwrap().policy;
    let workload = &policy.workload;
    assert_eq!(workload.namespace, "emojivoto");
    assert_eq!(workload.labels["version"], "v2");
    assert_eq!(workload.service_account, "web");
    assert_eq!(workload.ports["admin"], 9990);
    assert_eq!(workload.cluster_networks.len(), 2);
    assert_eq!(
        workload.trust_domain.as_ref().unwrap().as_str(),
        "example.org"
    );
    assert_eq!(
        policy.config.default_policy,
        mesh_policy::DefaultPolicy::ClusterAuthenticated
    );
    assert_eq!(policy.config.probe_paths, ["/healthz"]);
    assert_eq!(policy.sources.files.len(), 2);
    assert_eq!(
        policy.sources.inline,
        ["apiVersion: policy.linkerd.io/v1beta3\nkind: Server\n"]
    );
    let inline = policy.inline_origin.unwrap();
    assert_eq!((inline.first_line, inline.indent), (16, 4));
    assert_eq!(policy.watch_interval, Duration::from_secs(5));
}

#[test]
fn without_a_policy_section_every_port_gets_all_unauthenticated() {
    let policy = parse("").unwrap().policy;
    assert_eq!(policy.workload.namespace, "default");
    assert_eq!(
        policy.config.default_policy,
        mesh_policy::DefaultPolicy::AllUnauthenticated
    );
    assert_eq!(policy.config.probe_paths, ["/live", "/ready", "/healthz"]);
    assert!(policy.sources.files.is_empty() && policy.sources.inline.is_empty());
    assert_eq!(policy.watch_interval, Duration::from_secs(2));
}

#[test]
fn bad_policy_settings_name_their_field_and_line() {
    let error = reject("policy:\n  default_policy: allow-all\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "policy.default_policy",
        2,
    );
    let error = reject("policy:\n  workload:\n    cluster_networks: [10.0.0.0/33]\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "policy.workload.cluster_networks[0]",
        3,
    );
    let error = reject("policy:\n  probe_paths: [healthz]\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "policy.probe_paths[0]",
        2,
    );
    let error = reject("policy:\n  workload:\n    namespace: Emojivoto\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "policy.workload.namespace",
        3,
    );
    let error = reject("policy:\n  workload:\n    ports: {http: 70000}\n");
    assert_eq!(error.field_path(), "policy.workload.ports.http", "{error}");
    assert_eq!(error.line(), Some(3));
    let error = reject("policy:\n  inline:\n    kind: Server\n");
    assert_error(&error, ConfigErrorKind::InvalidType, "policy.inline", 3);
    let error = reject("policy:\n  resources: []\n");
    assert_error(&error, ConfigErrorKind::UnknownField, "policy.resources", 2);
}

#[test]
fn a_services_own_retry_timeouts_and_budget() {
    let config = parse(&service(
        "      retry: {attempts: 2, http: '502-504,429', grpc: unavailable, any_method: true}\n      \
         timeouts: {request: 10s, per_try: 2s, idle: 1m}\n      \
         budget: {retry_ratio: 0.3, min_retries_per_second: 5, ttl: 20s}\n",
    ))
    .unwrap();
    let svc = &config.outbound.services[0];
    let retry = svc.retry.as_ref().unwrap();
    assert_eq!(retry.max_attempts().get(), 2);
    assert!(retry.any_method());
    assert!(
        retry
            .http_statuses()
            .contains(http::StatusCode::TOO_MANY_REQUESTS)
    );
    assert!(
        !retry
            .http_statuses()
            .contains(http::StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(svc.timeouts.request, Some(Duration::from_secs(10)));
    assert_eq!(svc.timeouts.per_try, Some(Duration::from_secs(2)));
    assert_eq!(svc.timeouts.idle, Some(Duration::from_secs(60)));
    let budget = svc.budget.unwrap();
    assert_eq!(budget.retry_ratio(), 0.3);
    assert_eq!(budget.ttl(), Duration::from_secs(20));

    // Without them: no retries, no timeouts, the default budget.
    let config = parse(&service("")).unwrap();
    let svc = &config.outbound.services[0];
    assert!(svc.retry.is_none() && svc.budget.is_none());
    assert_eq!(svc.timeouts, Default::default());
    // `retry:` alone turns Linkerd's defaults on: 3 attempts, 5xx.
    let config = parse(&service("      retry: {}\n")).unwrap();
    let retry = config.outbound.services[0].retry.clone().unwrap();
    assert_eq!(retry.max_attempts().get(), 3);
    // A request its upstream never processed is retried whatever its
    // method, unless `unprocessed: false` says not to.
    assert!(retry.unprocessed());
    let config = parse(&service(
        "      retry: {unprocessed: false}
",
    ))
    .unwrap();
    let retry = config.outbound.services[0].retry.clone().unwrap();
    assert!(!retry.unprocessed());
}

#[test]
fn bad_retry_settings_name_their_field_line_and_range() {
    let error = reject(&service("      retry: {attempts: 0}\n"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].retry.attempts",
        7,
    );
    let error = reject(&service("      retry:\n        http: often\n"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].retry.http",
        8,
    );
    let error = reject(&service("      timeouts: {request: 0s}\n"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].timeouts.request",
        7,
    );
    let error = reject(&service("      budget:\n        ttl: 2m\n"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].budget.ttl",
        8,
    );
    assert!(error.to_string().contains("1s to 60s"), "{error}");
    let error = reject(&service("      budget:\n        retry_ratio: 1001\n"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].budget.retry_ratio",
        8,
    );
    assert!(error.to_string().contains("1000"), "{error}");
}

#[test]
fn failure_accrual_takes_linkerds_defaults_and_refuses_what_linkerd_does() {
    let config = parse(&service(
        "      failure_accrual: {max_failures: 4, min_penalty: 30s}\n",
    ))
    .unwrap();
    let accrual = config.outbound.services[0].failure_accrual.unwrap();
    assert_eq!(accrual.max_failures().get(), 4);
    assert_eq!(accrual.min_penalty(), Duration::from_secs(30));
    // What it leaves out is Linkerd's default.
    assert_eq!(accrual.max_penalty(), Duration::from_secs(60));
    assert_eq!(accrual.jitter(), 0.5);
    // Off unless asked for.
    assert!(
        parse(&service("")).unwrap().outbound.services[0]
            .failure_accrual
            .is_none()
    );

    let error = reject(&service(
        "      failure_accrual:\n        min_penalty: 2m\n        max_penalty: 1m\n",
    ));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].failure_accrual.min_penalty",
        8,
    );
    assert!(
        error
            .to_string()
            .contains("the first penalty 120s is longer than the longest 60s"),
        "{error}"
    );
    let error = reject(&service("      failure_accrual:\n        jitter: -1\n"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].failure_accrual.jitter",
        8,
    );
    let error = reject(&service(
        "      failure_accrual:\n        max_failures: 0\n",
    ));
    assert_eq!(
        error.field_path(),
        "outbound.services[0].failure_accrual.max_failures",
        "{error}"
    );
}
