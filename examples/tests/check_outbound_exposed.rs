//! `sidecar check` warns of an outbound listener that other hosts can
//! reach: whoever connects to it reaches the outbound services as this
//! workload, over mutual TLS with its certificate, past the policy its
//! own inbound side would apply. Linkerd's proxy listens for outbound
//! traffic on loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::check::{self, CheckOptions, Report, Status};

const TITLE: &str = "outbound listeners take connections from this host only";

async fn check_yaml(yaml: &str) -> Report {
    let (_dir, path) = support::config::file(yaml);
    check::run(&path, &CheckOptions::default().with_pre(true)).await
}

#[tokio::test]
async fn an_outbound_listener_on_every_interface_warns() {
    let report =
        check_yaml("outbound:\n  listen: 0.0.0.0:0\nadmin:\n  listen: 127.0.0.1:0\n").await;
    let check = report
        .find(TITLE)
        .unwrap_or_else(|| panic!("no warning in\n{report}"));
    assert_eq!(check.status, Status::Warn, "{report}");
    let detail = check.detail.as_deref().unwrap();
    assert!(detail.contains("outbound.listen 0.0.0.0:0"), "{detail}");
    assert!(report.is_success(), "a warning, not a failure: {report}");
}

#[tokio::test]
async fn an_outbound_tcp_port_on_another_interface_warns() {
    let yaml = "\
outbound:
  listen: 127.0.0.1:0
  services:
    - name: db
      endpoints: [127.0.0.1:5432]
  ports:
    - listen: 192.0.2.10:15432
      service: db
admin:
  listen: 127.0.0.1:0
";
    let report = check_yaml(yaml).await;
    let check = report.find(TITLE).unwrap();
    assert_eq!(check.status, Status::Warn, "{report}");
    let detail = check.detail.as_deref().unwrap();
    assert!(
        detail.contains("outbound.ports[0].listen 192.0.2.10:15432"),
        "{detail}"
    );
    assert!(!detail.contains("outbound.listen "), "{detail}");
}

#[tokio::test]
async fn outbound_listeners_on_loopback_say_nothing() {
    let report =
        check_yaml("outbound:\n  listen: \"[::1]:0\"\nadmin:\n  listen: 127.0.0.1:0\n").await;
    assert!(report.find(TITLE).is_none(), "{report}");
    assert_eq!(report.status(), Status::Pass, "{report}");
}
