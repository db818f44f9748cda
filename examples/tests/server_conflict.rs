//! Two Servers on the application's port, as a cluster under Linkerd may
//! have them: the sidecar starts, the older Server's policy decides the
//! port's requests (as Linkerd's policy controller gives it the port),
//! and the other is named in a warning, at start and by `sidecar check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use mesh_examples::sidecar::check::{self, CheckOptions, Status};
use support::log_capture::Logs;
use support::*;

/// Two Servers of `emoji`'s port: `emoji-open` (`all-unauthenticated`)
/// created at `open`, and `emoji-closed` (`deny`) created at `closed`,
/// written first and first by name, so that neither the order of the
/// documents nor the names decide.
fn policy_yaml(open: &str, closed: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata:
  name: emoji-closed
  namespace: emojivoto
  creationTimestamp: \"{closed}\"
spec:
  podSelector: {{matchLabels: {{app: emoji}}}}
  port: http
  accessPolicy: deny
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata:
  name: emoji-open
  namespace: emojivoto
  creationTimestamp: \"{open}\"
spec:
  podSelector: {{matchLabels: {{app: emoji}}}}
  port: http
  accessPolicy: all-unauthenticated
"
    )
}

const OLDER: &str = "2024-05-01T12:00:00Z";
const NEWER: &str = "2024-06-01T12:00:00Z";

async fn status(inbound: std::net::SocketAddr) -> StatusCode {
    let req = Request::get(format!("http://{inbound}/"))
        .header("host", "emoji.emojivoto")
        .body(full(""))
        .unwrap();
    http1().request(req).await.unwrap().status()
}

#[tokio::test]
async fn the_older_server_decides_the_port() {
    for (open, closed, want, lost) in [
        (OLDER, NEWER, StatusCode::OK, "emoji-closed"),
        (NEWER, OLDER, StatusCode::FORBIDDEN, "emoji-open"),
    ] {
        let (app, _) = backend().await;
        let (logs, guard) = Logs::capture();
        let (_dir, sidecar) = emoji_inbound(app, &policy_yaml(open, closed));
        drop(guard);
        assert_eq!(status(sidecar.inbound[0]).await, want, "{lost} lost");
        stop(sidecar).await;

        let loaded = logs.find("policy loaded with parts that are not enforced");
        assert_eq!(loaded.len(), 1, "{:#?}", logs.all());
        assert!(
            loaded[0].contains(&format!(
                "(Server emojivoto/{lost}): spec.port: port http ("
            )),
            "{loaded:#?}"
        );
    }
}

#[tokio::test]
async fn sidecar_check_names_the_server_that_lost_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, policy_yaml(OLDER, NEWER)).unwrap();
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = app.local_addr().unwrap().port();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "inbound:\n  listen: 127.0.0.1:0\n  app: 127.0.0.1:{port}\n  protocol: http\n\
             outbound:\n  listen: 127.0.0.1:0\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
             policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
             \x20   ports: {{http: {port}}}\n  files: [{}]\n",
            policy.display()
        ),
    )
    .unwrap();
    let report = check::run(&config, &CheckOptions::default().with_pre(true)).await;

    let checks = &report.group("sidecar-policy").unwrap().checks;
    assert_eq!(checks[0].status, Status::Pass, "{report}");
    let warnings: Vec<&str> = checks[1..]
        .iter()
        .inspect(|check| assert_eq!(check.status, Status::Warn, "{report}"))
        .map(|check| check.title.as_str())
        .collect();
    assert_eq!(warnings.len(), 1, "{report}");
    let expected = format!(
        "{}: document 1 (Server emojivoto/emoji-closed): spec.port: port http ({port}) of the \
         workload is also selected by Server emoji-open ({} document 2), which takes it as the \
         older by metadata.creationTimestamp; this Server covers nothing",
        policy.display(),
        policy.display()
    );
    assert!(warnings[0].starts_with(&expected), "{report}");
    assert!(report.is_success(), "{report}");
}
