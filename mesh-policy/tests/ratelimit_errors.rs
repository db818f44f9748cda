//! Reading `HTTPLocalRateLimitPolicy`: what compiles, and every mistake,
//! named by document, resource, field and line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::{Documents, ResourceError, ResourceErrorKind as Kind};
use mesh_policy::{
    Client, Compiled, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource, WarningKind,
    Workload,
    resource::{HttpLocalRateLimitPolicy, Limit, read_sources},
};

const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
";

/// `SERVER`, then a rate limit policy `web-limit` with `spec` under its
/// `targetRef`.
fn policy(spec: &str) -> String {
    format!(
        "{SERVER}---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{name: web-limit, namespace: shop}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
{spec}"
    )
}

fn compile(text: &str) -> Result<Compiled, ResourceError> {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &Workload::new("shop").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Asserts that `text` fails in document `document`, resource `name`, at
/// `field`, on the line that contains `at`, and returns the message.
#[track_caller]
fn fails(text: &str, kind: Kind, document: usize, name: &str, field: &str, at: &str) -> String {
    let err = compile(text).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.origin(), "policy.yaml", "{err}");
    assert_eq!(err.document(), Some(document), "{err}");
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some("HTTPLocalRateLimitPolicy"), Some(name)),
        "{err}"
    );
    assert_eq!(err.field_path(), field, "{err}");
    assert_eq!(err.line(), Some(line_of(text, at)), "{err}");
    err.to_string()
}

#[test]
fn a_policy_is_read_field_by_field() {
    let text = policy(
        "  total: {requestsPerSecond: 100}
  identity: {requestsPerSecond: 20}
  overrides:
    - requestsPerSecond: 50
      clientRefs:
        - {kind: ServiceAccount, name: vip}
        - {kind: ServiceAccount, name: batch, namespace: jobs}
",
    );
    let warnings = read_sources(&[PolicySource::new("policy.yaml", &text)]).unwrap();
    assert!(warnings.is_empty(), "{warnings}");
    let document = Documents::new("policy.yaml", &text)
        .nth(1)
        .unwrap()
        .unwrap();
    let rl = document.read::<HttpLocalRateLimitPolicy>().unwrap().value;
    assert_eq!(rl.api_version.as_str(), "policy.linkerd.io/v1alpha1");
    assert_eq!(
        (
            rl.spec.target_ref.kind.as_str(),
            rl.spec.target_ref.name.as_str()
        ),
        ("Server", "web")
    );
    let rps = |requests_per_second| {
        Some(Limit {
            requests_per_second,
        })
    };
    assert_eq!((rl.spec.total, rl.spec.identity), (rps(100), rps(20)));
    let [o] = &rl.spec.overrides[..] else {
        panic!("{:?}", rl.spec.overrides)
    };
    assert_eq!(o.requests_per_second, 50);
    let refs: Vec<_> = o
        .client_refs
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.namespace.as_deref()))
        .collect();
    assert_eq!(
        refs,
        [
            ("ServiceAccount", "vip", None),
            ("ServiceAccount", "batch", Some("jobs"))
        ]
    );
}

#[test]
fn an_allowed_request_names_its_servers_rate_limit() {
    let text = policy("  total: {requestsPerSecond: 100}\n").replace(
        "port: 8080\n",
        "port: 8080\n  accessPolicy: all-unauthenticated\n",
    );
    let compiled = compile(&text).unwrap();
    assert!(compiled.warnings.is_empty(), "{}", compiled.warnings);
    let req = http::Request::get("/").body(()).unwrap();
    let decision = compiled.policy.evaluate(8080, &Client::unknown(), &req);
    let Decision::Allow(allowed) = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(allowed.rate_limit(), Some("web-limit"));
    // Another port's requests are not limited.
    let decision = compiled.policy.evaluate(9090, &Client::unknown(), &req);
    let Decision::Allow(allowed) = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(allowed.rate_limit(), None);
}

