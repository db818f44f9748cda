//! What the fused stack does beyond the layers' own tests, on tokio's
//! paused clock. `tests/timeouts.rs` drives it through whole routes.

use std::{
    convert::Infallible,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header::RETRY_AFTER};
use http_body_util::BodyExt;
use mesh_core::{
    BoxError,
    body::{BoxBody, Proxied, empty, full},
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};

use super::RouteStackLayer;
use crate::{
    Backoff, Budget, BudgetConfig, Deadline, RetryMetrics, RetryPolicy, Timeouts,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
    replay::ReplayBody,
    retry::MESH_RETRY_ATTEMPT,
    timeout::error::{Elapsed, Timeout},
};

type Upstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>;

/// One attempt as the upstream saw it.
#[derive(Debug)]
struct Seen {
    headers: HeaderMap,
    deadline_extension: bool,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An upstream whose attempt `i` waits `delays[i]` and answers
/// `responses(i)`; the last delay repeats.
fn upstream(
    delays: &'static [u64],
    responses: impl Fn(usize) -> Response<Proxied<BoxBody>> + Send + Sync + 'static,
) -> (Upstream, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let responses = Arc::new(responses);
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let i = {
            let mut seen = seen.lock().unwrap();
            seen.push(Seen {
                headers: req.headers().clone(),
                deadline_extension: req.extensions().get::<Deadline>().is_some(),
            });
            seen.len() - 1
        };
        let delay = Duration::from_millis(delays[i.min(delays.len() - 1)]);
        let responses = responses.clone();
        async move {
            sleep(delay).await;
            Ok::<_, Infallible>(responses(i))
        }
    });
    (BoxCloneService::new(svc), log)
}

fn status(code: u16) -> Response<Proxied<BoxBody>> {
    let mut res = Response::new(Proxied::from(full("reply")));
    *res.status_mut() = StatusCode::from_u16(code).unwrap();
    res
}

fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ))
}

fn ms(ms: u64) -> Option<Duration> {
    Some(Duration::from_millis(ms))
}

#[tokio::test(start_paused = true)]
async fn the_deadline_travels_in_the_header_not_as_an_extension() {
    let (upstream, log) = upstream(&[0], |_| status(200));
    let timeouts = Timeouts {
        request: ms(3_000),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(RetryPolicy::default(), timeouts, unlimited()).layer(upstream);
    svc.clone()
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    // A nearer deadline already on the request wins over the route's.
    let mut req = Request::get("/").body(empty()).unwrap();
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(1_500)));
    svc.oneshot(req).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log[0].headers[MESH_DEADLINE], "3000");
    assert!(!log[0].deadline_extension);
    assert_eq!(log[1].headers[MESH_DEADLINE], "1500");
}

#[tokio::test(start_paused = true)]
async fn a_route_with_no_timeouts_and_no_retries_passes_requests_through() {
    let (upstream, log) = upstream(&[0], |_| status(503));
    let svc = RouteStackLayer::new(RetryPolicy::never(), Timeouts::default(), unlimited())
        .layer(upstream);
    let res = svc.oneshot(Request::get("/").body(empty()).unwrap()).await;
    assert_eq!(res.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].headers.is_empty(), "{:?}", log[0].headers);
}

