//! What an operator reads when a `Forward` cannot reach an endpoint: the
//! endpoint, and why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/log_capture.rs"]
mod log_capture;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::Forward,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

#[tokio::test(flavor = "current_thread")]
async fn a_refused_connect_is_logged_with_the_endpoint_and_its_cause() {
    let (logs, _guard) = log_capture::Logs::capture();
    // A port nothing listens on any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap();
    drop(listener);
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
