use std::{
    io,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::{
    BoxError, ProxyErrorKind,
    body::{BoxBody, full},
    classify::StatusRanges,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn, util::BoxCloneService};

use super::*;
use crate::{BudgetConfig, Deadline, replay::ReplayBody};

/// One attempt as the upstream saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

type Upstream = BoxCloneService<Request<ReplayBody<BoxBody>>, Response<BoxBody>, BoxError>;

type Script = dyn Fn(usize) -> Result<Response<BoxBody>, BoxError> + Send + Sync;

/// An in-process upstream: records each attempt, answers from `script`
/// (called with the attempt's index, from 0).
fn upstream(
    script: impl Fn(usize) -> Result<Response<BoxBody>, BoxError> + Send + Sync + 'static,
) -> (Upstream, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let log = seen.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let (log, script) = (log.clone(), script.clone());
        async move {
            let (parts, body) = req.into_parts();
            let collected = collect(body).await?;
            let trailers = collected.trailers().cloned();
            let index = {
                let mut log = log.lock().unwrap();
                log.push(Seen {
                    method: parts.method,
                    headers: parts.headers,
                    body: collected.to_bytes(),
                    trailers,
                });
                log.len() - 1
            };
            script(index)
        }
    });
    (BoxCloneService::new(svc), seen)
}

/// Collects a body in a boxed future: holding the `Collect` itself across an
/// await makes rustc's `Send` check for the async block fail (rust#102211).
fn collect(
    body: ReplayBody<BoxBody>,
) -> std::pin::Pin<
    Box<dyn Future<Output = Result<http_body_util::Collected<Bytes>, BoxError>> + Send>,
> {
    Box::pin(body.collect())
}

fn status(code: u16) -> Result<Response<BoxBody>, BoxError> {
    let mut res = Response::new(full(format!("status {code}")));
    *res.status_mut() = StatusCode::from_u16(code).unwrap();
    Ok(res)
}

fn grpc(code: &str) -> Result<Response<BoxBody>, BoxError> {
    Ok(Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code)
        .body(mesh_core::body::empty())
        .unwrap())
}

fn get(path: &str) -> Request<BoxBody> {
    Request::get(path).body(mesh_core::body::empty()).unwrap()
}

fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ))
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

struct Harness {
    registry: Registry,
    metrics: RetryMetrics,
}

impl Harness {
    fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        Self { registry, metrics }
    }

    fn layer(&self, policy: RetryPolicy, budget: Arc<Budget>) -> RetryLayer {
        RetryLayer::new(policy, budget).with_metrics(self.metrics.route("svc", "route"))
    }

    fn text(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text
    }

    fn count(&self, metric: &str) -> u64 {
        counter(
            &self.text(),
            &format!("{metric}{{service=\"svc\",route=\"route\"}}"),
        )
    }

    fn not_retryable(&self, reason: &str) -> u64 {
        counter(
            &self.text(),
            &format!(
                "retry_not_retryable_total{{service=\"svc\",route=\"route\",reason=\"{reason}\"}}"
            ),
        )
    }
}

async fn send<S>(
    layer: &RetryLayer,
    svc: S,
    req: Request<BoxBody>,
) -> Result<Response<BoxBody>, BoxError>
where
    S: Service<Request<ReplayBody<BoxBody>>, Response = Response<BoxBody>, Error = BoxError>
        + Clone,
{
    tower::Layer::layer(layer, svc).oneshot(req).await
}

