//! What a failed request whose retry the budget refuses allocates: during
//! an outage every request is one, so a refusal must cost no more than a
//! request that never failed. dhat counts every allocation of this test
//! binary, which is why this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::body::Proxied;
use mesh_retry::{
    Budget, BudgetConfig, RetryLayer, RetryPolicy, RouteStackLayer, Timeouts, replay::ReplayBody,
};
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A request as the server hands it on: a few headers, one of them a name
/// `http` does not know, and a small body.
fn request() -> Request<Full<Bytes>> {
    Request::get("http://emoji:8080/api/list")
        .header("host", HeaderValue::from_static("emoji:8080"))
        .header("user-agent", HeaderValue::from_static("test/1.0"))
        .header("x-request-id", HeaderValue::from_static("abc"))
        .body(Full::new(Bytes::from_static(b"0123456789abcdef")))
        .unwrap()
}

type Res = Response<Proxied<Full<Bytes>>>;

/// An upstream that reads the request and answers `status`.
fn upstream(
    status: StatusCode,
) -> impl Service<
    Request<ReplayBody<Full<Bytes>>>,
    Response = Res,
    Error = Infallible,
    Future = impl Future<Output = Result<Res, Infallible>> + Send,
> + Clone
+ Send {
    service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| async move {
        req.into_body().collect().await.unwrap();
        let mut res = Response::new(Proxied::<Full<Bytes>>::default());
        *res.status_mut() = status;
        Ok::<_, Infallible>(res)
    })
}

/// A budget with nothing to spend: every retry is refused.
fn empty_budget() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(0.0, 0, Duration::from_secs(10)).unwrap(),
    ))
}

/// A budget that holds half a retry, in fractions spread over the shards
/// of five other threads, and whose requests add a ten-thousandth each:
/// every retry is refused, after the budget has looked at every shard
/// (the shard of the requests' thread never has a whole retry).
fn budget_of_fractions() -> Arc<Budget> {
    let budget = Arc::new(Budget::new(
        BudgetConfig::new(0.0001, 0, Duration::from_secs(60)).unwrap(),
    ));
    for _ in 0..5 {
        let budget = budget.clone();
        std::thread::spawn(move || (0..1000).for_each(|_| budget.deposit()))
            .join()
            .unwrap();
    }
    budget
}

/// The allocations of one request through `call`, averaged over many and
/// rounded: the test harness's own threads allocate now and then (a few
/// blocks in a thousand requests on a loaded machine), and a request's
/// count is a whole number.
async fn allocations<F: Future>(mut call: impl FnMut() -> F) -> f64 {
    for _ in 0..10 {
        call().await;
    }
    let n = 1000;
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..n {
        call().await;
    }
    ((dhat::HeapStats::get().total_blocks - before) as f64 / f64::from(n)).round()
}

#[tokio::test]
async fn a_retry_the_budget_refuses_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();

    // The fused route stack.
    let route = |status| {
        RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), empty_budget())
            .layer(upstream(status))
    };
    let (ok, failing) = (
        route(StatusCode::OK),
        route(StatusCode::SERVICE_UNAVAILABLE),
    );
    let succeeded = allocations(|| async { ok.clone().oneshot(request()).await.unwrap() }).await;
    let refused = allocations(|| async {
        let res = failing.clone().oneshot(request()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
    println!("route stack: answered {succeeded}, refused a retry {refused}");
    assert_eq!(refused, succeeded, "allocations per request");

    // The retry layer.
    let layer =
        |status| RetryLayer::new(RetryPolicy::default(), empty_budget()).layer(upstream(status));
    let (ok, failing) = (
        layer(StatusCode::OK),
        layer(StatusCode::SERVICE_UNAVAILABLE),
    );
    let succeeded = allocations(|| async { ok.clone().oneshot(request()).await.unwrap() }).await;
    let refused = allocations(|| async {
        let res = failing.clone().oneshot(request()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
    println!("retry layer: answered {succeeded}, refused a retry {refused}");
    assert_eq!(refused, succeeded, "allocations per request");

    // The route stack again, refused by a budget that had to add up what
    // other threads' shards hold to know.
    let budget = budget_of_fractions();
    let failing = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), budget.clone())
        .layer(upstream(StatusCode::SERVICE_UNAVAILABLE));
    let refused = allocations(|| async {
        let res = failing.clone().oneshot(request()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
    println!("route stack, fractions in other shards: refused a retry {refused}");
    assert!(budget.balance() < 1.0, "no retry was ever granted");
    assert_eq!(refused, succeeded, "allocations per request");
}
