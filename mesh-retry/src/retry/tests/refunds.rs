//! A retry that is decided (its withdrawal made) but never sent goes back
//! to the budget; it is not counted as sent, and what stopped it is
//! counted once. The retry layer and the route stack agree.

use std::{
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll, ready},
};

use tokio::time::{Sleep, sleep_until};
use tower::Layer;

use super::*;
use crate::{RequestTimeoutLayer, RouteStackLayer, Timeouts};

/// 20 % of requests, plus a reserve of 10 retries.
fn budget() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(0.2, 1, Duration::from_secs(10)).unwrap(),
    ))
}

/// The balance after one request: its deposit, and no retry taken.
const ONE_REQUEST: f64 = 10.2;

/// An upstream whose first attempt fails at once asking for a one-second
/// wait (`Retry-After: 1`), and whose later ones succeed.
fn busy_then_ok() -> (Upstream, Arc<Mutex<Vec<Seen>>>) {
    upstream(|i| {
        if i > 0 {
            return status(200);
        }
        let mut res = status(503)?;
        res.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        Ok(res)
    })
}

/// Waits out `Retry-After` up to two seconds.
fn policy() -> RetryPolicy {
    let backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(2)).unwrap();
    RetryPolicy::default().with_backoff(backoff)
}

impl Harness {
    fn route_stack(&self, policy: RetryPolicy, timeouts: Timeouts) -> RouteStackLayer {
        RouteStackLayer::new(policy, timeouts, budget())
            .with_metrics(self.metrics.route("svc", "route"))
    }

    /// The balance the `retry_budget_balance` gauge reports.
    fn gauge(&self) -> f64 {
        let text = self.text();
        let line = text
            .lines()
            .find(|l| l.starts_with("retry_budget_balance{service=\"svc\"}"))
            .expect("the budget is observed");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Asserts that no retry was sent, that `stopped` (if any) counted it
    /// once, and that the budget holds one request's deposit and nothing
    /// taken, as the gauge reports it too.
    fn assert_given_back(&self, budget: &Budget, stopped: Option<&str>) {
        assert_eq!(self.count("retry_requests_total"), 0, "no retry was sent");
        for metric in [
            "retry_deadline_exceeded_total",
            "retry_budget_exhausted_total",
            "retry_limit_exceeded_total",
        ] {
            let want = u64::from(stopped == Some(metric));
            assert_eq!(self.count(metric), want, "{metric}");
        }
        assert_eq!(budget.balance(), ONE_REQUEST, "the retry was given back");
        assert_eq!(self.gauge(), ONE_REQUEST);
    }
}

/// A request that, from 0.3 ms, has until 1000.5 ms: a one-second backoff
/// fits when it is decided, but its timer, which fires on a whole
/// millisecond, ends at 1001 ms.
async fn late_request() -> Request<BoxBody> {
    tokio::time::advance(Duration::from_micros(300)).await;
    let mut req = get("/");
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_micros(1_000_200)));
    req
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_backoff_ends_past_the_deadline_is_given_back() {
    let (upstream, seen) = busy_then_ok();
    let h = Harness::new();
    let budget = budget();
    let svc = h.layer(policy(), budget.clone()).layer(upstream);
    let res = svc.oneshot(late_request().await).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    h.assert_given_back(&budget, Some("retry_deadline_exceeded_total"));
}

