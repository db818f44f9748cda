//! A retry decided on and then refused by the service's readiness (its
//! `poll_ready` fails, as a balancer's does with no endpoints left): the
//! retry layer and the route stack, in both of their modes, give the
//! caller the failed response, head, body and trailers as the upstream
//! sent them, and count the refusal once as
//! `retry_not_retryable_total{reason="unavailable"}`, which a route's
//! observer is told of. A service that only takes a while to get ready
//! still gets the retry. Real HTTP over sockets on 127.0.0.1.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::body::{BoxBody, empty};
use mesh_retry::{
    Budget, RetryPolicy, RouteStackLayer, Timeouts,
    metrics::{NotRetryable, RetryEvent},
};
use tower::{Layer, Service, ServiceExt};

use crate::support::{
    self, Upstream, grpc_upstream,
    retrying::{Counted, Endpoints, Layered},
};

/// An upstream that answers its first request with a 503 that has a
/// header and a body, and any later one with a 200.
async fn draining() -> (String, Upstream) {
    let upstream = support::answering(|index, _| {
        let res = if index == 0 {
            Response::builder()
                .status(503)
                .header("x-shard", "7")
                .body(Full::new(Bytes::from("shard 7 is draining")))
        } else {
            Response::builder().body(Full::new(Bytes::from("fresh")))
        };
        res.unwrap()
    })
    .await;
    (upstream.uri("/items"), upstream)
}

fn unavailable(counted: &Counted) -> u64 {
    counted.count("retry_not_retryable", ",reason=\"unavailable\"")
}

/// Asserts that the one retry decided on was refused and counted so, and
/// nothing else.
fn assert_refused(counted: &Counted) {
    assert_eq!(unavailable(counted), 1, "the refused retry is counted");
    assert_eq!(counted.count("retry_requests", ""), 0, "no retry was sent");
    for other in [
        "retry_limit_exceeded",
        "retry_budget_exhausted",
        "retry_deadline_exceeded",
    ] {
        assert_eq!(counted.count(other, ""), 0, "{other}");
    }
    assert_eq!(
        counted.events(),
        [RetryEvent::NotRetryable(NotRetryable::Unavailable)],
        "the observer is told"
    );
}

fn budget() -> Arc<Budget> {
    Arc::new(Budget::default())
}

/// A GET to `uri`.
fn get(uri: &str) -> Request<BoxBody> {
    Request::get(uri).body(empty()).unwrap()
}

/// The status, the `x-shard` header and the whole body of what `svc`
/// answers `req` with.
async fn send<S, RB>(svc: S, req: Request<BoxBody>) -> (StatusCode, Option<String>, Bytes)
where
    S: Service<Request<BoxBody>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    let res = svc
        .oneshot(req)
        .await
        .expect("the upstream's answer, not the readiness error");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    read(Response::from_parts(parts, body))
}

/// Sends a GET to `uri` through `layered` with the default policy, over
/// `endpoints`, counted in `counted`: as [`send`] does.
async fn send_through(
    layered: Layered,
    budget: Arc<Budget>,
    counted: &Counted,
    endpoints: Endpoints,
    uri: &str,
) -> (StatusCode, Option<String>, Bytes) {
    let metrics = Some(counted.metrics.clone());
    let res = layered
        .send(RetryPolicy::default(), budget, metrics, endpoints, get(uri))
        .await
        .expect("the upstream's answer, not the readiness error");
    read(res)
}

fn read(res: Response<Bytes>) -> (StatusCode, Option<String>, Bytes) {
    let (parts, body) = res.into_parts();
    let shard = parts
        .headers
        .get("x-shard")
        .map(|v| v.to_str().unwrap().to_owned());
    (parts.status, shard, body)
}

/// Asserts that the caller got the upstream's 503, whole, and that the
/// upstream was sent one request.
fn assert_the_503(got: (StatusCode, Option<String>, Bytes), upstream: &Upstream) {
    let (status, shard, body) = got;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shard.as_deref(), Some("7"));
    assert_eq!(body, "shard 7 is draining", "the body comes whole");
    assert_eq!(upstream.seen().len(), 1, "no retry was sent");
}

