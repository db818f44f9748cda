//! A route's retries through the sidecar, with a zero fail-fast timeout
//! and an endpoint that refuses connections: the first request's refused
//! connect is retried, that retry fails fast and is retried too, and the
//! next is shed, and not retried; every later request is shed once, and
//! not retried, as linkerd2-proxy's route retries treat its
//! `LoadShedError` and `FailFastError`. A retry of a shed request would
//! only be shed again.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::support;
use http::{Method, Request, StatusCode};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use mesh_examples::sidecar::Running;
use support::*;

/// A sidecar whose service `emoji` has one endpoint, which refuses
/// connections: with a zero fail-fast timeout, the endpoint out for ten
/// minutes from its first failure, and up to three attempts a request.
async fn refusing_emoji() -> Running {
    let dead = refused_addr().await;
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  http_failfast_timeout: 0s\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{dead}]\n\
         \x20     failure_accrual: {{max_failures: 1, min_penalty: 10m, max_penalty: 10m, jitter: 0}}\n\
         \x20     retry: {{attempts: 3}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ))
}

/// Sends `method` `path` with `body` to `emoji` through the sidecar's
/// outbound listener: the status and `mesh-error`, the body read.
async fn send(
    client: &Client<HttpConnector, Body>,
    sidecar: &Running,
    method: Method,
    path: &str,
    body: &'static str,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", sidecar.outbound))
        .header("host", "emoji")
        .body(full(body))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let mesh_error = res.headers()["mesh-error"].to_str().unwrap().to_owned();
    body_bytes(res).await;
    (status, mesh_error)
}

#[tokio::test]
async fn a_shed_request_is_not_retried_and_one_that_failed_fast_is() {
    let sidecar = refusing_emoji().await;
    let client = http1();
    for _ in 0..3 {
        let (status, mesh_error) = send(&client, &sidecar, Method::GET, "/", "").await;
        assert_eq!(status, 503);
        assert_eq!(mesh_error, "service unavailable");
    }
    let metrics = scrape(sidecar.admin).await;
    let backend = "outbound_http_route_backend_response_statuses_total";
    // The first request: refused (502), failed fast, shed; the other two
    // shed once each.
    assert_eq!(
        series(&metrics, backend, &["error=\"LOAD_SHED\""]),
        3,
        "shed requests are not retried"
    );
    assert_eq!(series(&metrics, backend, &["error=\"FAIL_FAST\""]), 1);
    assert_eq!(series(&metrics, backend, &["http_status=\"502\""]), 1);
    assert_eq!(
        series(&metrics, "outbound_http_route_retry_requests_total", &[]),
        2,
        "the refused connect's retry and the failed-fast one's"
    );
    assert_eq!(
        series(&metrics, "retry_requests_total", &["service=\"emoji\""]),
        2
    );
    assert_eq!(
        series(
            &metrics,
            "retry_limit_exceeded_total",
            &["service=\"emoji\""]
        ),
        0
    );
    assert_eq!(
        series(
            &metrics,
            "retry_not_retryable_total",
            &["service=\"emoji\""]
        ),
        0,
        "a shed request is no retryable failure"
    );
    assert_eq!(
        series(
            &metrics,
            "outbound_http_errors_total",
            &["error=\"loadshed\""]
        ),
        3
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_post_that_failed_fast_is_retried_as_one_no_endpoint_read() {
    // A POST's method is not retried: its refused connect is not (a
    // connect error is no proof that nothing was sent, by mesh-core's
    // rules), and counts as non-idempotent. The next POST finds no
    // endpoint, fails fast, and is retried, as one no endpoint read; that
    // retry is shed, and ends it.
    let sidecar = refusing_emoji().await;
    let client = http1();
    for (status, mesh_error) in [
        (502, "upstream connect error"),
        (503, "service unavailable"),
    ] {
        let got = send(&client, &sidecar, Method::POST, "/vote", "ballot").await;
        assert_eq!(got.0, status);
        assert_eq!(got.1, mesh_error);
    }
    let metrics = scrape(sidecar.admin).await;
    let backend = "outbound_http_route_backend_response_statuses_total";
    assert_eq!(series(&metrics, backend, &["http_status=\"502\""]), 1);
    assert_eq!(series(&metrics, backend, &["error=\"FAIL_FAST\""]), 1);
    assert_eq!(series(&metrics, backend, &["error=\"LOAD_SHED\""]), 1);
    assert_eq!(
        series(&metrics, "outbound_http_route_retry_requests_total", &[]),
        1,
        "the failed-fast POST's retry"
    );
    assert_eq!(
        series(
            &metrics,
            "retry_not_retryable_total",
            &["service=\"emoji\"", "reason=\"non_idempotent\""]
        ),
        1,
        "the refused connect's"
    );
    stop(sidecar).await;
}
