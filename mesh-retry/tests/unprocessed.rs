//! Requests their upstream did not process are sent again whatever their
//! method, over real HTTP/2 connections: mesh-core's `Forward` marks its
//! 502 for them, and the route stack (or `RetryLayer`) above it retries
//! that 502 for a POST too; a POST the upstream may have processed is sent
//! once.
//!
//! The policies here have no backoff, so no test waits on a timer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The same misbehaving upstreams as mesh-core's own tests of the mark.
use crate::unprocessed_support as unprocessed;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mesh_core::{
    BoxError,
    body::{BoxBody, boxed, full},
    client::{Client, ClientConfig},
    proxy::Forward,
};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryLayer, RetryMetrics, RetryPolicy, RouteStackLayer,
    Timeouts, replay::ReplayBody,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt};
use unprocessed::{First, Upstream, upstream};

type Proxy = Forward<Client<ReplayBody<BoxBody>>>;

/// A route to an upstream that fails the first request as `first` says:
/// the route stack under `policy` (without backoff) over a `Forward`.
struct Route {
    upstream: Upstream,
    forward: Proxy,
    registry: Registry,
    metrics: RetryMetrics,
    budget: Arc<Budget>,
}

impl Route {
    async fn new(first: First) -> Self {
        let upstream = upstream(first).await;
        let client = Client::new(&ClientConfig::default());
        let forward = Forward::new(client, [upstream.addr]).unwrap();
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        let budget = Arc::new(Budget::new(
            BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
        ));
        Self {
            upstream,
            forward,
            registry,
            metrics,
            budget,
        }
    }

    /// Sends `req` through the route stack under `policy`, and returns the
    /// status the caller gets, having read its body.
    async fn send(&self, policy: RetryPolicy, req: Request<BoxBody>) -> StatusCode {
        let stack = RouteStackLayer::new(
            policy.with_backoff(Backoff::none()),
            Timeouts::default(),
            self.budget.clone(),
        )
        .with_metrics(self.metrics.route("svc", "route"))
        .layer(self.forward.clone());
        let res = stack.oneshot(req).await.unwrap();
        let status = res.status();
        res.into_body().collect().await.unwrap();
        status
    }

    /// The same through a `RetryLayer` instead of the route stack.
    async fn send_through_retry_layer(&self, req: Request<BoxBody>) -> StatusCode {
        let policy = RetryPolicy::default().with_backoff(Backoff::none());
        let svc = RetryLayer::new(policy, self.budget.clone())
            .with_metrics(self.metrics.route("svc", "route"))
            .layer(self.forward.clone());
        let res = svc.oneshot(req).await.unwrap();
        let status = res.status();
        res.into_body().collect().await.unwrap();
        status
    }

