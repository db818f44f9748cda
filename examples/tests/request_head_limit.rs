//! `server.max_request_head_bytes` reaches the sidecar's listeners: a
//! request whose head is over the bound is answered `431` by the sidecar
//! and never reaches the application.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use support::*;

#[tokio::test]
async fn a_head_over_the_configured_bound_is_answered_431() {
    let app = ok_app(false).await;
    let running = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  max_request_head_bytes: 10000\n"
    ));
    let inbound = running.inbound[0];
    let send = |bytes: usize| {
        http1().request(
            Request::get(format!("http://{inbound}/"))
                .header("x-fill", "a".repeat(bytes))
                .body(full(""))
                .unwrap(),
        )
    };
    assert_eq!(send(4_000).await.unwrap().status(), StatusCode::OK);
    // Under the 64 KiB default: only the configured bound refuses it.
    assert_eq!(
        send(20_000).await.unwrap().status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    stop(running).await;
}
