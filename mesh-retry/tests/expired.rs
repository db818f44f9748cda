//! A request whose deadline has already passed when it arrives is answered
//! at once and never sent: its caller has given up, and an upstream told
//! `mesh-deadline: 0` or `grpc-timeout: 0n` may not read the header at all
//! (gRPC's own timeout must be positive), so it would do the work for
//! nobody.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use mesh_core::{
    ProxyErrorKind,
    body::{BoxBody, Proxied, empty, full},
    error::MESH_ERROR,
};
use mesh_retry::{
    AttemptTimeoutLayer, Backoff, Budget, Deadline, RequestTimeoutLayer, RetryLayer, RetryPolicy,
    RouteStackLayer, Timeouts,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
    replay::ReplayBody,
};
use tokio::time::{Instant, Sleep, advance, sleep_until};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};

type Upstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>;

/// An upstream that answers 200 at once and counts the requests it got.
fn upstream() -> (Upstream, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let svc = service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(Proxied::from(full("done")))) }
    });
    (BoxCloneService::new(svc), calls)
}

fn timeouts() -> Timeouts {
    Timeouts {
        request: Some(Duration::from_secs(10)),
        per_try: Some(Duration::from_secs(2)),
        idle: None,
    }
}

/// Requests whose deadlines have passed, each with whether it is gRPC: the
/// caller's header says none is left, or an earlier layer's deadline is
/// behind us.
async fn expired_requests() -> Vec<(Request<BoxBody>, bool)> {
    let http = Request::get("/")
        .header(MESH_DEADLINE, "0")
        .body(empty())
        .unwrap();
    let grpc = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .header(GRPC_TIMEOUT, "0n")
        .body(empty())
        .unwrap();
    let mut passed = Request::get("/").body(empty()).unwrap();
    passed
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(5)));
    advance(Duration::from_millis(10)).await;
    vec![(http, false), (grpc, true), (passed, false)]
}

