//! `sidecar check` on a CA directory with a short `identity.ttl`. A
//! certificate lives its ttl from issue and is renewed at 70 % of what it
//! has left; the renewal never waits less than 10 s, so a ttl under 15 s
//! could end before it is renewed. Such a ttl is refused where it is
//! written, `identity.ttl`, by the check as by the sidecar, which says the
//! least ttl that works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use mesh_examples::sidecar::{
    certs,
    check::{self, CheckOptions, Report, Status},
    config::{ConfigErrorKind, SidecarConfig},
};

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";

/// The report of `sidecar check --pre` on a CA directory in `dir` issuing
/// for `ttl`.
async fn check_ttl(dir: &Path, ttl: &str) -> Report {
    let ca = dir.join("ca");
    if !ca.exists() {
        certs::create_ca("example.org", &ca).unwrap();
    }
    let path = dir.join(format!("sidecar-{ttl}.yaml"));
    std::fs::write(
        &path,
        format!(
            "identity:\n  ca: {}\n  identity: {WEB}\n  ttl: {ttl}\n\
             outbound: {{listen: 127.0.0.1:0}}\nadmin: {{listen: 127.0.0.1:0}}\n",
            ca.display()
        ),
    )
    .unwrap();
    check::run(&path, &CheckOptions::default().with_pre(true)).await
}

/// The check that the CA directory issues a certificate.
fn issues(report: &Report) -> (Status, String) {
    let check = report.find("ca directory").unwrap();
    (check.status, check.detail.clone().unwrap_or_default())
}

#[tokio::test]
async fn a_ttl_too_short_to_renew_in_time_is_refused_at_its_field() {
    let dir = tempfile::tempdir().unwrap();
    for ttl in ["10s", "14s"] {
        let report = check_ttl(dir.path(), ttl).await;
        assert!(!report.is_success(), "{report}");
        let text = report.to_string();
        assert!(text.contains("identity.ttl"), "{text}");
        assert!(text.contains("too short to renew"), "{text}");
        assert!(text.contains("set identity.ttl to at least 15s"), "{text}");

        // The sidecar refuses the file, naming the field and its line.
        let path = dir.path().join(format!("sidecar-{ttl}.yaml"));
        let error = SidecarConfig::load(&path).unwrap_err();
        assert_eq!(error.kind(), ConfigErrorKind::InvalidValue, "{error}");
        assert_eq!(error.field_path(), "identity.ttl", "{error}");
        assert_eq!(error.line(), Some(4), "{error}");
    }
}

#[tokio::test]
async fn a_short_ttl_is_valid_from_issue_and_renewed_in_time() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate lives its whole ttl from issue, and is renewed at
    // 70 % of what it has left: 30 s and 2 m both serve, and start.
    for ttl in ["15s", "30s", "2m"] {
        let report = check_ttl(dir.path(), ttl).await;
        assert_eq!(issues(&report).0, Status::Pass, "{ttl}: {report}");
        let path = dir.path().join(format!("sidecar-{ttl}.yaml"));
        let config = SidecarConfig::load(&path).unwrap();
        let running = mesh_examples::sidecar::start(config);
        assert!(running.is_ok(), "{ttl}: {:?}", running.err());
    }
}

#[tokio::test]
async fn a_ttl_renewed_in_time_passes() {
    let dir = tempfile::tempdir().unwrap();
    for ttl in ["10m", "24h"] {
        let report = check_ttl(dir.path(), ttl).await;
        assert_eq!(issues(&report).0, Status::Pass, "{ttl}: {report}");
        assert!(report.is_success(), "{ttl}: {report}");
    }
}