#[test]
fn a_rate_of_zero_or_less_is_refused_where_it_is_written() {
    for (spec, field) in [
        (
            "  total: {requestsPerSecond: 0}\n",
            "spec.total.requestsPerSecond",
        ),
        (
            "  identity: {requestsPerSecond: -5}\n",
            "spec.identity.requestsPerSecond",
        ),
        (
            "  overrides:\n    - requestsPerSecond: 0\n      clientRefs: [{kind: ServiceAccount, name: vip}]\n",
            "spec.overrides[0].requestsPerSecond",
        ),
    ] {
        let text = policy(spec);
        let message = fails(
            &text,
            Kind::InvalidValue,
            2,
            "web-limit",
            field,
            "requestsPerSecond",
        );
        assert!(message.contains("must be greater than 0"), "{message}");
    }
}

#[test]
fn a_rate_beyond_linkerds_u32_is_refused() {
    let text = policy("  total: {requestsPerSecond: 4294967296}\n");
    let message = fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.total.requestsPerSecond",
        "requestsPerSecond",
    );
    assert!(message.contains("at most 4294967295"), "{message}");
}

#[test]
fn a_rate_that_is_not_a_number_is_a_type_error() {
    let err = compile(&policy("  total: {requestsPerSecond: lots}\n"))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidType, "{err}");
    assert_eq!(err.document(), Some(2), "{err}");
}

#[test]
fn identity_and_override_rates_above_the_total_are_refused_as_linkerds_webhook_does() {
    let text = policy("  total: {requestsPerSecond: 10}\n  identity: {requestsPerSecond: 11}\n");
    let message = fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.identity.requestsPerSecond",
        "identity:",
    );
    assert!(message.contains("more than spec.total"), "{message}");

    let text = policy(
        "  total: {requestsPerSecond: 10}
  overrides:
    - requestsPerSecond: 5
      clientRefs: [{kind: ServiceAccount, name: a}]
    - requestsPerSecond: 20
      clientRefs: [{kind: ServiceAccount, name: b}]
",
    );
    fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.overrides[1].requestsPerSecond",
        "requestsPerSecond: 20",
    );
}

#[test]
fn a_target_that_is_not_a_server_is_refused() {
    let text = policy("").replace("kind: Server, name: web}", "kind: HTTPRoute, name: web}");
    let message = fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.targetRef.kind",
        "targetRef",
    );
    assert!(message.contains("expected Server"), "{message}");
}

#[test]
fn a_target_server_that_does_not_exist_is_a_dangling_reference() {
    let text = policy("  total: {requestsPerSecond: 1}\n").replace("name: web}", "name: nope}");
    let message = fails(
        &text,
        Kind::DanglingReference,
        2,
        "web-limit",
        "spec.targetRef.name",
        "targetRef",
    );
    assert!(
        message.contains("no Server named nope in namespace shop"),
        "{message}"
    );
}

#[test]
fn a_second_policy_for_one_server_is_a_conflict_naming_the_first() {
    let first = policy("  total: {requestsPerSecond: 1}\n");
    let text = format!(
        "{first}---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{name: web-limit-2, namespace: shop}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  total: {{requestsPerSecond: 2}}
"
    );
    let err = compile(&text).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), Kind::Conflict, "{err}");
    assert_eq!(err.document(), Some(3), "{err}");
    assert_eq!(err.name(), Some("web-limit-2"), "{err}");
    assert_eq!(err.field_path(), "spec.targetRef.name", "{err}");
    assert!(
        err.to_string().contains(
            "already limited by HTTPLocalRateLimitPolicy web-limit (policy.yaml document 2)"
        ),
        "{err}"
    );
}

#[test]
fn two_policies_with_one_name_are_duplicates() {
    let first = policy("  total: {requestsPerSecond: 1}\n");
    let second = first.split("---\n").nth(1).unwrap();
    let err = compile(&format!("{first}---\n{second}"))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), Kind::DuplicateName, "{err}");
    assert_eq!(err.document(), Some(3), "{err}");
}