fn assert_timed_out(res: &Response<impl Sized>, grpc: bool) {
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::Timeout)
    );
    assert_eq!(res.headers()[MESH_ERROR], "request timed out");
    if grpc {
        assert_eq!(res.headers()["grpc-status"], "4");
    } else {
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_answers_a_request_past_its_deadline_without_sending_it() {
    let budget = Arc::new(Budget::default());
    let (upstream, calls) = upstream();
    let svc = RouteStackLayer::new(RetryPolicy::default(), timeouts(), budget).layer(upstream);
    for (req, grpc) in expired_requests().await {
        let start = Instant::now();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_timed_out(&res, grpc);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0, "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn the_layers_answer_a_request_past_its_deadline_without_sending_it() {
    let budget = Arc::new(Budget::default());
    let (upstream, calls) = upstream();
    let svc = ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(timeouts()))
        .layer(RetryLayer::new(RetryPolicy::default(), budget))
        .layer(AttemptTimeoutLayer::new(timeouts()))
        .service(upstream);
    for (req, grpc) in expired_requests().await {
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_timed_out(&res, grpc);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0, "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_alone_answers_a_request_past_its_deadline_without_sending_it() {
    // With no timeout layer around it, as an in-process caller may stack it:
    // it agrees with the route stack, whatever the method.
    let any_method = RetryPolicy::default().with_any_method(true);
    for (policy, post) in [
        (RetryPolicy::default(), false),
        (RetryPolicy::default(), true),
        (any_method, true),
    ] {
        let budget = Arc::new(Budget::default());
        let (upstream, calls) = upstream();
        let svc = RetryLayer::new(policy, budget.clone()).layer(upstream);
        for (mut req, grpc) in expired_requests().await {
            if post {
                *req.method_mut() = http::Method::POST;
            }
            let start = Instant::now();
            let res = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(start.elapsed(), Duration::ZERO);
            assert_timed_out(&res, grpc);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 0, "nothing was sent");
        assert_eq!(
            budget.balance(),
            100.0,
            "a request never sent deposits nothing, as in the route stack"
        );
    }
}

#[tokio::test]
async fn the_retry_layer_alone_sends_nothing_past_its_deadline_to_a_real_upstream() {
    let upstream = support::recording(|_, _| StatusCode::OK).await;
    let budget = Arc::new(Budget::default());
    let svc = RetryLayer::new(RetryPolicy::default(), budget).layer(support::client());
    let expired = [
        (MESH_DEADLINE, "0", "text/plain", false),
        (GRPC_TIMEOUT, "0n", "application/grpc", true),
    ];
    for (name, value, content_type, grpc) in expired {
        let req = Request::get(upstream.uri("/expired"))
            .header(name, value)
            .header("content-type", content_type)
            .body(empty())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_timed_out(&res, grpc);
    }
    // The same connection path sends a request that has time left.
    let req = Request::get(upstream.uri("/live"))
        .header(MESH_DEADLINE, "5000")
        .body(empty())
        .unwrap();
    let (status, _, _) = support::send(&svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = upstream.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/live"],
        "nothing past its deadline reached the upstream"
    );
    assert_eq!(seen[0].headers[MESH_DEADLINE], "5000");
}

#[tokio::test(start_paused = true)]
async fn the_per_try_timeout_alone_sends_no_attempt_past_the_deadline() {
    let (upstream, calls) = upstream();
    let svc = ServiceBuilder::new()
        .layer(AttemptTimeoutLayer::new(timeouts()))
        .map_request(|req: Request<BoxBody>| req.map(ReplayBody::passthrough))
        .service(upstream);
    for (req, grpc) in expired_requests().await {
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_timed_out(&res, grpc);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0, "nothing was sent");
    // A deadline a moment ahead is still sent.
    let mut req = Request::get("/").body(empty()).unwrap();
    req.headers_mut()
        .insert(MESH_DEADLINE, "1".parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// A service that answers 503 at once, and is ready for a second call only
/// at `at`.
struct ReadyAt {
    calls: Arc<AtomicUsize>,
    at: Instant,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Clone for ReadyAt {
    fn clone(&self) -> Self {
        Self {
            calls: self.calls.clone(),
            at: self.at,
            wait: None,
        }
    }
}

impl tower::Service<Request<ReplayBody<BoxBody>>> for ReadyAt {
    type Response = Response<Proxied<BoxBody>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.calls.load(Ordering::Relaxed) > 0 {
            let at = self.at;
            let wait = self.wait.get_or_insert_with(|| Box::pin(sleep_until(at)));
            ready!(wait.as_mut().poll(cx));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<ReplayBody<BoxBody>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut res = Response::new(Proxied::from(full("busy")));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        std::future::ready(Ok(res))
    }
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_when_the_service_becomes_ready_as_the_deadline_passes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let svc = RouteStackLayer::new(
        RetryPolicy::default().with_backoff(Backoff::none()),
        Timeouts {
            request: Some(Duration::from_secs(1)),
            ..Timeouts::default()
        },
        Arc::new(Budget::default()),
    )
    .layer(ReadyAt {
        calls: calls.clone(),
        at: start + Duration::from_secs(1),
        wait: None,
    });
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_timed_out(&res, false);
    assert_eq!(calls.load(Ordering::Relaxed), 1, "the retry was not sent");
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_sends_no_retry_when_the_service_becomes_ready_as_the_deadline_passes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let svc = ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(Timeouts {
            request: Some(Duration::from_secs(1)),
            ..Timeouts::default()
        }))
        .layer(RetryLayer::new(policy, Arc::new(Budget::default())))
        .service(ReadyAt {
            calls: calls.clone(),
            at: start + Duration::from_secs(1),
            wait: None,
        });
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::Relaxed), 1, "the retry was not sent");
    // The retry layer hands on the response it has; the request timeout
    // outside it sees that response first.
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}
