//! The admin server stops last: through the drain it answers `/live`,
//! `/ready` (503, so that Kubernetes sends the pod no new traffic) and
//! `/metrics`, and it stops once every data-plane runtime has drained.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, StatusCode};
use support::{Gate, full};

/// A sidecar on one runtime whose inbound port serves HTTP to `app`,
/// draining for at most `grace`. Its admin port is drawn below the
/// ephemeral range, so that no other test's port-0 listener takes it
/// after the sidecar has closed it, when the test checks that it has.
fn sidecar(app: SocketAddr, grace: &str) -> mesh_examples::sidecar::Running {
    let admin = support::free_port();
    support::sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:{admin}\n\
         server:\n  threads: 1\n  shutdown_grace: {grace}\n"
    ))
}

/// `GET path` on the admin server over a new connection: its status line
/// and body.
async fn admin_get(admin: SocketAddr, path: &str) -> (String, String) {
    let answer = support::raw_exchange(
        admin,
        &format!("GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"),
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// Sends `GET /hold` through the inbound listener `inbound`, and returns
/// once the application holds it: the answer comes through the task.
async fn hold(
    inbound: SocketAddr,
    gate: &Gate,
) -> tokio::task::JoinHandle<Result<(StatusCode, String), String>> {
    let request = tokio::spawn(async move {
        let req = Request::get(format!("http://{inbound}/hold"))
            .body(full(""))
            .unwrap();
        match support::http1().request(req).await {
            Ok(res) => {
                let status = res.status();
                let body = support::body_bytes(res).await;
                Ok((status, String::from_utf8_lossy(&body).into_owned()))
            }
            Err(error) => Err(error.to_string()),
        }
    });
    gate.arrived.notified().await;
    request
}

/// Waits, off the test's runtime, until every runtime of `running` has
/// stopped.
async fn join(running: mesh_examples::sidecar::Running) {
    tokio::task::spawn_blocking(move || running.join())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_admin_server_answers_through_the_drain_and_stops_last() {
    let (app, gate) = support::backend().await;
    let running = sidecar(app, "60s");
    let (inbound, admin) = (running.inbound[0], running.admin);
    // One request done before, counted in the metrics.
    let hello = support::http1()
        .request(
            Request::get(format!("http://{inbound}/hello"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(hello.status(), StatusCode::OK);
    support::body_bytes(hello).await;
    assert_eq!(admin_get(admin, "/ready").await.0, "HTTP/1.1 200 OK");

    let held = hold(inbound, &gate).await;
    running.shutdown();

    // New connections to the admin server, while the request is held.
    let ready = admin_get(admin, "/ready").await;
    let live = admin_get(admin, "/live").await;
    let metrics = admin_get(admin, "/metrics").await;
    assert_eq!(
        ready,
        (
            "HTTP/1.1 503 Service Unavailable".to_owned(),
            "not ready: shutting down\n".to_owned()
        )
    );
    assert_eq!(live.0, "HTTP/1.1 200 OK");
    assert_eq!(metrics.0, "HTTP/1.1 200 OK");
    assert!(
        support::series(&metrics.1, "response_total", &["direction=\"inbound\""]) >= 1,
        "{}",
        metrics.1
    );

    // The request held through the drain finishes.
    gate.release.notify_one();
    assert_eq!(held.await.unwrap(), Ok((StatusCode::OK, "held".to_owned())));
    join(running).await;
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin server still accepts after the sidecar stopped"
    );
}

#[tokio::test]
async fn the_admin_server_answers_until_a_request_held_past_the_grace_is_cut() {
    let (app, gate) = support::backend().await;
    let running = sidecar(app, "1s");
    let (inbound, admin) = (running.inbound[0], running.admin);
    let held = hold(inbound, &gate).await;
    running.shutdown();

    let ready = admin_get(admin, "/ready").await;
    let metrics = admin_get(admin, "/metrics").await;
    assert_eq!(ready.0, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(metrics.0, "HTTP/1.1 200 OK");

    // Never released: the grace ends it, and then the sidecar stops.
    let cut = held.await.unwrap();
    assert!(cut.is_err(), "{cut:?}");
    join(running).await;
    assert!(tokio::net::TcpStream::connect(admin).await.is_err());
}
