//! `/ready` follows the identity certificate: it answers 503, naming
//! `identity`, once the certificate in service expires before a renewal
//! replaces it (the sidecar then refuses every mTLS connection), and 200
//! again once a valid one is written. The certificate lives a few seconds
//! of the real clock: this crate's tests run without tokio's paused clock
//! (mesh-tls's `local_validity_ready` test covers the timer on it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::{Request, StatusCode};
use mesh_examples::sidecar::certs;
use support::*;

async fn ready(admin: SocketAddr) -> (StatusCode, String) {
    let res = http1()
        .request(
            Request::get(format!("http://{admin}/ready"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, body)
}

/// Asks `/ready` until it answers `status`, for at most thirty seconds.
async fn until(admin: SocketAddr, status: StatusCode) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (now, body) = ready(admin).await;
            if now == status {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("/ready never answered {status}"))
}

#[tokio::test]
async fn ready_turns_503_when_the_certificate_expires_and_200_after_its_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    let files = dir.path().join("identity");
    let web = identity("web");
    // Whole seconds: it expires seven to eight seconds from now, long
    // enough for a busy machine to start the sidecar before it does.
    certs::issue(&ca, &web, Duration::from_secs(8), &files).unwrap();
    let (app, _) = backend().await;
    let running = sidecar(&format!(
        "identity:\n  dir: {}\n  watch_interval: 50ms\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n",
        files.display()
    ));
    until(running.admin, StatusCode::OK).await;

    let body = until(running.admin, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body.contains("identity"), "{body}");

    // The renewal lands late: ready again once the watcher reads it.
    certs::issue(&ca, &web, Duration::from_secs(3600), &files).unwrap();
    until(running.admin, StatusCode::OK).await;
    stop(running).await;
}