#[test]
fn a_client_ref_that_is_not_a_service_account_is_refused() {
    let text = policy(
        "  overrides:\n    - requestsPerSecond: 5\n      clientRefs: [{kind: Namespace, name: jobs}]\n",
    );
    let message = fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.overrides[0].clientRefs[0].kind",
        "clientRefs",
    );
    assert!(message.contains("expected ServiceAccount"), "{message}");
}

#[test]
fn a_service_account_name_that_makes_no_identity_is_refused() {
    let text = policy(
        "  overrides:\n    - requestsPerSecond: 5\n      clientRefs: [{kind: ServiceAccount, name: \"a/b\"}]\n",
    );
    fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.overrides[0].clientRefs[0].name",
        "clientRefs",
    );
}

#[test]
fn a_missing_target_ref_is_a_missing_field() {
    let text = policy("  total: {requestsPerSecond: 1}\n").replace(
        "  targetRef: {group: policy.linkerd.io, kind: Server, name: web}\n",
        "",
    );
    let err = compile(&text).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), Kind::MissingField, "{err}");
    assert!(err.to_string().contains("targetRef"), "{err}");
}

#[test]
fn an_unknown_field_in_the_spec_is_refused() {
    // A misspelt limit is no limit: read past, `identiy` would leave every
    // client unlimited, where its author meant each to have 20 a second.
    let text = policy(
        "  total: {requestsPerSecond: 100}
  identiy: {requestsPerSecond: 20}
",
    );
    let message = fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.identiy",
        "identiy",
    );
    assert!(message.contains("unknown field"), "{message}");
    assert!(message.contains("meant to limit"), "{message}");
    // `burst`, which Linkerd's resource does not have, likewise.
    let text = policy(
        "  total: {requestsPerSecond: 100}
  burst: 10
",
    );
    fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.burst",
        "burst",
    );
}

#[test]
fn unknown_fields_outside_the_spec_and_policies_that_limit_nothing_are_warnings() {
    let text = policy(
        "  overrides:
    - requestsPerSecond: 5
      clientRefs: []
",
    )
    .replace(
        "kind: HTTPLocalRateLimitPolicy\n",
        "kind: HTTPLocalRateLimitPolicy\nextra: 1\n",
    );
    let compiled = compile(&text).unwrap();
    let found: Vec<_> = compiled
        .warnings
        .iter()
        .map(|w| (w.kind, w.document, w.field_path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (WarningKind::IgnoredField, 2, "extra"),
            (WarningKind::NotApplied, 2, "spec.overrides[0].clientRefs"),
            (WarningKind::NotApplied, 2, "spec"),
        ],
        "{}",
        compiled.warnings
    );
    assert!(
        compiled
            .warnings
            .iter()
            .all(|w| w.name.as_deref() == Some("web-limit")),
        "{}",
        compiled.warnings
    );
}

#[test]
fn a_policy_in_another_namespace_cannot_target_this_ones_server() {
    let text = policy("  total: {requestsPerSecond: 1}\n")
        .replace("name: web}", "name: web, namespace: other}");
    fails(
        &text,
        Kind::InvalidValue,
        2,
        "web-limit",
        "spec.targetRef.namespace",
        "targetRef",
    );
}

#[test]
fn a_policy_on_an_opaque_server_is_a_warning() {
    let text = policy("  total: {requestsPerSecond: 1}\n")
        .replace("port: 8080\n", "port: 8080\n  proxyProtocol: opaque\n");
    let compiled = compile(&text).unwrap();
    let [warning] = compiled.warnings.iter().collect::<Vec<_>>()[..] else {
        panic!("{}", compiled.warnings)
    };
    assert_eq!(warning.kind, WarningKind::NotApplied);
    assert_eq!(warning.field_path, "spec.targetRef.name");
    assert!(warning.message.contains("is opaque"), "{warning}");
}