#[tokio::test(start_paused = true)]
async fn under_a_request_timeout_whose_deadline_ends_with_the_backoff_it_is_counted_once() {
    // Both timers fire at 1001 ms: the retry layer gives the retry up and
    // answers first; the request timeout hands that answer on and drops a
    // future with nothing left to give back or count.
    let (upstream, seen) = busy_then_ok();
    let h = Harness::new();
    let budget = budget();
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(Timeouts::default()))
        .layer(h.layer(policy(), budget.clone()))
        .service(upstream);
    let res = svc.oneshot(late_request().await).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    h.assert_given_back(&budget, Some("retry_deadline_exceeded_total"));
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_gives_back_and_counts_a_retry_its_backoff_ended_too_late_for() {
    let (upstream, seen) = busy_then_ok();
    let h = Harness::new();
    let layer = h.route_stack(policy(), Timeouts::default());
    let budget = layer.budget().clone();
    let res = layer
        .layer(upstream)
        .oneshot(late_request().await)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(seen.lock().unwrap().len(), 1);
    h.assert_given_back(&budget, Some("retry_deadline_exceeded_total"));
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_caller_leaves_during_the_backoff_is_given_back() {
    let (upstream, seen) = busy_then_ok();
    let h = Harness::new();
    let budget = budget();
    let svc = h.layer(policy(), budget.clone()).layer(upstream);
    let call = svc.oneshot(get("/"));
    let gone = tokio::time::timeout(Duration::from_millis(500), call).await;
    assert!(gone.is_err(), "the caller left during the backoff");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    h.assert_given_back(&budget, None);
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_gives_back_a_retry_whose_caller_leaves_during_the_backoff() {
    let (upstream, seen) = busy_then_ok();
    let h = Harness::new();
    let layer = h.route_stack(policy(), Timeouts::default());
    let budget = layer.budget().clone();
    let call = layer.layer(upstream).oneshot(get("/"));
    let gone = tokio::time::timeout(Duration::from_millis(500), call).await;
    assert!(gone.is_err(), "the caller left during the backoff");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    h.assert_given_back(&budget, None);
}

/// An upstream that answers 503 at once, and after its first call is
/// ready again only at `ready_at`, or, without one, fails to get ready.
#[derive(Clone)]
struct Unready {
    calls: Arc<AtomicUsize>,
    ready_at: Option<Instant>,
    wait: Option<Arc<Mutex<Pin<Box<Sleep>>>>>,
}

impl Unready {
    fn new(ready_at: Option<Instant>) -> Self {
        Self {
            calls: Arc::default(),
            ready_at,
            wait: None,
        }
    }
}

impl Service<Request<ReplayBody<BoxBody>>> for Unready {
    type Response = Response<BoxBody>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response<BoxBody>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.calls.load(Ordering::Relaxed) == 0 {
            return Poll::Ready(Ok(()));
        }
        let Some(at) = self.ready_at else {
            return Poll::Ready(Err(io::Error::other("connection pool closed").into()));
        };
        let wait = self
            .wait
            .get_or_insert_with(|| Arc::new(Mutex::new(Box::pin(sleep_until(at)))));
        ready!(wait.lock().unwrap().as_mut().poll(cx));
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<ReplayBody<BoxBody>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(status(503))
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_the_request_timeout_cuts_off_while_the_service_is_not_ready_is_given_back() {
    // The deadline passes at 1 s, while the retry waits for a service that
    // is ready at 2 s: the request timeout outside answers, and drops the
    // retry layer's future with its retry.
    let start = Instant::now();
    let upstream = Unready::new(Some(start + Duration::from_secs(2)));
    let calls = upstream.calls.clone();
    let h = Harness::new();
    let budget = budget();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(1)),
        ..Timeouts::default()
    };
    let svc = tower::ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(timeouts))
        .layer(h.layer(policy().with_backoff(Backoff::none()), budget.clone()))
        .service(upstream);
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    h.assert_given_back(&budget, Some("retry_deadline_exceeded_total"));
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_gives_back_a_retry_the_deadline_passes_while_the_service_is_not_ready() {
    let start = Instant::now();
    let upstream = Unready::new(Some(start + Duration::from_secs(2)));
    let calls = upstream.calls.clone();
    let h = Harness::new();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(1)),
        ..Timeouts::default()
    };
    let layer = h.route_stack(policy().with_backoff(Backoff::none()), timeouts);
    let budget = layer.budget().clone();
    let res = layer.layer(upstream).oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    h.assert_given_back(&budget, Some("retry_deadline_exceeded_total"));
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_service_fails_to_get_ready_is_given_back() {
    let h = Harness::new();
    let budget = budget();
    let policy = policy().with_backoff(Backoff::none());
    let svc = h.layer(policy, budget.clone()).layer(Unready::new(None));
    // The caller gets the response the retry was to replace, not the
    // service's error.
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    h.assert_given_back(&budget, None);
    assert_eq!(h.not_retryable("unavailable"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_gives_back_a_retry_whose_service_fails_to_get_ready() {
    let h = Harness::new();
    let layer = h.route_stack(policy().with_backoff(Backoff::none()), Timeouts::default());
    let budget = layer.budget().clone();
    let res = layer
        .layer(Unready::new(None))
        .oneshot(get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    h.assert_given_back(&budget, None);
    assert_eq!(h.not_retryable("unavailable"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_head_cannot_be_rebuilt_is_given_back() {
    let h = Harness::new();
    let budget = budget();
    budget.deposit();
    let shared = Arc::new(Shared {
        policy: policy(),
        budget: budget.clone(),
        metrics: Metrics::Route(h.metrics.route("svc", "route")),
    });
    h.metrics.observe_budget("svc", &budget);
    let (svc, _) = upstream(|_| status(200));
    let (_, replay) = ReplayBody::try_new(mesh_core::body::empty(), 1024).unwrap();
    let head = attempts::Head::unparsable();
    let mut retry = attempts::Attempts::retryable(shared, svc, head, replay, false, false, None);
    let decision = retry.decide(&status(503));
    assert!(matches!(decision, attempts::Decision::Return));
    h.assert_given_back(&budget, None);
}
