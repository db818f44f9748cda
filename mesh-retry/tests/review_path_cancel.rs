//! A retryable failure whose retry the deadline cut off while it waited
//! for the failed attempt's client to let go of the request body is
//! counted as `deadline_exceeded`, as one cut off during its backoff is:
//! every retryable failure that is not retried is counted once, under why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use mesh_core::{
    BoxError,
    body::{BoxBody, Proxied, boxed},
};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RequestTimeoutLayer, RetryLayer, RetryMetrics, RetryPolicy,
    RouteStackLayer, Timeouts, replay::ReplayBody,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};

type Upstream = BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, BoxError>;

/// An upstream whose client fails every call before any response (a
/// reset) and keeps the request body, as a client whose connection task
/// still writes it would, until the test ends.
fn keeps_the_body() -> (Upstream, Arc<Mutex<Vec<ReplayBody<BoxBody>>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let keep = kept.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        keep.lock().unwrap().push(req.into_body());
        async {
            Err::<Response<Proxied<BoxBody>>, BoxError>(
                io::Error::from(io::ErrorKind::ConnectionReset).into(),
            )
        }
    });
    (BoxCloneService::new(svc), kept)
}

fn put() -> Request<BoxBody> {
    let frames = [Bytes::from("part one, "), Bytes::from("part two")]
        .into_iter()
        .map(|c| Ok::<_, BoxError>(Frame::data(c)));
    Request::put("http://emoji/doc")
        .body(boxed(StreamBody::new(futures_util::stream::iter(frames))))
        .unwrap()
}

fn budget() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
    ))
}

fn policy() -> RetryPolicy {
    RetryPolicy::default().with_backoff(Backoff::none())
}

fn count(registry: &Registry, metric: &str) -> u64 {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    let series = format!("{metric}{{service=\"svc\",route=\"route\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.parse().unwrap())
}

fn timeouts() -> Timeouts {
    Timeouts {
        request: Some(Duration::from_millis(100)),
        ..Timeouts::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_counts_a_deadline_that_passed_while_the_body_was_held() {
    let (upstream, _kept) = keeps_the_body();
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let svc = ServiceBuilder::new()
        .layer(
            RouteStackLayer::new(policy(), timeouts(), budget())
                .with_metrics(metrics.route("svc", "route")),
        )
        .service(upstream);
    let res = svc.oneshot(put()).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(count(&registry, "retry_deadline_exceeded_total"), 1);
    assert_eq!(count(&registry, "retry_requests_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn the_layers_count_a_deadline_that_passed_while_the_body_was_held() {
    let (upstream, _kept) = keeps_the_body();
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let svc = ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(timeouts()))
        .layer(RetryLayer::new(policy(), budget()).with_metrics(metrics.route("svc", "route")))
        .service(upstream);
    let res = svc.oneshot(put()).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(count(&registry, "retry_deadline_exceeded_total"), 1);
    assert_eq!(count(&registry, "retry_requests_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_while_the_body_is_held_is_counted_nowhere() {
    let (upstream, _kept) = keeps_the_body();
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy(), budget()).with_metrics(metrics.route("svc", "route")))
        .service(upstream);
    let left = tokio::time::timeout(Duration::from_millis(100), svc.oneshot(put())).await;
    assert!(left.is_err(), "the caller left first");
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.ends_with(" 0")),
        "{text}"
    );
}
