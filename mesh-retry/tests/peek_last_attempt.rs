//! A retried gRPC call whose last attempt fails with an ordinary head and,
//! at once, trailers carrying a retried code has run out of attempts: with
//! a layer or a route stack that
//! [peeks](mesh_retry::RetryLayer::peek_grpc_trailers), it counts in
//! `retry_limit_exceeded_total`, as the same failure sent trailers-only
//! does, and not in `retry_successes_total`, which would say the retries
//! ended in a success while the caller got the failure. linkerd2-proxy's
//! retries read every attempt's first frame, the last one's too, and count
//! such a call as over its limit. Real HTTP/2 over sockets on 127.0.0.1.

use std::time::Duration;

use mesh_retry::{RetryLayer, RetryMetrics, RouteStackLayer, Timeouts};
use prometheus_client::registry::Registry;
use tower::{Layer, ServiceExt};

use crate::support;

use support::grpc_upstream::{
    Answer, Upstream, call, counter, grpc_route, read, unlimited, upstream,
};

/// Every attempt: a head, then trailers with `UNAVAILABLE`.
static UNAVAILABLE: [Answer; 1] = [Answer::Trailers("14")];

/// Every attempt but the last fails so; the last one carries a message.
static RECOVERED: [Answer; 3] = [
    Answer::Trailers("14"),
    Answer::Trailers("14"),
    Answer::DataThenTrailers("0"),
];

fn metrics() -> (RetryMetrics, Registry) {
    let mut registry = Registry::default();
    (RetryMetrics::register(&mut registry), registry)
}

fn timeouts() -> Timeouts {
    Timeouts {
        request: Some(Duration::from_secs(30)),
        per_try: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    }
}

/// Checks that a call whose three attempts all ended in `UNAVAILABLE` in
/// trailers got the last answer unchanged and was counted as the limit.
async fn counted_as_the_limit<B>(res: http::Response<B>, upstream: &Upstream, registry: &Registry)
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Debug,
{
    let (data, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 3, "the default three attempts");
    assert!(data.is_empty());
    assert_eq!(
        trailers.unwrap()["grpc-status"],
        "14",
        "handed on unchanged"
    );
    assert_eq!(counter(registry, "retry_requests"), 2);
    assert_eq!(counter(registry, "retry_limit_exceeded"), 1);
    assert_eq!(counter(registry, "retry_successes"), 0);
}

#[tokio::test]
async fn the_retry_layer_counts_the_last_attempts_trailers_as_the_limit() {
    let upstream = upstream(&UNAVAILABLE, true).await;
    let (metrics, registry) = metrics();
    let svc = RetryLayer::new(grpc_route(), unlimited())
        .with_metrics(metrics.route("svc", "route"))
        .peek_grpc_trailers(None)
        .layer(support::client());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    counted_as_the_limit(res, &upstream, &registry).await;
}

#[tokio::test]
async fn the_route_stack_counts_the_last_attempts_trailers_as_the_limit() {
    let upstream = upstream(&UNAVAILABLE, true).await;
    let (metrics, registry) = metrics();
    let svc = RouteStackLayer::new(grpc_route(), timeouts(), unlimited())
        .with_metrics(metrics.route("svc", "route"))
        .peek_grpc_trailers()
        .layer(support::client());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    counted_as_the_limit(res, &upstream, &registry).await;
}

#[tokio::test]
async fn a_last_attempt_that_succeeds_still_counts_as_a_success() {
    let upstream = upstream(&RECOVERED, true).await;
    let (metrics, registry) = metrics();
    let svc = RouteStackLayer::new(grpc_route(), timeouts(), unlimited())
        .with_metrics(metrics.route("svc", "route"))
        .peek_grpc_trailers()
        .layer(support::client());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    let (data, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 3);
    assert_eq!(data, support::grpc_upstream::MESSAGE, "the message, first");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    assert_eq!(counter(&registry, "retry_limit_exceeded"), 0);
    assert_eq!(counter(&registry, "retry_successes"), 1);
}