#[tokio::test(start_paused = true)]
async fn each_original_request_deposits_into_the_budget() {
    let budget = Arc::new(Budget::new(BudgetConfig::default()));
    let (upstream, _) = upstream(&[0], |_| status(200));
    let svc = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), budget.clone())
        .layer(upstream);
    for _ in 0..5 {
        svc.clone()
            .oneshot(Request::get("/").body(empty()).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(budget.balance(), 101.0, "the reserve of 100 and 5 × 0.2");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_out_and_the_retry_is_numbered() {
    let (upstream, log) = upstream(&[0], |i| {
        let mut res = status(if i == 0 { 503 } else { 200 });
        res.headers_mut().insert(RETRY_AFTER, "1".parse().unwrap());
        res
    });
    let backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(5)).unwrap();
    let timeouts = Timeouts {
        request: ms(10_000),
        per_try: ms(2_000),
        idle: None,
    };
    let svc = RouteStackLayer::new(
        RetryPolicy::default().with_backoff(backoff),
        timeouts,
        unlimited(),
    )
    .layer(upstream);
    let start = Instant::now();
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert!(!log[0].headers.contains_key(MESH_RETRY_ATTEMPT));
    assert_eq!(log[1].headers[MESH_RETRY_ATTEMPT], "2");
    assert_eq!(
        log[1].headers[MESH_DEADLINE], "2000",
        "the per-try 2 s is nearer"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_covers_waiting_for_the_service_between_attempts() {
    let (svc, mut handle) =
        tower_test::mock::pair::<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>>();
    // Ready for the first attempt only.
    handle.allow(1);
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let timeouts = Timeouts {
        request: ms(1_000),
        ..Timeouts::default()
    };
    let layer = RouteStackLayer::new(policy, timeouts, unlimited());
    let upstream = tokio::spawn(async move {
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(status(503));
        handle
    });
    let start = Instant::now();
    let res = layer
        .layer(svc)
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    drop(upstream.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_per_try_timeout_at_the_deadline_is_the_attempts_and_ends_the_retries() {
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let (upstream, log) = upstream(&[5_000], |_| status(200));
    let timeouts = Timeouts {
        request: ms(500),
        per_try: ms(500),
        idle: None,
    };
    let svc = RouteStackLayer::new(RetryPolicy::default(), timeouts, unlimited())
        .with_metrics(metrics.route("svc", "route"))
        .layer(upstream);
    let start = Instant::now();
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert_eq!(log.lock().unwrap().len(), 1);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("retry_deadline_exceeded_total{service=\"svc\",route=\"route\"} 1"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_call_is_told_its_deadline_in_grpc_timeout() {
    let (upstream, log) = upstream(&[0], |_| status(200));
    let policy = RetryPolicy::default().with_grpc_requests(true);
    let svc = RouteStackLayer::new(policy, Timeouts::default(), unlimited()).layer(upstream);
    let req = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .header(GRPC_TIMEOUT, "3S")
        .header(MESH_DEADLINE, "1")
        .body(empty())
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log[0].headers[GRPC_TIMEOUT], "3000000u");
    assert_eq!(
        log[0].headers[MESH_DEADLINE], "1",
        "not read, not rewritten"
    );
}

#[tokio::test(start_paused = true)]
async fn the_response_body_is_held_to_the_idle_timeout() {
    let svc = service_fn(|_req: Request<ReplayBody<BoxBody>>| async {
        let stalled = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<Bytes>, BoxError>,
        >());
        Ok::<_, Infallible>(Response::new(Proxied::from(BoxBody::new(stalled))))
    });
    let timeouts = Timeouts {
        idle: ms(300),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(RetryPolicy::never(), timeouts, unlimited()).layer(svc);
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    let start = Instant::now();
    let err = res.into_body().collect().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.timeout(), Timeout::Idle);
}

#[tokio::test(start_paused = true)]
async fn attempts_past_the_limit_return_the_last_response() {
    let (upstream, log) = upstream(&[0], |_| status(502));
    let policy = RetryPolicy::default()
        .with_max_attempts(NonZeroU32::new(2).unwrap())
        .with_backoff(Backoff::none());
    let svc = RouteStackLayer::new(policy, Timeouts::default(), unlimited()).layer(upstream);
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "reply");
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_carries_every_header_value_in_order() {
    let (upstream, log) = upstream(&[0], |i| status(if i == 0 { 503 } else { 200 }));
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let svc = RouteStackLayer::new(policy, Timeouts::default(), unlimited()).layer(upstream);
    let req = Request::get("/")
        .header("accept", "text/html")
        .header("x-trace", "a")
        .header("accept", "application/json")
        .header("x-trace", "b")
        .body(empty())
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    let values = |name: &str, i: usize| -> Vec<String> {
        log[i]
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    for name in ["accept", "x-trace"] {
        assert_eq!(values(name, 1), values(name, 0), "{name}");
    }
    assert_eq!(values("accept", 1), ["text/html", "application/json"]);
    assert_eq!(log[1].headers[MESH_RETRY_ATTEMPT], "2");
}

/// A service that counts its clones and answers 503.
#[derive(Debug)]
struct CountsClones(Arc<std::sync::atomic::AtomicUsize>);

impl Clone for CountsClones {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(self.0.clone())
    }
}

impl tower::Service<Request<ReplayBody<BoxBody>>> for CountsClones {
    type Response = Response<Proxied<BoxBody>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<ReplayBody<BoxBody>>) -> Self::Future {
        std::future::ready(Ok(status(503)))
    }
}

#[tokio::test(start_paused = true)]
async fn only_a_request_that_may_be_retried_clones_the_inner_service() {
    let clones_for = |policy: RetryPolicy, method: http::Method| async move {
        let clones = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut route = RouteStackLayer::new(policy, Timeouts::default(), unlimited())
            .layer(CountsClones(clones.clone()));
        let req = Request::builder().method(method).body(empty()).unwrap();
        let res = tower::Service::call(route.ready().await.unwrap(), req)
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        clones.load(std::sync::atomic::Ordering::Relaxed)
    };
    // A clone a request: the one its retries go to (two retries of the
    // 503, through the same clone).
    assert_eq!(
        clones_for(RetryPolicy::default(), http::Method::GET).await,
        1
    );
    assert_eq!(clones_for(RetryPolicy::never(), http::Method::GET).await, 0);
    // A POST is retried only if the upstream did not process it, which
    // this one's 503 does not say; but it might have been.
    assert_eq!(
        clones_for(RetryPolicy::default(), http::Method::POST).await,
        1
    );
    let off = RetryPolicy::default().with_unprocessed(false);
    assert_eq!(clones_for(off, http::Method::POST).await, 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_timeout_too_long_for_the_clock_is_no_timeout_rather_than_a_panic() {
    // Configuration refuses durations past Go's longest (about 292
    // years), but a policy built in code may say anything.
    let far = Duration::MAX;
    let svc = service_fn(|_req: Request<ReplayBody<BoxBody>>| async {
        let frames = futures_util::stream::unfold(0, |step| async move {
            match step {
                0 => {
                    sleep(Duration::from_secs(30)).await;
                    Some((
                        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from("late"))),
                        1,
                    ))
                }
                _ => None,
            }
        });
        let body = BoxBody::new(http_body_util::StreamBody::new(frames));
        Ok::<_, Infallible>(Response::new(Proxied::from(body)))
    });
    let timeouts = Timeouts {
        idle: Some(far),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(RetryPolicy::default(), timeouts, unlimited()).layer(svc);
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "late");
}

#[tokio::test(start_paused = true)]
async fn a_post_is_retried_only_when_the_upstream_did_not_process_it() {
    let unprocessed = || {
        let mut res: Response<Proxied<BoxBody>> =
            mesh_core::ProxyErrorKind::UpstreamUnreachable.response_for(false);
        res.extensions_mut().insert(mesh_core::error::Unprocessed);
        res
    };
    let (upstream_, log) = upstream(
        &[0],
        move |i| {
            if i == 0 { unprocessed() } else { status(201) }
        },
    );
    let svc = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), unlimited())
        .layer(upstream_);
    let res = svc
        .oneshot(Request::post("/orders").body(full("order")).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(log.lock().unwrap().len(), 2);

    // An attempt that outlived its per-try timeout may have been
    // processed, and its 504 is not retried.
    let (upstream_, log) = upstream(&[5_000], |_| status(200));
    let timeouts = Timeouts {
        per_try: ms(1_000),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(RetryPolicy::default(), timeouts, unlimited()).layer(upstream_);
    let res = svc
        .oneshot(Request::post("/orders").body(full("order")).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(log.lock().unwrap().len(), 1);
}