    fn counter(&self, line: &str) -> u64 {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        let prefix = format!("{line} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.parse().unwrap())
    }

    fn retries(&self) -> u64 {
        self.counter("retry_requests_total{service=\"svc\",route=\"route\"}")
    }

    fn not_retryable(&self, reason: &str) -> u64 {
        self.counter(&format!(
            "retry_not_retryable_total{{service=\"svc\",route=\"route\",reason=\"{reason}\"}}"
        ))
    }
}

/// 10 KiB of bytes that differ from their neighbours.
fn payload() -> Bytes {
    (0..10 * 1024)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// A POST over HTTP/2 of `body`, streamed in chunks of 1,000 bytes with no
/// length, so that the replay records it as it goes.
fn order(body: &Bytes) -> Request<BoxBody> {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = body
        .chunks(1000)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = boxed(StreamBody::new(futures_util::stream::iter(frames)));
    Request::post("http://orders/orders")
        .version(Version::HTTP_2)
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_refused_post_is_sent_again_byte_for_byte() {
    let route = Route::new(First::Refused).await;
    let body = payload();
    let status = route.send(RetryPolicy::default(), order(&body)).await;
    assert_eq!(status, StatusCode::OK);
    let bodies = route.upstream.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], body);
    assert_eq!(bodies[1], body, "the retry sends the same bytes, once each");
    assert_eq!(route.retries(), 1);
    assert_eq!(route.not_retryable("non_idempotent"), 0);
}

/// The upstream refuses the stream on its headers, while the client is
/// still sending the body (its second chunk waits for the refusal): the
/// error can reach the retry before hyper's task that sends the body has
/// let go of it, and the retry then waits for it (the unit tests of
/// `retry::tests::limits` hold the body for certain). The retry replays
/// the first chunk and sends the rest.
#[tokio::test]
async fn a_post_refused_while_its_body_streams_is_sent_again_whole() {
    let route = Route::new(First::RefusedAtOnce).await;
    let refused = route.upstream.refused.clone();
    let body = boxed(StreamBody::new(futures_util::stream::unfold(
        0,
        move |step| {
            let refused = refused.clone();
            async move {
                match step {
                    0 => Some((Ok::<_, BoxError>(Frame::data(Bytes::from("one,"))), 1)),
                    1 => {
                        refused.notified().await;
                        Some((Ok(Frame::data(Bytes::from("two"))), 2))
                    }
                    _ => None,
                }
            }
        },
    )));
    let req = Request::post("http://orders/orders")
        .version(Version::HTTP_2)
        .body(body)
        .unwrap();
    let status = route.send(RetryPolicy::default(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        route.upstream.bodies(),
        [Bytes::new(), Bytes::from("one,two")]
    );
    assert_eq!(route.retries(), 1);
    assert_eq!(route.not_retryable("body_in_use"), 0);
}

#[tokio::test]
async fn a_post_above_a_graceful_goaways_last_stream_is_sent_again() {
    let route = Route::new(First::GoAway).await;
    let body = payload();
    let status = route.send(RetryPolicy::default(), order(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(route.upstream.bodies(), [body.clone(), body]);
    assert_eq!(route.retries(), 1);
}

#[tokio::test]
async fn a_post_the_upstream_may_have_processed_is_sent_once() {
    for first in [First::Reset, First::GoAwayAfter, First::Close] {
        let route = Route::new(first).await;
        let body = payload();
        let status = route.send(RetryPolicy::default(), order(&body)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{first:?}");
        assert_eq!(route.upstream.bodies(), [body], "{first:?}");
        assert_eq!(route.retries(), 0, "{first:?}");
        assert_eq!(route.not_retryable("non_idempotent"), 1, "{first:?}");
    }
}

#[tokio::test]
async fn a_refused_post_is_sent_once_with_the_option_off_or_no_retries() {
    let route = Route::new(First::Refused).await;
    let off = RetryPolicy::default().with_unprocessed(false);
    let status = route.send(off, order(&payload())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(route.upstream.bodies().len(), 1);
    assert_eq!(route.not_retryable("non_idempotent"), 1);

    let route = Route::new(First::Refused).await;
    let status = route.send(RetryPolicy::never(), order(&payload())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(route.upstream.bodies().len(), 1);
    assert_eq!(route.retries(), 0);
}

#[tokio::test]
async fn a_refused_post_too_large_to_replay_is_sent_once_and_says_why() {
    // Outgrown while it was sent: no length said so up front.
    let route = Route::new(First::Refused).await;
    let policy = RetryPolicy::default().with_max_replay_bytes(4 * 1024);
    let status = route.send(policy.clone(), order(&payload())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(route.upstream.bodies().len(), 1);
    assert_eq!(route.not_retryable("committed"), 1);

    // Its length over the cap, known up front.
    let route = Route::new(First::Refused).await;
    let whole = Request::post("http://orders/orders")
        .version(Version::HTTP_2)
        .body(full(payload()))
        .unwrap();
    let status = route.send(policy, whole).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(route.upstream.bodies().len(), 1);
    assert_eq!(route.not_retryable("body_too_large"), 1);
}

#[tokio::test]
async fn a_refused_grpc_call_is_sent_again() {
    let route = Route::new(First::Refused).await;
    let call = Request::post("http://orders/orders.Orders/Place")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(full(&b"\0\0\0\0\x01x"[..]))
        .unwrap();
    let status = route.send(RetryPolicy::default(), call).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(route.upstream.bodies(), [&b"\0\0\0\0\x01x"[..]; 2]);
}

#[tokio::test]
async fn the_retry_layer_sends_a_refused_post_again_too() {
    let route = Route::new(First::Refused).await;
    let body = payload();
    let status = route.send_through_retry_layer(order(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(route.upstream.bodies(), [body.clone(), body]);
    assert_eq!(route.retries(), 1);
}
