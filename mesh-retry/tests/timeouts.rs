//! The whole route stack on tokio's paused clock: request timeout, retry,
//! per-try timeout, deadlines passed to the upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderMap, Request, Response, StatusCode};
use mesh_core::{
    body::{BoxBody, Proxied, empty, full},
    error::MESH_ERROR,
};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryPolicy, RouteRetryPolicy, Timeouts, config,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
    replay::ReplayBody,
    retry::MESH_RETRY_ATTEMPT,
};
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};

/// An in-process upstream: attempt `i` waits `delays[i]` (the last delay
/// repeats) and answers `statuses[i]` (likewise); the heads are recorded.
fn upstream(delays: &'static [u64], statuses: &'static [u16]) -> (Upstream, Heads) {
    let heads: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let log = heads.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let i = {
            let mut log = log.lock().unwrap();
            log.push(req.headers().clone());
            log.len() - 1
        };
        let delay = Duration::from_millis(delays[i.min(delays.len() - 1)]);
        let status = statuses[i.min(statuses.len() - 1)];
        async move {
            sleep(delay).await;
            let mut res = Response::new(Proxied::from(full("reply")));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(res)
        }
    });
    (BoxCloneService::new(svc), heads)
}

type Upstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>;

type Heads = Arc<Mutex<Vec<HeaderMap>>>;

fn route(retry: RetryPolicy, timeouts: Timeouts) -> RouteRetryPolicy {
    RouteRetryPolicy {
        name: "route".into(),
        matches: vec![mesh_core::RouteMatch::new()],
        retry,
        timeouts,
        backends: Vec::new(),
        request_headers: Default::default(),
        response_headers: Default::default(),
    }
}

fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ))
}

fn millis(ms: u64) -> Option<Duration> {
    Some(Duration::from_millis(ms))
}

#[tokio::test(start_paused = true)]
async fn the_request_timeout_covers_every_attempt() {
    // Each attempt takes 300 ms and fails; the fourth is still running when
    // the request's second is up.
    let (upstream, heads) = upstream(&[300], &[503]);
    let policy = route(
        RetryPolicy::default()
            .with_max_attempts(NonZeroU32::new(10).unwrap())
            .with_backoff(Backoff::none()),
        Timeouts {
            request: millis(1000),
            ..Timeouts::default()
        },
    );
    let svc = policy.layer(unlimited()).layer(upstream);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "cut at the deadline"
    );
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.headers()[MESH_ERROR], "request timed out");
    assert_eq!(heads.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_the_deadline_and_the_last_response_is_returned() {
    let (upstream, heads) = upstream(&[10_000], &[200]);
    let policy = route(
        RetryPolicy::default().with_max_attempts(NonZeroU32::new(10).unwrap()),
        Timeouts {
            request: millis(1000),
            per_try: millis(300),
            idle: None,
        },
    );
    let svc = policy.layer(unlimited()).layer(upstream);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    assert!(start.elapsed() <= Duration::from_secs(1));
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    let attempts = heads.lock().unwrap().len();
    assert!(
        (3..=4).contains(&attempts),
        "{attempts} attempts in one second"
    );
}

#[tokio::test(start_paused = true)]
async fn a_per_try_timeout_triggers_a_retry() {
    let (upstream, heads) = upstream(&[5_000, 0], &[200]);
    let policy = route(
        RetryPolicy::default(),
        Timeouts {
            per_try: millis(200),
            ..Timeouts::default()
        },
    );
    let svc = policy.layer(unlimited()).layer(upstream);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed <= Duration::from_millis(225),
        "one per-try timeout and one backoff: {elapsed:?}"
    );
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[1][MESH_RETRY_ATTEMPT], "2");
}

