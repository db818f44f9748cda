//! What a request that is not retried allocates in the route stack, beyond
//! what the same request allocates through a bare `service_fn`. dhat counts
//! every allocation of this test binary, which is why this test has a file
//! of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_core::{RouteMatch, body::Proxied};
use mesh_retry::{Budget, RetryPolicy, RouteRetryPolicy, Timeouts, replay::ReplayBody};
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A request as the server hands it on: a few headers, whose values share
/// the buffer they were read into (here, static ones), and `body`.
fn request_with(body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::get("http://emoji:8080/api/list")
        .header("host", HeaderValue::from_static("emoji:8080"))
        .header("user-agent", HeaderValue::from_static("test/1.0"))
        .header("accept", HeaderValue::from_static("*/*"))
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// [`request_with`] a small body.
fn request() -> Request<Full<Bytes>> {
    request_with(b"0123456789abcdef")
}

/// The allocations of one request through `call`, averaged over many.
async fn allocations<F: Future>(mut call: impl FnMut() -> F) -> f64 {
    for _ in 0..10 {
        call().await;
    }
    let n = 1000;
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..n {
        call().await;
    }
    (dhat::HeapStats::get().total_blocks - before) as f64 / f64::from(n)
}

#[tokio::test]
async fn the_route_stack_allocates_a_bounded_few_blocks_per_request() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let baseline = service_fn(|req: Request<Full<Bytes>>| async move {
        req.into_body().collect().await.unwrap();
        Ok::<_, Infallible>(Response::new(Proxied::<Full<Bytes>>::default()))
    });
    let upstream = service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
        req.into_body().collect().await.unwrap();
        Ok::<_, Infallible>(Response::new(Proxied::<Full<Bytes>>::default()))
    });
    let route = RouteRetryPolicy {
        name: "list".into(),
        matches: vec![RouteMatch::new()],
        retry: RetryPolicy::default(),
        timeouts: Timeouts {
            request: Some(Duration::from_secs(10)),
            per_try: Some(Duration::from_secs(2)),
            idle: None,
        },
        backends: Vec::new(),
        request_headers: Default::default(),
        response_headers: Default::default(),
    };
    let stack = route.layer(Arc::new(Budget::default())).layer(upstream);

    let base = allocations(|| async { baseline.oneshot(request()).await.unwrap() }).await;
    let layered = allocations(|| async {
        let res = stack.clone().oneshot(request()).await.unwrap();
        res.into_body().collect().await.unwrap()
    })
    .await;
    let added = layered - base;
    println!("allocations per request: bare {base}, route stack {layered} (+{added})");
    // The fused route stack passes the deadline to its attempts by value
    // (no extension map), so what it adds is the retry head's copy of the
    // headers (1: a list, not a map with its index table). A body whole in
    // memory, as `Full` is, is replayed from its one chunk, with no replay
    // state; one still streaming would take one more block for that. The
    // per-try timeout's header value is made once per route, and no timer
    // is made for a response that is ready.
    assert!(added <= 1.0, "{added} more allocations per request");

    // An empty body needs no replay state: every attempt is empty.
    let base = allocations(|| async { baseline.oneshot(request_with(b"")).await.unwrap() }).await;
    let layered = allocations(|| async {
        let res = stack.clone().oneshot(request_with(b"")).await.unwrap();
        res.into_body().collect().await.unwrap()
    })
    .await;
    let added = layered - base;
    println!("empty body: bare {base}, route stack {layered} (+{added})");
    assert!(added <= 1.0, "{added} more allocations per request");

    // A POST is sent again only if the upstream did not process it, but
    // to be able to, it keeps what a GET keeps: the head's copy.
    let post = || {
        let mut req = request();
        *req.method_mut() = http::Method::POST;
        req
    };
    let base = allocations(|| async { baseline.oneshot(post()).await.unwrap() }).await;
    let layered = allocations(|| async {
        let res = stack.clone().oneshot(post()).await.unwrap();
        res.into_body().collect().await.unwrap()
    })
    .await;
    let added = layered - base;
    println!("POST: bare {base}, route stack {layered} (+{added})");
    assert!(added <= 1.0, "{added} more allocations per request");

    // With that turned off, a POST passes through and keeps nothing.
    let off = RouteRetryPolicy {
        retry: RetryPolicy::default().with_unprocessed(false),
        ..route
    };
    let stack = off.layer(Arc::new(Budget::default())).layer(upstream);
    let layered = allocations(|| async {
        let res = stack.clone().oneshot(post()).await.unwrap();
        res.into_body().collect().await.unwrap()
    })
    .await;
    let added = layered - base;
    println!("POST, unprocessed failures not retried: route stack {layered} (+{added})");
    assert!(added <= 0.0, "{added} more allocations per request");
}
