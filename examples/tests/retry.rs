//! Retries and timeouts through the sidecar's outbound listener, configured
//! the ways users write them: the guide's `HTTPRoute` and `ServiceProfile`,
//! and a service's own `retry` and `timeouts`. The backend fails the first
//! attempts of each request and counts every attempt it sees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use support::*;

const GUIDE_ROUTE: &str = include_str!("../../mesh-retry/tests/fixtures/guide-httproute.yaml");
const GUIDE_PROFILE: &str =
    include_str!("../../mesh-retry/tests/fixtures/guide-serviceprofile.yaml");

/// Attempts seen per `x-request-id`.
type Attempts = Arc<Mutex<HashMap<String, usize>>>;

/// A backend that answers 503 to the first `fail` attempts of each request
/// (`?fail=N`, by its `x-request-id`), then 200; `/hold` never answers.
async fn flaky_backend() -> (SocketAddr, Attempts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts = Attempts::default();
    let seen = attempts.clone();
    serve(listener, move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move { Ok(answer(&req, &seen).await) }
    });
    (addr, attempts)
}

async fn answer(req: &Request<Incoming>, seen: &Attempts) -> Response<Body> {
    if req.uri().path() == "/hold" {
        std::future::pending::<()>().await;
    }
    let id = req.headers()["x-request-id"].to_str().unwrap().to_owned();
    let fail: usize = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("fail="))
        .map_or(0, |n| n.parse().unwrap());
    let attempt = {
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(id).or_default();
        *n += 1;
        *n
    };
    let mut res = Response::new(full(format!("attempt {attempt}")));
    if attempt <= fail {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    res
}

/// A plaintext sidecar whose outbound `emoji` is `backend`, with the policy
/// resources `resources` and `emoji`'s own settings `extra`.
fn outbound_yaml(
    dir: &tempfile::TempDir,
    backend: SocketAddr,
    resources: &[&str],
    extra: &str,
) -> String {
    let mut files = Vec::new();
    for (i, text) in resources.iter().enumerate() {
        let file = dir.path().join(format!("routes-{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        files.push(file.display().to_string());
    }
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{backend}]\n{extra}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        files.join(", ")
    )
}

async fn call(outbound: SocketAddr, method: &str, path: &str, id: &str) -> Response<Incoming> {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{outbound}{path}"))
        .header("host", "emoji")
        .header("x-request-id", id)
        .body(full("vote"))
        .unwrap();
    http1().request(req).await.unwrap()
}

fn attempts(seen: &Attempts, id: &str) -> usize {
    seen.lock().unwrap().get(id).copied().unwrap_or(0)
}

fn metric(text: &str, prefix: &str, labels: &[&str]) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(prefix) && labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
}

#[tokio::test]
async fn the_guides_httproute_retries_a_get_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, seen) = flaky_backend().await;
    let sidecar = sidecar(&outbound_yaml(&dir, backend, &[GUIDE_ROUTE], ""));

    let res = call(sidecar.outbound, "GET", "/api/emoji/list?fail=2", "a").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, "attempt 3");
    assert_eq!(attempts(&seen, "a"), 3);

    // More failures than numRetries allows (3 retries, 4 attempts): the
    // last real 503 comes back.
    let res = call(sidecar.outbound, "GET", "/api/emoji/list?fail=10", "b").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts(&seen, "b"), 4);
    assert_eq!(body_bytes(res).await, "attempt 4");

    let metrics = scrape(sidecar.admin).await;
    let route = "route=\"web-to-emoji-retries\"";
    let retries = metric(
        &metrics,
        "retry_requests_total{",
        &[route, "service=\"emoji\""],
    );
    assert_eq!(retries.as_deref(), Some("5"), "{metrics}");
    assert!(
        metric(&metrics, "retry_limit_exceeded_total{", &[route]).as_deref() == Some("1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("retry_budget_balance{service=\"emoji\"}"),
        "{metrics}"
    );
    stop(sidecar).await;

    // The guide applies its ServiceProfile too, whose routes serve the
    // service alone, as in Linkerd: its `Get /api/emoji` route is not
    // retryable, and the HTTPRoute's retries do not apply.
    let (backend, seen) = flaky_backend().await;
    let both = support::sidecar(&outbound_yaml(
        &dir,
        backend,
        &[GUIDE_ROUTE, GUIDE_PROFILE],
        "",
    ));
    let res = call(both.outbound, "GET", "/api/emoji/list?fail=2", "c").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts(&seen, "c"), 1);
    stop(both).await;
}

#[tokio::test]
async fn a_post_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, seen) = flaky_backend().await;
    let first = sidecar(&outbound_yaml(
        &dir,
        backend,
        &[GUIDE_ROUTE, GUIDE_PROFILE],
        "",
    ));
    // The profile's `Post /api/emoji` route is not retryable.
    let res = call(first.outbound, "POST", "/api/emoji?fail=1", "post").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts(&seen, "post"), 1);
    stop(first).await;

    // Nor by a service's own retry policy, which retries GETs.
    let (backend, seen) = flaky_backend().await;
    let sidecar = sidecar(&outbound_yaml(
        &dir,
        backend,
        &[],
        "      retry: {attempts: 3}\n",
    ));
    let res = call(sidecar.outbound, "POST", "/vote?fail=1", "post").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts(&seen, "post"), 1);
    let res = call(sidecar.outbound, "GET", "/vote?fail=1", "get").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(attempts(&seen, "get"), 2);
    stop(sidecar).await;
}

#[tokio::test]
async fn a_retryable_serviceprofile_route_retries_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, seen) = flaky_backend().await;
    // The guide's profile, with its GET route marked retryable.
    let profile = GUIDE_PROFILE.replacen(
        "      pathRegex: /api/emoji\n",
        "      pathRegex: /api/emoji\n    isRetryable: true\n",
        1,
    );
    assert_ne!(profile, GUIDE_PROFILE);
    let sidecar = sidecar(&outbound_yaml(&dir, backend, &[&profile], ""));
    let res = call(sidecar.outbound, "GET", "/api/emoji?fail=1", "get").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(attempts(&seen, "get"), 2);
    // A path no route matches takes the service's default: no retries.
    let res = call(sidecar.outbound, "GET", "/api/vote?fail=1", "other").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(attempts(&seen, "other"), 1);
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(
        metric(
            &metrics,
            "retry_requests_total{",
            &["route=\"Get /api/emoji\""]
        )
        .as_deref(),
        Some("1"),
        "{metrics}"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_request_timeout_answers_504() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _) = flaky_backend().await;
    // The service's own timeouts: no route of its own replaces them.
    let sidecar = sidecar(&outbound_yaml(
        &dir,
        backend,
        &[],
        "      timeouts: {request: 300ms}\n",
    ));
    let res = call(sidecar.outbound, "GET", "/hold", "slow").await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(res.headers().contains_key("mesh-error"));

    // gRPC callers get DEADLINE_EXCEEDED.
    let req = Request::post("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-request-id", "grpc")
        .body(full(""))
        .unwrap();
    let res = h2_via(sidecar.outbound, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "4");
    stop(sidecar).await;
}
