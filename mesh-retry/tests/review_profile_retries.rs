//! A ServiceProfile route marked `isRetryable` retries as Linkerd's does:
//! for as long as the service's budget has a retry, at once, with no
//! attempt limit of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Method, Request, Response, StatusCode};
use mesh_core::body::{BoxBody, Proxied, empty, full};
use mesh_retry::{
    Backoff, Budget, RouteRetryPolicy, ServiceRetryPolicy, config, replay::ReplayBody,
    timeout::TimeoutBody,
};
use tower::{Layer, ServiceExt, service_fn};

/// A profile whose one route is retryable, with a budget of `budget`.
fn profile(budget: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: books.shop.svc.cluster.local, namespace: shop}}
spec:
  retryBudget:
{budget}
  routes:
  - name: create
    condition: {{method: POST, pathRegex: /books}}
    isRetryable: true
"
    )
}

fn books(text: &str) -> (ServiceRetryPolicy, RouteRetryPolicy) {
    let loaded = config::load("profile.yaml", text).unwrap();
    let books = loaded.service("books", Some("shop")).unwrap().clone();
    let req = Request::post("/books").body(()).unwrap();
    let route = books.route_for(&req).unwrap().clone();
    (books, route)
}

type Stack = tower::util::BoxCloneService<
    Request<BoxBody>,
    Response<TimeoutBody<Proxied<BoxBody>>>,
    mesh_core::BoxError,
>;

/// The route's stack with a budget of its own, to an upstream that answers
/// 503 to its first `failures` calls and 200 after; and its count of calls.
fn stack(
    service: &ServiceRetryPolicy,
    route: &RouteRetryPolicy,
    failures: usize,
) -> (Stack, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let upstream = service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        let n = counted.fetch_add(1, Ordering::Relaxed);
        async move {
            let mut res = Response::new(Proxied::from(full("reply")));
            if n < failures {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok::<_, Infallible>(res)
        }
    });
    let budget = Arc::new(Budget::new(service.budget));
    let svc = route.layer(budget).layer(upstream);
    (tower::util::BoxCloneService::new(svc), calls)
}

/// Sends a POST to /books; returns its status and the calls it took.
async fn post(svc: &Stack, calls: &AtomicUsize) -> (StatusCode, usize) {
    let before = calls.load(Ordering::Relaxed);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/books")
        .body(empty())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    (res.status(), calls.load(Ordering::Relaxed) - before)
}

#[test]
fn a_retryable_profile_route_has_no_attempt_limit_and_no_backoff() {
    let (_, route) = books(&profile(
        "    retryRatio: 0.2\n    minRetriesPerSecond: 10\n    ttl: 10s",
    ));
    assert!(route.retry.any_method());
    assert_eq!(route.retry.max_attempts().get(), u32::MAX);
    assert_eq!(route.retry.backoff(), &Backoff::none());
}

#[tokio::test(start_paused = true)]
async fn a_retryable_profile_route_retries_past_three_attempts_while_the_budget_allows() {
    let (service, route) = books(&profile(
        "    retryRatio: 0.2\n    minRetriesPerSecond: 10\n    ttl: 10s",
    ));
    // Five failures, then a success: Linkerd's sixth attempt succeeds.
    let (svc, calls) = stack(&service, &route, 5);
    assert_eq!(post(&svc, &calls).await, (StatusCode::OK, 6));
}

#[tokio::test(start_paused = true)]
async fn the_budget_alone_bounds_the_retries_of_a_profile_route() {
    // No share of requests, a reserve of one retry a second over 5 s: five
    // retries in all, whatever the upstream does.
    let (service, route) = books(&profile(
        "    retryRatio: 0\n    minRetriesPerSecond: 1\n    ttl: 5s",
    ));
    let (svc, calls) = stack(&service, &route, usize::MAX);
    assert_eq!(
        post(&svc, &calls).await,
        (StatusCode::SERVICE_UNAVAILABLE, 6)
    );
    // The reserve is spent: the next request is sent once.
    assert_eq!(
        post(&svc, &calls).await,
        (StatusCode::SERVICE_UNAVAILABLE, 1)
    );
}

/// The route's stack with a budget of its own, to an upstream that fails
/// every call with `error`; and its count of calls.
fn failing(
    service: &ServiceRetryPolicy,
    route: &RouteRetryPolicy,
    answer: fn() -> Result<Response<Proxied<BoxBody>>, mesh_core::BoxError>,
) -> (Stack, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let upstream = service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        counted.fetch_add(1, Ordering::Relaxed);
        std::future::ready(answer())
    });
    let budget = Arc::new(Budget::new(service.budget));
    let svc = route.layer(budget).layer(upstream);
    (tower::util::BoxCloneService::new(svc), calls)
}

#[tokio::test(start_paused = true)]
async fn a_profile_route_does_not_retry_a_connection_error() {
    // linkerd2-proxy's profile retries read responses only: a call that
    // failed with an error is not retried. With no attempt limit and no
    // backoff, retrying one would spend the whole reserve at once on an
    // upstream that refuses connections.
    let (service, route) = books(&profile(
        "    retryRatio: 0.2\n    minRetriesPerSecond: 10\n    ttl: 10s",
    ));
    let refused = || Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into());
    let (svc, calls) = failing(&service, &route, refused);
    let req = Request::post("/books").body(empty()).unwrap();
    assert!(svc.oneshot(req).await.is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 1);

    // Nor the mesh's own 502 for an upstream it could not reach.
    let unreachable = || Ok(mesh_core::ProxyErrorKind::UpstreamUnreachable.response_for(false));
    let (svc, calls) = failing(&service, &route, unreachable);
    let req = Request::post("/books").body(empty()).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}