#[tokio::test(start_paused = true)]
async fn when_attempts_run_out_on_timeouts_the_caller_gets_the_504() {
    let (upstream, heads) = upstream(&[5_000], &[200]);
    let policy = route(
        RetryPolicy::default(),
        Timeouts {
            per_try: millis(100),
            ..Timeouts::default()
        },
    );
    let res = policy
        .layer(unlimited())
        .layer(upstream)
        .oneshot(Request::new(empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(heads.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_reaches_the_upstream_reduced_by_the_time_spent() {
    let (upstream, heads) = upstream(&[300, 0], &[503, 200]);
    let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(50)).unwrap();
    let policy = route(
        RetryPolicy::default().with_backoff(backoff),
        Timeouts {
            request: millis(10_000),
            ..Timeouts::default()
        },
    );
    let svc = policy.layer(unlimited()).layer(upstream);
    svc.oneshot(Request::new(empty())).await.unwrap();
    let heads = heads.lock().unwrap();
    let deadline = |i: usize| -> u64 { heads[i][MESH_DEADLINE].to_str().unwrap().parse().unwrap() };
    assert_eq!(deadline(0), 10_000);
    assert!(
        (9_650..=9_700).contains(&deadline(1)),
        "10 s less the 300 ms attempt and up to 50 ms of backoff: {}",
        deadline(1)
    );
    assert!(!heads[0].contains_key(GRPC_TIMEOUT));
}

#[tokio::test(start_paused = true)]
async fn a_grpc_upstream_gets_grpc_timeout_and_a_grpc_caller_deadline_exceeded() {
    let (upstream, heads) = upstream(&[10_000], &[200]);
    let policy = route(
        RetryPolicy::default().with_any_method(true),
        Timeouts {
            request: millis(1500),
            per_try: millis(1000),
            idle: None,
        },
    );
    let req = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(empty())
        .unwrap();
    let res = policy
        .layer(unlimited())
        .layer(upstream)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "4");
    let heads = heads.lock().unwrap();
    // The first attempt may take the per-try 1 s; the second only what is
    // left of the 1.5 s, less the backoff.
    assert_eq!(heads[0][GRPC_TIMEOUT], "1000000u");
    let second: u64 = heads[1][GRPC_TIMEOUT]
        .to_str()
        .unwrap()
        .trim_end_matches('u')
        .parse()
        .unwrap();
    assert!((475_000..=500_000).contains(&second), "{second}");
    assert!(!heads[0].contains_key(MESH_DEADLINE));
}

#[tokio::test(start_paused = true)]
async fn the_guides_route_retries_get_and_holds_each_attempt_to_two_seconds() {
    let text = format!(
        "{}\n---\n{}",
        include_str!("fixtures/guide-serviceprofile.yaml"),
        include_str!("fixtures/guide-httproute.yaml")
    );
    let loaded = config::load("guide.yaml", &text).unwrap();
    let emoji = loaded.service("emoji", Some("emojivoto")).unwrap();
    let budget = Arc::new(Budget::new(emoji.budget));

    // GET /api/emoji: the first attempt hangs past the 2 s per-try timeout,
    // the second fails with 503, the third succeeds.
    let get = Request::get("/api/emoji").body(empty()).unwrap();
    let route = emoji.route_for(&get).unwrap();
    let (flaky, heads) = upstream(&[60_000, 0], &[200, 503, 200]);
    let start = Instant::now();
    let res = route
        .layer(budget.clone())
        .layer(flaky)
        .oneshot(get)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(start.elapsed() < Duration::from_millis(2_100));
    {
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 3);
        assert_eq!(
            heads[0][MESH_DEADLINE], "2000",
            "the per-try 2 s is nearer than the 10 s"
        );
    }

    // POST /api/emoji is on the ServiceProfile route, which retries nothing.
    let post = Request::post("/api/emoji").body(full("{}")).unwrap();
    let route = emoji.route_for(&post).unwrap();
    let (failing, heads) = upstream(&[0], &[503]);
    let res = route
        .layer(budget)
        .layer(failing)
        .oneshot(post)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(heads.lock().unwrap().len(), 1);
}
