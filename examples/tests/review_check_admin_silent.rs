//! `sidecar check` against an admin address where something takes the
//! connection and never answers (a hung sidecar, another program on the
//! port) fails each admin check once `--timeout` has passed, and says so,
//! rather than wait for an answer that never comes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mesh_examples::sidecar::check::{self, CheckOptions, Status};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn an_admin_server_that_never_answers_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    // Reads each request and never answers it.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut stream, _) = admin.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            held.push(stream);
        }
    });
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(
        &path,
        format!(
            "inbound:\n  listen: 127.0.0.1:0\n  app: {}\noutbound:\n  listen: 127.0.0.1:0\n\
             admin:\n  listen: {admin_addr}\n",
            app.local_addr().unwrap()
        ),
    )
    .unwrap();

    let options = CheckOptions::default().with_timeout(Duration::from_secs(1));
    // Far longer than the two admin requests may take between them.
    let report = tokio::time::timeout(Duration::from_secs(30), check::run(&path, &options))
        .await
        .expect("sidecar check waited past its timeout");

    for state in ["live", "ready"] {
        let title = format!("sidecar is {state} ({admin_addr}/{state})");
        let check = report
            .find(&title)
            .unwrap_or_else(|| panic!("no {title:?} in\n{report}"));
        assert_eq!(check.status, Status::Fail, "{report}");
        let detail = check.detail.as_deref().unwrap();
        assert!(detail.starts_with("no answer within 1s\n"), "{detail}");
    }
    assert_eq!(report.count(Status::Fail), 2, "{report}");
    assert!(!report.is_success());
    silent.abort();
}
