//! `sidecar check` on a CA directory with a short `identity.ttl`: a
//! certificate starts a minute before it is issued (for peers whose
//! clocks run behind), so a short lifetime can be over when it is issued,
//! which stops the sidecar at start, or before it is renewed at 70 % of
//! it, which leaves the sidecar serving an expired certificate. Either
//! fails the check that the directory issues a certificate, as the
//! sidecar's own start fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use mesh_examples::sidecar::{
    certs,
    check::{self, CheckOptions, Report, Status},
    config::SidecarConfig,
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
async fn a_ttl_that_is_over_when_the_certificate_is_issued_fails() {
    let dir = tempfile::tempdir().unwrap();
    let report = check_ttl(dir.path(), "30s").await;
    let (status, detail) = issues(&report);
    assert_eq!(status, Status::Fail, "{report}");
    assert!(detail.contains("expired"), "{detail}");
    assert!(detail.contains("identity.ttl"), "{detail}");

    // As the sidecar fails to start.
    let path = dir.path().join("sidecar-30s.yaml");
    let config = SidecarConfig::load(&path).unwrap();
    assert!(mesh_examples::sidecar::start(config).is_err());
}

#[tokio::test]
async fn a_ttl_that_ends_before_its_renewal_fails() {
    let dir = tempfile::tempdir().unwrap();
    // Issued a minute into its 2 minutes, renewed 84 s after issue.
    let report = check_ttl(dir.path(), "2m").await;
    let (status, detail) = issues(&report);
    assert_eq!(status, Status::Fail, "{report}");
    assert!(detail.contains("renewed"), "{detail}");
    assert!(detail.contains("identity.ttl"), "{detail}");
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
