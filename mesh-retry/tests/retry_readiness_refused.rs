//! A retry decided on and then refused by the service's readiness (its
//! `poll_ready` fails, as a balancer's does with no endpoints left): the
//! retry layer and the route stack, in both of their modes, give the
//! caller the failed response, head, body and trailers as the upstream
//! sent them, and count the refusal once as
//! `retry_not_retryable_total{reason="unavailable"}`, which a route's
//! observer is told of. A service that only takes a while to get ready
//! still gets the retry. Real HTTP over sockets on 127.0.0.1.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::{
    BoxError,
    body::{BoxBody, empty},
};
use mesh_retry::{
    Budget, RetryLayer, RetryMetrics, RetryPolicy, RouteStackLayer, Timeouts,
    metrics::{NotRetryable, RetryEvent, RetryObserver},
    replay::ReplayBody,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::time::{Instant, Sleep, sleep_until};
use tower::{Layer, Service, ServiceExt};

use crate::support::{self, Upstreams, grpc_upstream};

/// What the service does after it sent the first attempt.
#[derive(Clone, Copy)]
enum Then {
    /// Fails to get ready: its endpoints are gone.
    Fails,
    /// Gets ready again this long after the test began.
    ReadyAfter(Duration),
}

/// mesh-core's client behind a balancer that, once it has sent the first
/// attempt, does as `then` says. Clones share what they have sent.
struct Endpoints {
    client: Upstreams,
    then: Then,
    start: Instant,
    sent: Arc<AtomicUsize>,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Endpoints {
    fn new(then: Then) -> Self {
        Self {
            client: support::client(),
            then,
            start: Instant::now(),
            sent: Arc::default(),
            wait: None,
        }
    }
}

impl Clone for Endpoints {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            then: self.then,
            start: self.start,
            sent: self.sent.clone(),
            wait: None,
        }
    }
}

impl Service<Request<ReplayBody<BoxBody>>> for Endpoints {
    type Response = <Upstreams as Service<Request<ReplayBody<BoxBody>>>>::Response;
    type Error = BoxError;
    type Future = <Upstreams as Service<Request<ReplayBody<BoxBody>>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.sent.load(Ordering::SeqCst) > 0 {
            match self.then {
                Then::Fails => {
                    return Poll::Ready(Err(io::Error::other("no endpoints").into()));
                }
                Then::ReadyAfter(after) => {
                    let at = self.start + after;
                    let wait = self.wait.get_or_insert_with(|| Box::pin(sleep_until(at)));
                    ready!(wait.as_mut().poll(cx));
                }
            }
        }
        self.client.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReplayBody<BoxBody>>) -> Self::Future {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.client.call(req)
    }
}

/// An upstream that answers its first request with a 503 that has a
/// header and a body, and any later one with a 200.
async fn draining() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let addr = support::serve(move |req| {
        let seen = seen.clone();
        Box::pin(async move {
            let _ = support::read(req).await;
            let res = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Response::builder()
                    .status(503)
                    .header("x-shard", "7")
                    .body(Full::new(Bytes::from("shard 7 is draining")))
            } else {
                Response::builder().body(Full::new(Bytes::from("fresh")))
            };
            res.unwrap()
        })
    })
    .await;
    (format!("http://{addr}/items"), calls)
}

/// Every event a route's observer is told of.
#[derive(Debug, Default)]
struct Events(Mutex<Vec<RetryEvent>>);

impl RetryObserver for Events {
    fn observe(&self, event: RetryEvent, _: bool) {
        self.0.lock().unwrap().push(event);
    }
}

/// A route's metrics, with an observer, and what they count.
struct Counted {
    metrics: mesh_retry::metrics::RouteRetryMetrics,
    registry: Registry,
    events: Arc<Events>,
}

impl Counted {
    fn new() -> Self {
        let mut registry = Registry::default();
        let events = Arc::new(Events::default());
        let metrics = RetryMetrics::register(&mut registry)
            .route("svc", "route")
            .with_observer(events.clone());
        Self {
            metrics,
            registry,
            events,
        }
    }

    /// The route's series of `name` (with its labels after the route's).
    fn count(&self, name: &str, labels: &str) -> u64 {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        let prefix = format!("{name}_total{{service=\"svc\",route=\"route\"{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.parse().unwrap())
    }

    fn unavailable(&self) -> u64 {
        self.count("retry_not_retryable", ",reason=\"unavailable\"")
    }

    /// Asserts that the one retry decided on was refused and counted so,
    /// and nothing else.
    fn assert_refused(&self) {
        assert_eq!(self.unavailable(), 1, "the refused retry is counted");
        assert_eq!(self.count("retry_requests", ""), 0, "no retry was sent");
        for other in [
            "retry_limit_exceeded",
            "retry_budget_exhausted",
            "retry_deadline_exceeded",
        ] {
            assert_eq!(self.count(other, ""), 0, "{other}");
        }
        assert_eq!(
            *self.events.0.lock().unwrap(),
            [RetryEvent::NotRetryable(NotRetryable::Unavailable)],
            "the observer is told"
        );
    }
}

fn budget() -> Arc<Budget> {
    Arc::new(Budget::default())
}

/// Sends a GET to `uri` through `svc`: the status, the `x-shard` header
/// and the whole body.
async fn get<S, RB>(svc: S, uri: &str) -> (StatusCode, Option<String>, Bytes)
where
    S: Service<Request<BoxBody>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    let req = Request::get(uri).body(empty()).unwrap();
    let res = svc
        .oneshot(req)
        .await
        .expect("the upstream's answer, not the readiness error");
    let (parts, body) = res.into_parts();
    let shard = parts
        .headers
        .get("x-shard")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, shard, body)
}

