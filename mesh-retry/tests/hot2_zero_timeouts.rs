//! A timeout of zero set in code is no timeout, as `0s` in configuration
//! is (the Gateway API's "zero means disabled"): the route stack and the
//! three layers read it so when they are built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mesh_core::body::{BoxBody, Proxied, boxed, empty};
use mesh_retry::{
    AttemptTimeoutLayer, Budget, RequestTimeoutLayer, RetryLayer, RetryPolicy, RouteStackLayer,
    Timeouts,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
    replay::ReplayBody,
};
use tokio::time::sleep;
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};

type Upstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>;

const ZERO: Timeouts = Timeouts {
    request: Some(Duration::ZERO),
    per_try: Some(Duration::ZERO),
    idle: Some(Duration::ZERO),
};

/// Answers after 5 ms, with a body whose second chunk comes 5 ms after the
/// first: every one of the three timeouts, were it zero, would fire.
fn slow_upstream() -> (Upstream, Arc<Mutex<Vec<HeaderMap>>>) {
    let heads: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let log = heads.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        log.lock().unwrap().push(req.headers().clone());
        async move {
            sleep(Duration::from_millis(5)).await;
            let chunks = stream::unfold(0, |i| async move {
                match i {
                    0 => Some((Ok::<_, Infallible>(Frame::data(Bytes::from("one "))), 1)),
                    1 => {
                        sleep(Duration::from_millis(5)).await;
                        Some((Ok(Frame::data(Bytes::from("two"))), 2))
                    }
                    _ => None,
                }
            });
            Ok::<_, Infallible>(Response::new(Proxied::from(boxed(StreamBody::new(chunks)))))
        }
    });
    (BoxCloneService::new(svc), heads)
}

fn grpc_request() -> Request<BoxBody> {
    Request::builder()
        .method("POST")
        .uri("http://svc/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(empty())
        .unwrap()
}

async fn read<B>(res: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(res.status(), 200, "{:?}", res.headers());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_reads_zero_timeouts_as_none() {
    let (upstream, heads) = slow_upstream();
    let budget = Arc::new(Budget::default());
    let stack = RouteStackLayer::new(RetryPolicy::default(), ZERO, budget).layer(upstream);

    let res = stack.clone().oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(read(res).await, "one two");
    let res = stack.oneshot(grpc_request()).await.unwrap();
    assert_eq!(read(res).await, "one two");

    // No deadline was made up for the upstream either.
    for head in heads.lock().unwrap().iter() {
        assert!(head.get(MESH_DEADLINE).is_none(), "{head:?}");
        assert!(head.get(GRPC_TIMEOUT).is_none(), "{head:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_three_layers_read_zero_timeouts_as_none() {
    let (upstream, heads) = slow_upstream();
    let budget = Arc::new(Budget::default());
    let stack = RequestTimeoutLayer::new(ZERO)
        .with_propagation(false)
        .layer(
            RetryLayer::new(RetryPolicy::default(), budget)
                .layer(AttemptTimeoutLayer::new(ZERO).layer(upstream)),
        );

    let res = stack.clone().oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(read(res).await, "one two");
    let res = stack.oneshot(grpc_request()).await.unwrap();
    assert_eq!(read(res).await, "one two");

    for head in heads.lock().unwrap().iter() {
        assert!(head.get(MESH_DEADLINE).is_none(), "{head:?}");
        assert!(head.get(GRPC_TIMEOUT).is_none(), "{head:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_beside_a_real_timeout_leaves_the_real_one() {
    // A zero request timeout does not hide the per-try timeout: 2 ms
    // against an upstream that takes 5 is still a 504.
    let (upstream, _) = slow_upstream();
    let budget = Arc::new(Budget::default());
    let timeouts = Timeouts {
        per_try: Some(Duration::from_millis(2)),
        ..ZERO
    };
    let stack = RouteStackLayer::new(RetryPolicy::never(), timeouts, budget).layer(upstream);
    let res = stack.oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(res.status(), 504);
}
