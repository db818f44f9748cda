//! The deadline a retry tells the upstream, with no per-try timeout layer
//! inside to write it.

use tower::Layer;

use super::*;
use crate::{
    RequestTimeoutLayer, Timeouts,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
};

/// An upstream whose first attempt takes a second and fails with 503, and
/// whose later ones succeed at once; it records each attempt's headers.
fn slow_then_ok() -> (Upstream, Arc<Mutex<Vec<HeaderMap>>>) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let log = heads.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let attempt = {
            let mut log = log.lock().unwrap();
            log.push(req.headers().clone());
            log.len()
        };
        async move {
            if attempt == 1 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return status(503);
            }
            status(200)
        }
    });
    (BoxCloneService::new(svc), heads)
}

fn millis(value: &http::HeaderValue) -> u64 {
    value.to_str().unwrap().parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_retry_tells_the_upstream_the_time_left_not_the_time_there_was() {
    let (upstream, heads) = slow_then_ok();
    let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(50)).unwrap();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(timeouts))
        .layer(RetryLayer::new(
            RetryPolicy::default().with_backoff(backoff),
            unlimited(),
        ))
        .service(upstream);
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), 200);
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(millis(&heads[0][MESH_DEADLINE]), 10_000);
    let second = millis(&heads[1][MESH_DEADLINE]);
    assert!(
        (8_950..=9_000).contains(&second),
        "10 s less the 1 s attempt and up to 50 ms of backoff: {second}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retried_grpc_call_gets_a_reduced_grpc_timeout() {
    let (upstream, heads) = slow_then_ok();
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(Timeouts::default()))
        .layer(RetryLayer::new(
            RetryPolicy::default()
                .with_grpc_requests(true)
                .with_backoff(Backoff::none()),
            unlimited(),
        ))
        .service(upstream);
    let req = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .header(GRPC_TIMEOUT, "5S")
        .body(mesh_core::body::empty())
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0][GRPC_TIMEOUT], "5000000u");
    assert_eq!(heads[1][GRPC_TIMEOUT], "4000000u", "a second was spent");
}

#[tokio::test(start_paused = true)]
async fn a_retry_adds_no_deadline_header_the_request_did_not_carry() {
    let (upstream, heads) = slow_then_ok();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(timeouts).with_propagation(false))
        .layer(RetryLayer::new(
            RetryPolicy::default().with_backoff(Backoff::none()),
            unlimited(),
        ))
        .service(upstream);
    svc.oneshot(get("/")).await.unwrap();
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    assert!(heads.iter().all(|h| !h.contains_key(MESH_DEADLINE)));
}

#[tokio::test(start_paused = true)]
async fn with_no_request_timeout_the_callers_header_is_the_deadline_of_retries() {
    let (upstream, heads) = slow_then_ok();
    let svc = RetryLayer::new(
        RetryPolicy::default().with_backoff(Backoff::none()),
        unlimited(),
    )
    .layer(upstream);
    let mut req = get("/");
    req.headers_mut()
        .insert(MESH_DEADLINE, "1500".parse().unwrap());
    svc.oneshot(req).await.unwrap();
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(millis(&heads[0][MESH_DEADLINE]), 1500);
    assert_eq!(millis(&heads[1][MESH_DEADLINE]), 500, "a second was spent");
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_the_deadline_the_caller_sent() {
    let (upstream, heads) = slow_then_ok();
    let svc = RetryLayer::new(RetryPolicy::default(), unlimited()).layer(upstream);
    let mut req = get("/");
    // The first attempt takes all of it.
    req.headers_mut()
        .insert(MESH_DEADLINE, "1000".parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(heads.lock().unwrap().len(), 1);
}
