//! The deadline a retry tells the upstream, with no per-try timeout layer
//! inside to write it.

use tower::Layer;

use super::*;
use crate::{
    RequestTimeoutLayer, Timeouts,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
};

/// An upstream that records each attempt's headers, answers the first
/// attempt with `first`, and later ones with 200 at once.
fn first_then_ok<F>(
    first: impl Fn() -> F + Send + Clone + 'static,
) -> (Upstream, Arc<Mutex<Vec<HeaderMap>>>)
where
    F: Future<Output = Result<Response<BoxBody>, BoxError>> + Send + 'static,
{
    let heads = Arc::new(Mutex::new(Vec::new()));
    let log = heads.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let attempt = {
            let mut log = log.lock().unwrap();
            log.push(req.headers().clone());
            log.len()
        };
        let first = first();
        async move {
            if attempt == 1 {
                return first.await;
            }
            status(200)
        }
    });
    (BoxCloneService::new(svc), heads)
}

/// An upstream whose first attempt takes a second and fails with 503, and
/// whose later ones succeed at once; it records each attempt's headers.
fn slow_then_ok() -> (Upstream, Arc<Mutex<Vec<HeaderMap>>>) {
    first_then_ok(|| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        status(503)
    })
}

/// The `name` header of each attempt the upstream saw, in order.
fn sent(heads: &Mutex<Vec<HeaderMap>>, name: &http::HeaderName) -> Vec<http::HeaderValue> {
    let heads = heads.lock().unwrap();
    heads.iter().map(|h| h[name].clone()).collect()
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

/// An upstream whose first attempt fails at once with a 503 asking for a
/// one-second wait (`Retry-After: 1`, a backoff with no jitter), and whose
/// later ones succeed; it records each attempt's headers.
fn busy_then_ok() -> (Upstream, Arc<Mutex<Vec<HeaderMap>>>) {
    first_then_ok(|| async {
        let mut res = status(503)?;
        res.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1"));
        Ok(res)
    })
}

/// Waits out `Retry-After` up to two seconds.
fn waits_retry_after() -> RetryPolicy {
    let backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(2)).unwrap();
    RetryPolicy::default()
        .with_grpc_requests(true)
        .with_backoff(backoff)
}

fn with_deadline(mut req: Request<BoxBody>, after: Duration) -> Request<BoxBody> {
    req.extensions_mut().insert(Deadline::after(after));
    req
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_backoff_ends_as_the_deadline_passes_is_not_sent() {
    // Timers fire on whole milliseconds: from 0.3 ms, a one-second backoff
    // ends at 1001 ms, past a deadline at 1000.5 ms that left 1000.2 ms
    // for the backoff when the retry was decided.
    tokio::time::advance(Duration::from_micros(300)).await;
    let (upstream, heads) = busy_then_ok();
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(Timeouts::default()))
        .layer(RetryLayer::new(waits_retry_after(), unlimited()))
        .service(upstream);
    let req = with_deadline(get("/"), Duration::from_micros(1_000_200));
    let res = svc.oneshot(req).await.unwrap();
    let sent = sent(&heads, &MESH_DEADLINE);
    assert_eq!(sent, ["1000"], "no attempt is sent past the deadline");
    assert_eq!(res.status(), 503, "the last real response");
}

