//! A gRPC call answered by a response that is not gRPC (a proxy's plain
//! 429 or 503, no `grpc-status`) is retried by the code its gRPC client
//! reads (gRPC's HTTP-to-gRPC mapping), on a route that retries gRPC codes,
//! in the route stack and in the retry layer alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use mesh_core::{
    body::{BoxBody, Proxied, empty},
    classify::{GrpcCode, GrpcCodes, StatusRanges},
};
use mesh_retry::{
    Budget, BudgetConfig, RetryLayer, RetryPolicy, RouteStackLayer, Timeouts, replay::ReplayBody,
};
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};

type Upstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>;

/// Answers the first attempt with `first` and every later one with a
/// successful trailers-only gRPC response; counts the attempts.
fn upstream(first: fn() -> Response<Proxied<BoxBody>>) -> (Upstream, Arc<Mutex<usize>>) {
    let seen: Arc<Mutex<usize>> = Arc::default();
    let count = seen.clone();
    let svc = service_fn(move |_req: Request<ReplayBody<BoxBody>>| {
        let i = {
            let mut count = count.lock().unwrap();
            *count += 1;
            *count
        };
        async move {
            Ok::<_, Infallible>(if i == 1 {
                first()
            } else {
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(Proxied::from(empty()))
                    .unwrap()
            })
        }
    });
    (BoxCloneService::new(svc), seen)
}

fn plain(status: u16) -> Response<Proxied<BoxBody>> {
    let mut res = Response::new(Proxied::from(empty()));
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    res.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    res
}

fn plain_429() -> Response<Proxied<BoxBody>> {
    plain(429)
}
fn plain_503() -> Response<Proxied<BoxBody>> {
    plain(503)
}
fn plain_500() -> Response<Proxied<BoxBody>> {
    plain(500)
}
fn plain_404() -> Response<Proxied<BoxBody>> {
    plain(404)
}

fn grpc_call() -> Request<BoxBody> {
    Request::builder()
        .method("POST")
        .uri("http://svc/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(empty())
        .unwrap()
}

fn get() -> Request<BoxBody> {
    Request::builder().uri("http://svc/").body(empty()).unwrap()
}

fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ))
}

/// A route that retries gRPC codes, and its calls.
fn grpc_route() -> RetryPolicy {
    RetryPolicy::default().with_grpc_requests(true)
}

/// Sends `req` through the route stack and through the retry layer alone,
/// each with a fresh upstream answering `first`; the attempts each made.
async fn attempts(
    policy: RetryPolicy,
    first: fn() -> Response<Proxied<BoxBody>>,
    req: fn() -> Request<BoxBody>,
) -> [usize; 2] {
    let (svc, stack_seen) = upstream(first);
    let stack = RouteStackLayer::new(policy.clone(), Timeouts::default(), unlimited()).layer(svc);
    stack.oneshot(req()).await.unwrap();
    let (svc, layer_seen) = upstream(first);
    let layer = RetryLayer::new(policy, unlimited()).layer(svc);
    layer.oneshot(req()).await.unwrap();
    let stack_seen = *stack_seen.lock().unwrap();
    let layer_seen = *layer_seen.lock().unwrap();
    [stack_seen, layer_seen]
}

#[tokio::test(start_paused = true)]
async fn a_plain_429_or_503_to_a_grpc_call_is_retried_as_unavailable() {
    // 429 is not a 5xx: as HTTP it would not be retried. Its gRPC client
    // reads UNAVAILABLE, which the route retries.
    assert_eq!(attempts(grpc_route(), plain_429, grpc_call).await, [2, 2]);
    assert_eq!(attempts(grpc_route(), plain_503, grpc_call).await, [2, 2]);
    // With the HTTP statuses emptied, the 503 still is: the code decides.
    let codes_only = grpc_route().with_http_statuses(StatusRanges::empty());
    assert_eq!(attempts(codes_only, plain_503, grpc_call).await, [2, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_plain_answer_whose_code_is_not_retried_is_not() {
    // A plain 500 reads as UNKNOWN and a 404 as UNIMPLEMENTED, neither of
    // which the default codes retry, though the 500 is a 5xx.
    assert_eq!(attempts(grpc_route(), plain_500, grpc_call).await, [1, 1]);
    assert_eq!(attempts(grpc_route(), plain_404, grpc_call).await, [1, 1]);
    // A route that retries UNIMPLEMENTED retries the 404.
    let unimplemented =
        grpc_route().with_grpc_codes(GrpcCodes::empty().with(GrpcCode::UNIMPLEMENTED));
    assert_eq!(attempts(unimplemented, plain_404, grpc_call).await, [2, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_route_retrying_no_grpc_code_reads_the_answer_as_http() {
    let http_only = grpc_route().with_grpc_codes(GrpcCodes::empty());
    assert_eq!(
        attempts(http_only.clone(), plain_500, grpc_call).await,
        [2, 2]
    );
    assert_eq!(attempts(http_only, plain_429, grpc_call).await, [1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_plain_request_is_read_as_http_as_before() {
    assert_eq!(attempts(grpc_route(), plain_429, get).await, [1, 1]);
    assert_eq!(attempts(grpc_route(), plain_500, get).await, [2, 2]);
}