#[tokio::test(start_paused = true)]
async fn a_5xx_is_retried_until_it_succeeds() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i < 2 { status(503) } else { status(200) });
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = seen.lock().unwrap();
    let attempts: Vec<_> = seen
        .iter()
        .map(|s| s.headers.get(MESH_RETRY_ATTEMPT).cloned())
        .collect();
    assert_eq!(
        attempts,
        [None, Some("2".parse().unwrap()), Some("3".parse().unwrap())]
    );
    assert_eq!(h.count("retry_requests_total"), 2);
    assert_eq!(h.count("retry_successes_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_caller_gets_the_last_real_response_when_attempts_run_out() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| {
        let mut res = status(500)?;
        res.headers_mut().insert("x-attempt", i.into());
        Ok(res)
    });
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(
        res.headers()["x-attempt"],
        "2",
        "the third attempt's own response"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(h.count("retry_limit_exceeded_total"), 1);
    assert_eq!(h.count("retry_successes_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn successes_and_client_errors_are_not_retried() {
    let h = Harness::new();
    for code in [200, 404, 429] {
        let (svc, seen) = upstream(move |_| status(code));
        let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
            .await
            .unwrap();
        assert_eq!(res.status(), code);
        assert_eq!(seen.lock().unwrap().len(), 1, "{code}");
    }
    assert_eq!(h.count("retry_requests_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn only_the_configured_statuses_are_retried() {
    let h = Harness::new();
    let policy = RetryPolicy::default().with_http_statuses("gateway-error".parse().unwrap());
    let (svc, seen) = upstream(|_| status(500));
    send(&h.layer(policy.clone(), unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "500 is not a gateway error");
    let (svc, seen) = upstream(|_| status(504));
    send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_by_default() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| status(503));
    let req = Request::post("/").body(full("order")).unwrap();
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, req)
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.not_retryable("non_idempotent"), 1);
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_when_the_route_marks_it_retryable() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { status(503) } else { status(201) });
    let req = Request::post("/").body(full("order")).unwrap();
    let policy = RetryPolicy::default().with_any_method(true);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 201);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.method == Method::POST && s.body == "order")
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_returns_the_last_response_and_says_so() {
    let h = Harness::new();
    let empty = Arc::new(Budget::new(
        BudgetConfig::new(0.0, 0, Duration::from_secs(10)).unwrap(),
    ));
    let (svc, seen) = upstream(|_| status(502));
    let res = send(&h.layer(RetryPolicy::default(), empty), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.count("retry_budget_exhausted_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn grpc_unavailable_in_a_trailers_only_response_is_retried() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { grpc("14") } else { grpc("0") });
    let req = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(full("\0\0\0\0\0"))
        .unwrap();
    // gRPC methods are POSTs: the route marks them retryable.
    let policy = RetryPolicy::default().with_any_method(true);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "0");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn grpc_codes_outside_the_set_and_streamed_statuses_are_not_retried() {
    let h = Harness::new();
    let policy = RetryPolicy::default().with_any_method(true);
    for script in [grpc("5"), grpc("3")] {
        let script = Arc::new(Mutex::new(Some(script)));
        let (svc, seen) = upstream(move |_| script.lock().unwrap().take().unwrap());
        let req = Request::post("/p.S/M")
            .header("content-type", "application/grpc")
            .body(mesh_core::body::empty())
            .unwrap();
        send(&h.layer(policy.clone(), unlimited()), svc, req)
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
    // The status is in the trailers: the response has started streaming.
    let (svc, seen) = upstream(|_| {
        Ok(Response::builder()
            .header("content-type", "application/grpc")
            .body(full("data"))
            .unwrap())
    });
    let req = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .body(mesh_core::body::empty())
        .unwrap();
    send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn connection_errors_before_a_response_are_retried() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| match i {
        0 => Err(io::Error::from(io::ErrorKind::ConnectionRefused).into()),
        1 => Ok(ProxyErrorKind::UpstreamUnreachable.response(&get("/"))),
        _ => status(200),
    });
    // Even a policy that retries no status retries these.
    let policy = RetryPolicy::default().with_http_statuses(StatusRanges::empty());
    let res = send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_returned_at_once() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| Err(io::Error::other("bug").into()));
    let err = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
        .await
        .unwrap_err();
    assert!(err.is::<io::Error>());
    assert_eq!(seen.lock().unwrap().len(), 1);
    let (svc, seen) = upstream(|_| Err(io::Error::from(io::ErrorKind::ConnectionReset).into()));
    let policy = RetryPolicy::default().with_connection_errors(false);
    send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_out_up_to_the_max() {
    let h = Harness::new();
    let (svc, _) = upstream(|i| {
        let mut res = status(if i == 0 { 503 } else { 200 })?;
        res.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        Ok(res)
    });
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    let policy = RetryPolicy::default().with_backoff(backoff);
    send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_that_the_deadline_would_cut_short() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| status(503));
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(100)).unwrap();
    // Full jitter picks a wait up to 100 ms; with 0 left, none fits.
    let mut req = get("/");
    req.extensions_mut().insert(Deadline::after(Duration::ZERO));
    let policy = RetryPolicy::default().with_backoff(backoff);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.count("retry_deadline_exceeded_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_body_is_replayed_byte_for_byte_with_its_trailers() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { status(503) } else { status(200) });
    let payload: Bytes = (0..10 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let mut trailers = HeaderMap::new();
    trailers.insert("checksum", "abc".parse().unwrap());
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(
        payload
            .chunks(1000)
            .map(|c| Ok::<_, BoxError>(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>()
            .into_iter()
            .chain([Ok(http_body::Frame::trailers(trailers.clone()))]),
    ));
    let req = Request::put("/")
        .body(mesh_core::body::boxed(body))
        .unwrap();
    send(&h.layer(RetryPolicy::default(), unlimited()), svc, req)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for attempt in seen.iter() {
        assert_eq!(attempt.body, payload);
        assert_eq!(attempt.trailers.as_ref(), Some(&trailers));
    }
}

#[tokio::test(start_paused = true)]
async fn a_known_length_over_the_cap_is_sent_once() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| status(503));
    let req = Request::put("/").body(full(vec![7; 100])).unwrap();
    let policy = RetryPolicy::default().with_max_replay_bytes(99);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap()[0].body.len(), 100);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.not_retryable("body_too_large"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_policy_of_one_attempt_never_touches_the_budget() {
    let budget = Arc::new(Budget::default());
    let (svc, seen) = upstream(|_| status(503));
    let layer = RetryLayer::new(RetryPolicy::never(), budget.clone());
    send(&layer, svc, get("/")).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(budget.balance(), 100.0);
    assert_eq!(RetryPolicy::never().max_attempts(), NonZeroU32::MIN);
}

#[tokio::test(start_paused = true)]
async fn metrics_can_be_labelled_from_the_request() {
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let budget = unlimited();
    metrics.observe_budget("emoji", &budget);
    let layer = RetryLayer::new(RetryPolicy::default(), budget).with_request_metrics(metrics);
    let (svc, _) = upstream(|i| if i == 0 { status(503) } else { status(200) });
    let mut req = get("/");
    req.extensions_mut()
        .insert(mesh_core::labels::DstService("emoji".into()));
    req.extensions_mut()
        .insert(mesh_core::route::RouteId::new("list"));
    send(&layer, svc, req).await.unwrap();
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        counter(
            &text,
            "retry_requests_total{service=\"emoji\",route=\"list\"}"
        ),
        1
    );
    assert!(
        text.contains("retry_budget_balance{service=\"emoji\"} 10999.0"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_is_forwarded_and_each_retry_waits_for_it() {
    let (mock, mut handle) =
        tower_test::mock::pair::<Request<ReplayBody<BoxBody>>, Response<BoxBody>>();
    let layer = RetryLayer::new(
        RetryPolicy::default().with_backoff(Backoff::none()),
        unlimited(),
    );
    let mut svc = tower::Layer::layer(&layer, mock);

    handle.allow(0);
    let ready = std::future::poll_fn(|cx| std::task::Poll::Ready(svc.poll_ready(cx))).await;
    assert!(
        ready.is_pending(),
        "not ready while the inner service is not"
    );

    handle.allow(1);
    svc.ready().await.unwrap();
    let mut res = tokio::spawn(svc.call(get("/")));
    let (req, send) = handle.next_request().await.unwrap();
    assert!(req.headers().get(MESH_RETRY_ATTEMPT).is_none());
    send.send_response(status(503).unwrap());

    // The retry waits until the inner service is ready again.
    let waiting = tokio::time::timeout(Duration::from_secs(1), &mut res).await;
    assert!(
        waiting.is_err(),
        "no retry is sent to a service that is not ready"
    );
    handle.allow(1);
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()[MESH_RETRY_ATTEMPT], "2");
    send.send_response(status(200).unwrap());
    assert_eq!(res.await.unwrap().unwrap().status(), 200);
}
