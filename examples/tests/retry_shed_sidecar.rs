//! A route's retries through the sidecar, with a zero fail-fast timeout
//! and an endpoint that refuses connections: the first request's refused
//! connect is retried, that retry fails fast and is retried too, and the
//! next is shed, and not retried; every later request is shed once, and
//! not retried, as linkerd2-proxy's route retries treat its
//! `LoadShedError` and `FailFastError`. A retry of a shed request would
//! only be shed again.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::support;
use http::Request;
use support::*;

#[tokio::test]
async fn a_shed_request_is_not_retried_and_one_that_failed_fast_is() {
    let dead = refused_addr().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  http_failfast_timeout: 0s\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{dead}]\n\
         \x20     failure_accrual: {{max_failures: 1, min_penalty: 10m, max_penalty: 10m, jitter: 0}}\n\
         \x20     retry: {{attempts: 3}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let client = http1();
    for _ in 0..3 {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["mesh-error"], "service unavailable");
        body_bytes(res).await;
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
    let dead = refused_addr().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  http_failfast_timeout: 0s\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{dead}]\n\
         \x20     failure_accrual: {{max_failures: 1, min_penalty: 10m, max_penalty: 10m, jitter: 0}}\n\
         \x20     retry: {{attempts: 3}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let client = http1();
    for (status, mesh_error) in [
        (502, "upstream connect error"),
        (503, "service unavailable"),
    ] {
        let req = Request::post(format!("http://{}/vote", sidecar.outbound))
            .header("host", "emoji")
            .body(full("ballot"))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(res.headers()["mesh-error"], mesh_error);
        body_bytes(res).await;
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
