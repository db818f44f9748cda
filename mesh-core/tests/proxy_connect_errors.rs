//! What an operator reads when a `Forward` cannot reach an endpoint, or
//! has none to send to: which endpoint, and why; and when its requests
//! stop waiting for one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{log_capture, refused::refused_addr};

use bytes::Bytes;
use std::{num::NonZeroU32, time::Duration};

use http::{Request, StatusCode};
use http_body_util::Empty;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::{EndpointSet, FailureAccrual, Forward, IN_FAILFAST},
};
use tower::ServiceExt;

#[tokio::test(flavor = "current_thread")]
async fn a_refused_connect_is_logged_with_the_endpoint_and_its_cause() {
    let (logs, _guard) = log_capture::Logs::capture();
    // A port nothing listens on.
    let endpoint = refused_addr();
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint]).unwrap();
    let req = Request::get("/")
        .header("host", "web")
        .body(Empty::new())
        .unwrap();
    let res = forward.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let lines = logs.find("upstream request failed");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("endpoint={endpoint}")),
        "{lines:?}"
    );
    // The cause, not only the kind of failure.
    assert!(lines[0].contains("refused"), "{lines:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_503_is_logged_with_why_there_was_no_endpoint() {
    let (logs, _guard) = log_capture::Logs::capture();
    let get = || {
        Request::get("/")
            .header("host", "web")
            .body(Empty::new())
            .unwrap()
    };
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    // Each request below waits for an endpoint, for the fail-fast timeout
    // (3 s), before its 503: on tokio's paused clock, where no I/O is
    // under way, that is no real time.

    // A set whose first endpoints are not known yet.
    let forward = Forward::with_endpoints(client.clone(), &EndpointSet::empty());
    tokio::time::pause();
    let res = forward.oneshot(get()).await.unwrap();
    tokio::time::resume();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["mesh-error"], IN_FAILFAST);
    // An endpoint taken out by failure accrual.
    let endpoint = refused_addr();
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(accrual);
    let res = forward.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    tokio::time::pause();
    let res = forward.oneshot(get()).await.unwrap();
    tokio::time::resume();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["mesh-error"], IN_FAILFAST);

    let lines = logs.find("no endpoint to send to");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("endpoints=0"), "{lines:?}");
    assert!(lines[0].contains("none yet"), "{lines:?}");
    assert!(lines[1].contains("endpoints=1"), "{lines:?}");
    assert!(lines[1].contains("out for failing"), "{lines:?}");
    // And when the wait ends with none ready, that the service is in
    // fail-fast, and after how long: once for each.
    let lines = logs.find_at(tracing::Level::WARN, "no endpoint ready");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("fail-fast"), "{lines:?}");
    assert!(lines[0].contains("timeout=3s"), "{lines:?}");
}