/// Asserts that the caller got the upstream's 503, whole, and that the
/// upstream was sent one request.
fn assert_the_503(got: (StatusCode, Option<String>, Bytes), calls: &AtomicUsize) {
    let (status, shard, body) = got;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shard.as_deref(), Some("7"));
    assert_eq!(body, "shard 7 is draining", "the body comes whole");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry was sent");
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_answers_with_the_503_and_counts_the_refused_retry() {
    let (uri, calls) = draining().await;
    let counted = Counted::new();
    let budget = budget();
    let before = budget.balance();
    let svc = RetryLayer::new(RetryPolicy::default(), budget.clone())
        .with_metrics(counted.metrics.clone())
        .layer(Endpoints::new(Then::Fails));
    assert_the_503(get(svc, &uri).await, &calls);
    counted.assert_refused();
    assert!(budget.balance() >= before, "the retry was given back");
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_answers_with_the_503_and_counts_the_refused_retry() {
    let (uri, calls) = draining().await;
    let counted = Counted::new();
    let budget = budget();
    let before = budget.balance();
    let svc = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), budget.clone())
        .with_metrics(counted.metrics.clone())
        .layer(Endpoints::new(Then::Fails));
    assert_the_503(get(svc, &uri).await, &calls);
    counted.assert_refused();
    assert!(budget.balance() >= before, "the retry was given back");
}

#[tokio::test(start_paused = true)]
async fn so_does_a_route_stack_with_a_deadline() {
    // The failed response is held through the backoff for the deadline's
    // sake too; the readiness error ends the wait first.
    let (uri, calls) = draining().await;
    let counted = Counted::new();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(10)),
        per_try: Some(Duration::from_secs(2)),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(RetryPolicy::default(), timeouts, budget())
        .with_metrics(counted.metrics.clone())
        .layer(Endpoints::new(Then::Fails));
    assert_the_503(get(svc, &uri).await, &calls);
    counted.assert_refused();
}

#[tokio::test(start_paused = true)]
async fn a_peeking_route_stack_answers_with_the_503_and_counts_the_refused_retry() {
    let (uri, calls) = draining().await;
    let counted = Counted::new();
    let svc = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), budget())
        .with_metrics(counted.metrics.clone())
        .peek_grpc_trailers()
        .layer(Endpoints::new(Then::Fails));
    assert_the_503(get(svc, &uri).await, &calls);
    counted.assert_refused();
}

/// A gRPC call failed in trailers after an ordinary head, read for them,
/// and then refused its retry: the caller gets the head and the trailers
/// that were read.
#[tokio::test]
async fn a_grpc_call_whose_trailers_were_read_gets_them() {
    static UNAVAILABLE: [grpc_upstream::Answer; 1] = [grpc_upstream::Answer::Trailers("14")];
    let upstream = grpc_upstream::upstream(&UNAVAILABLE, true).await;
    let counted = Counted::new();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(30)),
        per_try: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(grpc_upstream::grpc_route(), timeouts, budget())
        .with_metrics(counted.metrics.clone())
        .peek_grpc_trailers()
        .layer(Endpoints::new(Then::Fails));
    let res = svc
        .oneshot(grpc_upstream::call(&upstream, true))
        .await
        .expect("the upstream's answer, not the readiness error");
    assert_eq!(res.status(), StatusCode::OK);
    let (data, trailers) = grpc_upstream::read(res).await;
    assert!(data.is_empty());
    let trailers = trailers.expect("the trailers read for the decision");
    assert_eq!(trailers["grpc-status"], "14");
    assert_eq!(trailers["x-t"], "1");
    assert_eq!(upstream.calls(), 1);
    counted.assert_refused();
}

#[tokio::test(start_paused = true)]
async fn a_route_stack_whose_service_gets_ready_again_still_retries() {
    let (uri, calls) = draining().await;
    let counted = Counted::new();
    let svc = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), budget())
        .with_metrics(counted.metrics.clone())
        .layer(Endpoints::new(Then::ReadyAfter(Duration::from_secs(1))));
    let (status, _, body) = get(svc, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "fresh");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the retry was sent");
    assert_eq!(counted.count("retry_requests", ""), 1);
    assert_eq!(counted.count("retry_successes", ""), 1);
    assert_eq!(counted.unavailable(), 0);
}

#[tokio::test(start_paused = true)]
async fn so_does_the_retry_layer() {
    let (uri, calls) = draining().await;
    let counted = Counted::new();
    let svc = RetryLayer::new(RetryPolicy::default(), budget())
        .with_metrics(counted.metrics.clone())
        .layer(Endpoints::new(Then::ReadyAfter(Duration::from_secs(1))));
    let (status, _, body) = get(svc, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "fresh");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the retry was sent");
    assert_eq!(counted.count("retry_requests", ""), 1);
    assert_eq!(counted.unavailable(), 0);
}