#[tokio::test(start_paused = true)]
async fn a_retry_the_upstream_would_be_told_has_no_time_left_is_not_sent() {
    // The backoff ends half a millisecond before the deadline, which
    // `mesh-deadline` (whole milliseconds) would write as 0: passed.
    let (upstream, heads) = busy_then_ok();
    let svc = RetryLayer::new(waits_retry_after(), unlimited()).layer(upstream);
    let mut req = with_deadline(get("/"), Duration::from_micros(1_000_500));
    req.headers_mut()
        .insert(MESH_DEADLINE, "1000".parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(heads.lock().unwrap().len(), 1, "the retry was not sent");
    assert_eq!(res.status(), 503);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_retry_is_not_sent_with_a_grpc_timeout_of_zero() {
    tokio::time::advance(Duration::from_micros(300)).await;
    let (upstream, heads) = busy_then_ok();
    let svc = RetryLayer::new(waits_retry_after(), unlimited()).layer(upstream);
    let req = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .header(GRPC_TIMEOUT, "1000200u")
        .body(mesh_core::body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let sent = sent(&heads, &GRPC_TIMEOUT);
    assert_eq!(sent, ["1000200u"], "the retry was not sent");
    assert_eq!(res.status(), 503);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_when_the_deadline_is_exactly_the_backoff() {
    let (upstream, heads) = busy_then_ok();
    let harness = Harness::new();
    let svc = harness
        .layer(waits_retry_after(), unlimited())
        .layer(upstream);
    let req = with_deadline(get("/"), Duration::from_secs(1));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(heads.lock().unwrap().len(), 1);
    assert_eq!(res.status(), 503);
    assert_eq!(harness.count("retry_deadline_exceeded_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_refused_at_the_end_of_its_backoff_is_counted_as_deadline_exceeded() {
    tokio::time::advance(Duration::from_micros(300)).await;
    let (upstream, heads) = busy_then_ok();
    let harness = Harness::new();
    let svc = harness
        .layer(waits_retry_after(), unlimited())
        .layer(upstream);
    let req = with_deadline(get("/"), Duration::from_micros(1_000_200));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(heads.lock().unwrap().len(), 1);
    assert_eq!(res.status(), 503);
    assert_eq!(harness.count("retry_deadline_exceeded_total"), 1);
    assert_eq!(harness.count("retry_requests_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_timeout_outside_answers_a_grpc_timeout_of_zero_without_sending_it() {
    let (upstream, heads) = busy_then_ok();
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(Timeouts::default()))
        .layer(RetryLayer::new(waits_retry_after(), unlimited()))
        .service(upstream);
    let req = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .header(GRPC_TIMEOUT, "0n")
        .body(mesh_core::body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "4");
    assert_eq!(
        res.headers()[mesh_core::error::MESH_ERROR],
        "request timed out"
    );
    assert!(heads.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn alone_the_retry_layer_answers_a_first_attempt_past_its_deadline_and_counts_nothing() {
    // As the route stack does: the caller has given up, so the request is
    // answered at once, never sent, never retried, and not a retryable
    // failure the retry metrics would explain.
    let (upstream, heads) = busy_then_ok();
    let harness = Harness::new();
    let budget = unlimited();
    let before = budget.balance();
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let svc = harness.layer(policy, budget.clone()).layer(upstream);
    let mut req = get("/");
    req.headers_mut()
        .insert(MESH_DEADLINE, "0".parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert!(heads.lock().unwrap().is_empty(), "nothing was sent");
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::Timeout)
    );
    assert_eq!(budget.balance(), before, "nothing deposited");
    for metric in [
        "retry_requests_total",
        "retry_deadline_exceeded_total",
        "retry_limit_exceeded_total",
    ] {
        assert_eq!(harness.count(metric), 0, "{metric}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_a_per_try_timeout_would_tell_it_has_no_time_left_is_not_sent() {
    // The request carries no deadline header: the per-try timeout inside
    // writes it, in whole milliseconds.
    let (upstream, heads) = busy_then_ok();
    let timeouts = Timeouts {
        per_try: Some(Duration::from_secs(5)),
        ..Timeouts::default()
    };
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(Timeouts::default()).with_propagation(false))
        .layer(RetryLayer::new(waits_retry_after(), unlimited()))
        .layer(crate::AttemptTimeoutLayer::new(timeouts))
        .service(upstream);
    let req = with_deadline(get("/"), Duration::from_micros(1_000_500));
    let res = svc.oneshot(req).await.unwrap();
    let sent = sent(&heads, &MESH_DEADLINE);
    assert_eq!(sent, ["1000"], "the retry was not sent");
    assert_eq!(res.status(), 503);
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_sends_no_retry_it_would_tell_has_no_time_left() {
    let (upstream, heads) = busy_then_ok();
    let svc = crate::RouteStackLayer::new(waits_retry_after(), Timeouts::default(), unlimited())
        .layer(upstream);
    let req = with_deadline(get("/"), Duration::from_micros(1_000_500));
    let res = svc.oneshot(req).await.unwrap();
    let sent = sent(&heads, &MESH_DEADLINE);
    assert_eq!(sent, ["1000"], "the retry was not sent");
    // The route stack owns the deadline, and answers for it.
    assert_eq!(res.status(), 504);
    assert_eq!(
        res.headers()[mesh_core::error::MESH_ERROR],
        "request timed out"
    );
}
