//! `sidecar check` asks the running sidecar's admin server at
//! `admin.listen`. With port 0 the system chose the port when the sidecar
//! started, and the file cannot say which: the admin checks say so,
//! rather than report a refused connection to port 0 and ask whether the
//! sidecar is running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::check::{self, CheckOptions, Status};

#[tokio::test]
async fn an_admin_listener_on_port_zero_cannot_be_asked_and_says_why() {
    let (_dir, path) =
        support::config::file("outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n");
    let report = check::run(&path, &CheckOptions::default()).await;
    let admin = report.group("sidecar-admin").unwrap();
    assert!(!admin.checks.is_empty(), "{report}");
    for check in &admin.checks {
        assert_eq!(check.status, Status::Fail, "{report}");
        let detail = check.detail.as_deref().unwrap();
        assert!(detail.contains("port 0"), "{detail}");
        assert!(detail.contains("--pre"), "{detail}");
        assert!(!detail.contains("refused"), "{detail}");
    }
}
