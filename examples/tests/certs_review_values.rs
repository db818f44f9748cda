//! `sidecar certs` refuses a bad `--trust-domain` or `--identity` with a
//! message that shows the value given, quoted, and why it is not valid:
//! "invalid identity" alone leaves the reader to guess which character or
//! part is wrong, and, from a script, what was passed at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mesh_examples::sidecar::certs::{self, CertsError};

#[test]
fn a_bad_trust_domain_is_quoted_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let error = certs::create_ca("Cluster.local", &dir.path().join("ca")).unwrap_err();
    assert!(matches!(error, CertsError::TrustDomain(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with("--trust-domain \"Cluster.local\": invalid trust domain: "),
        "{text}"
    );
    assert!(text.contains("'C'"), "{text}");
    // Nothing was written for a value that was refused.
    assert!(!dir.path().join("ca").exists());
}

#[test]
fn a_bad_identity_is_quoted_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let error = certs::issue(
        &dir.path().join("ca"),
        "spiffe://cluster.local/ns//sa/web",
        Duration::from_secs(3600),
        &dir.path().join("web"),
    )
    .unwrap_err();
    assert!(matches!(error, CertsError::Identity(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.starts_with("--identity \"spiffe://cluster.local/ns//sa/web\": invalid identity: "),
        "{text}"
    );
    assert!(text.contains("empty"), "{text}");
}

#[test]
fn a_value_with_control_characters_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let error = certs::issue(
        &dir.path().join("ca"),
        "spiffe://cluster.local/\x1b[2Jweb",
        Duration::from_secs(3600),
        &dir.path().join("web"),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("\\u{1b}[2Jweb\""), "{text}");
}
