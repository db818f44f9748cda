//! Request bodies at the edges of the replay buffer, through the route
//! stack over real sockets and both HTTP versions: a body of exactly the
//! cap is replayed, one byte more is committed and sent once, and an
//! empty body that ends with trailers is replayed with them. And each
//! retry counter counts once per event: retries once per retry sent, the
//! rest once per request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::StreamBody;
use mesh_core::{
    BoxError,
    body::{BoxBody, boxed},
};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryMetrics, RetryPolicy, RouteStackLayer, Timeouts,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::ServiceBuilder;

use crate::support::{Seen, client, recording, send};

const CAP: usize = 1024;

struct Route {
    svc: tower::util::BoxCloneService<
        Request<BoxBody>,
        http::Response<
            mesh_retry::timeout::TimeoutBody<mesh_core::body::Proxied<hyper::body::Incoming>>,
        >,
        BoxError,
    >,
    registry: Registry,
}

impl Route {
    fn new(policy: RetryPolicy) -> Self {
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        let budget = Arc::new(Budget::new(
            BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
        ));
        let policy = policy
            .with_backoff(Backoff::none())
            .with_max_replay_bytes(CAP);
        let layer = RouteStackLayer::new(policy, Timeouts::default(), budget)
            .with_metrics(metrics.route("svc", "route"));
        let svc = ServiceBuilder::new().layer(layer).service(client());
        Self {
            svc: tower::util::BoxCloneService::new(svc),
            registry,
        }
    }

    /// The value of `metric` for the route, 0 if absent.
    fn count(&self, metric: &str) -> u64 {
        self.series(&format!("{metric}{{service=\"svc\",route=\"route\"}}"))
    }

    /// The route's `retry_not_retryable_total` for `reason`.
    fn not_retryable(&self, reason: &str) -> u64 {
        self.series(&format!(
            "retry_not_retryable_total{{service=\"svc\",route=\"route\",reason=\"{reason}\"}}"
        ))
    }

    fn series(&self, series: &str) -> u64 {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |v| v.parse().unwrap())
    }
}

fn fail_first(index: usize, _: &Seen) -> StatusCode {
    if index == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

fn payload(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
}

/// `body` in two chunks, then `trailers`, with no length known up front.
fn streamed(body: &Bytes, trailers: Option<HeaderMap>) -> BoxBody {
    let (a, b) = body.split_at(body.len() / 2);
    let frames = [Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(Frame::data)
        .chain(trailers.map(Frame::trailers))
        .map(Ok::<_, BoxError>);
    boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

async fn body_of(len: usize, version: Version) -> (Route, Vec<Seen>, StatusCode) {
    let upstream = recording(fail_first).await;
    let route = Route::new(RetryPolicy::default());
    let body = payload(len);
    let req = Request::put(upstream.uri("/doc"))
        .version(version)
        .body(streamed(&body, None))
        .unwrap();
    let (status, _, _) = send(&route.svc, req).await;
    let seen = upstream.seen();
    for attempt in &seen {
        assert_eq!(
            attempt.body, body,
            "{version:?}: every attempt sent it whole"
        );
    }
    (route, seen, status)
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_replayed() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let (route, seen, status) = body_of(CAP, version).await;
        assert_eq!(status, StatusCode::OK, "{version:?}");
        assert_eq!(seen.len(), 2, "{version:?}");
        assert_eq!(route.count("retry_requests_total"), 1);
        assert_eq!(route.count("retry_successes_total"), 1);
    }
}

#[tokio::test]
async fn one_byte_over_the_cap_is_committed_and_sent_once() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let (route, seen, status) = body_of(CAP + 1, version).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{version:?}");
        assert_eq!(seen.len(), 1, "{version:?}");
        assert_eq!(route.count("retry_requests_total"), 0);
        assert_eq!(route.not_retryable("committed"), 1);
    }
}

#[tokio::test]
async fn an_empty_body_that_ends_with_trailers_is_replayed_with_them() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let upstream = recording(fail_first).await;
        let route = Route::new(RetryPolicy::default());
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "0".parse().unwrap());
        let req = Request::put(upstream.uri("/doc"))
            .version(version)
            // HTTP/1.1 sends trailers only where the head announces them.
            .header("trailer", "x-checksum")
            .body(streamed(&Bytes::new(), Some(trailers.clone())))
            .unwrap();
        let (status, _, _) = send(&route.svc, req).await;
        assert_eq!(status, StatusCode::OK, "{version:?}");
        let seen = upstream.seen();
        assert_eq!(seen.len(), 2, "{version:?}");
        for attempt in &seen {
            assert_eq!(attempt.body, "", "{version:?}");
            assert_eq!(attempt.trailers.as_ref(), Some(&trailers), "{version:?}");
        }
    }
}

#[tokio::test]
async fn each_counter_counts_once_per_event() {
    // Three attempts, every one answered 503: two retries sent, and one
    // request that ran out of attempts.
    let upstream = recording(|_, _| StatusCode::SERVICE_UNAVAILABLE).await;
    let route = Route::new(RetryPolicy::default());
    let req = Request::get(upstream.uri("/doc"))
        .body(mesh_core::body::empty())
        .unwrap();
    let (status, _, _) = send(&route.svc, req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.seen().len(), 3);
    assert_eq!(route.count("retry_requests_total"), 2);
    assert_eq!(route.count("retry_limit_exceeded_total"), 1);
    assert_eq!(route.count("retry_successes_total"), 0);
    assert_eq!(route.count("retry_budget_exhausted_total"), 0);
    assert_eq!(route.count("retry_deadline_exceeded_total"), 0);
}
