//! `policy.workload.namespace` and `policy.workload.service_account` are
//! the names Kubernetes gives them: a namespace is a DNS-1123 label (no
//! `.`, at most 63 characters), as every resource's `metadata.namespace`
//! is read, and a service account a DNS-1123 subdomain, each part between
//! dots a label. A name Kubernetes would never give could match no
//! resource, and is refused where it is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::config::ConfigErrorKind;

use crate::support;

use support::config::{assert_error, parse, reject};

fn workload(field: &str, value: &str) -> String {
    format!("policy:\n  workload:\n    {field}: {value}\n")
}

#[test]
fn a_namespace_is_a_dns_label() {
    for bad in [
        "emojivoto.prod".to_owned(),
        "a".repeat(64),
        "emoji..voto".to_owned(),
    ] {
        let error = reject(&workload("namespace", &bad));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            "policy.workload.namespace",
            3,
        );
        let text = error.to_string();
        assert!(text.contains("63"), "{text}");
    }
    let name = "a".repeat(63);
    let config = parse(&workload("namespace", &name)).unwrap();
    assert_eq!(config.policy.workload.namespace, name);
}

#[test]
fn a_service_account_is_a_dns_subdomain() {
    for bad in ["web..v2", "web.-v2", "web-.v2"] {
        let error = reject(&workload("service_account", bad));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            "policy.workload.service_account",
            3,
        );
    }
    let config = parse(&workload("service_account", "web.v2")).unwrap();
    assert_eq!(config.policy.workload.service_account, "web.v2");
}