/// Sends a GET through `layered` over a balancer whose endpoints are gone
/// once it has sent the first attempt, and asserts that the caller got the
/// 503, the refused retry counted and given back.
async fn assert_refused_through(layered: Layered) {
    let (uri, upstream) = draining().await;
    let counted = Counted::observed();
    let budget = budget();
    let before = budget.balance();
    let got = send_through(layered, budget.clone(), &counted, Endpoints::gone(), &uri).await;
    assert_the_503(got, &upstream);
    assert_refused(&counted);
    assert!(budget.balance() >= before, "the retry was given back");
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_answers_with_the_503_and_counts_the_refused_retry() {
    assert_refused_through(Layered::Retry).await;
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_answers_with_the_503_and_counts_the_refused_retry() {
    assert_refused_through(Layered::Stack).await;
}

#[tokio::test(start_paused = true)]
async fn so_does_a_route_stack_with_a_deadline() {
    // The failed response is held through the backoff for the deadline's
    // sake too; the readiness error ends the wait first.
    let (uri, upstream) = draining().await;
    let counted = Counted::observed();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(10)),
        per_try: Some(Duration::from_secs(2)),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(RetryPolicy::default(), timeouts, budget())
        .with_metrics(counted.metrics.clone())
        .layer(Endpoints::gone());
    assert_the_503(send(svc, get(&uri)).await, &upstream);
    assert_refused(&counted);
}

#[tokio::test(start_paused = true)]
async fn a_peeking_route_stack_answers_with_the_503_and_counts_the_refused_retry() {
    let (uri, upstream) = draining().await;
    let counted = Counted::observed();
    let svc = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), budget())
        .with_metrics(counted.metrics.clone())
        .peek_grpc_trailers()
        .layer(Endpoints::gone());
    assert_the_503(send(svc, get(&uri)).await, &upstream);
    assert_refused(&counted);
}

/// A gRPC call failed in trailers after an ordinary head, read for them,
/// and then refused its retry: the caller gets the head and the trailers
/// that were read.
#[tokio::test]
async fn a_grpc_call_whose_trailers_were_read_gets_them() {
    static UNAVAILABLE: [grpc_upstream::Answer; 1] = [grpc_upstream::Answer::Trailers("14")];
    let upstream = grpc_upstream::upstream(&UNAVAILABLE, true).await;
    let counted = Counted::observed();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(30)),
        per_try: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(grpc_upstream::grpc_route(), timeouts, budget())
        .with_metrics(counted.metrics.clone())
        .peek_grpc_trailers()
        .layer(Endpoints::gone());
    let res = svc
        .oneshot(grpc_upstream::call(&upstream, true))
        .await
        .expect("the upstream's answer, not the readiness error");
    assert_eq!(res.status(), StatusCode::OK);
    grpc_upstream::assert_the_trailers_read(res, "14").await;
    assert_eq!(upstream.calls(), 1);
    assert_refused(&counted);
}

/// Sends a GET through `layered` over a balancer that gets ready again a
/// second after the first attempt, and asserts that the retry was sent
/// and answered; the route's counters, for more.
async fn assert_retried_through(layered: Layered) -> Counted {
    let (uri, upstream) = draining().await;
    let counted = Counted::observed();
    let endpoints = Endpoints::back_after(Duration::from_secs(1));
    let (status, _, body) = send_through(layered, budget(), &counted, endpoints, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "fresh");
    assert_eq!(upstream.seen().len(), 2, "the retry was sent");
    assert_eq!(counted.count("retry_requests", ""), 1);
    assert_eq!(unavailable(&counted), 0);
    counted
}

#[tokio::test(start_paused = true)]
async fn a_route_stack_whose_service_gets_ready_again_still_retries() {
    let counted = assert_retried_through(Layered::Stack).await;
    assert_eq!(counted.count("retry_successes", ""), 1);
}

#[tokio::test(start_paused = true)]
async fn so_does_the_retry_layer() {
    assert_retried_through(Layered::Retry).await;
}
