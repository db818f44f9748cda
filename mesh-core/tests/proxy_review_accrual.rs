//! What failure accrual holds against an endpoint, over real HTTP/2
//! connections: a request the endpoint refused before doing anything with
//! it is no failure of the endpoint's, a probe that never ends keeps its
//! endpoint out no longer than the longest penalty, and a gRPC caller
//! whose own request failed is told so in gRPC's terms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::accrual;
use crate::support::unprocessed;

use std::{num::NonZeroU32, time::Duration};

use accrual::{grpc_call, grpc_stream_upstream};
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use mesh_core::{
    BoxError, ProxyErrorKind,
    body::{BoxBody, boxed, full},
    client::{Client, ClientConfig},
    error::Unprocessed,
    proxy::{EndpointState, FailureAccrual, Forward, INVALID_REQUEST},
};
use tower::ServiceExt;
use unprocessed::{First, upstream};

/// Takes an endpoint out at its first failure, for a minute.
fn strict() -> FailureAccrual {
    FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap()
}

fn order() -> Request<BoxBody> {
    Request::post("http://orders/orders")
        .version(Version::HTTP_2)
        .body(full("one order"))
        .unwrap()
}

/// Sends a first request that the upstream fails as `first` says, then
/// a second; returns the endpoint's state between the two, and the
/// second's status.
async fn after_first(first: First) -> (EndpointState, StatusCode) {
    let upstream = upstream(first).await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream.addr])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();
    let res = forward.clone().oneshot(order()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let unprocessed = res.extensions().get::<Unprocessed>().is_some();
    assert_eq!(
        unprocessed,
        matches!(first, First::Refused | First::GoAway),
        "{first:?}"
    );
    let [(_, state)] = view.endpoints().unwrap()[..] else {
        panic!("one endpoint")
    };
    let next = forward.oneshot(order()).await.unwrap();
    (state, next.status())
}

#[tokio::test]
async fn a_stream_the_endpoint_refused_does_not_take_it_out() {
    // REFUSED_STREAM says the endpoint did nothing with the request (RFC
    // 9113 §8.7): a server shedding load or lowering its stream limit,
    // not one failing requests. Counted, one refusal took a healthy
    // endpoint out for a minute.
    let (state, next) = after_first(First::Refused).await;
    assert_eq!(state, EndpointState::Ready);
    assert_eq!(next, StatusCode::OK);
}

#[tokio::test]
async fn a_stream_above_a_graceful_goaway_does_not_take_the_endpoint_out() {
    // A GOAWAY with NO_ERROR is how a server restarts or sheds a
    // connection; the streams above its last stream id were not
    // processed, and the endpoint answers on a new connection.
    let (state, next) = after_first(First::GoAway).await;
    assert_eq!(state, EndpointState::Ready);
    assert_eq!(next, StatusCode::OK);
}

#[tokio::test]
async fn a_stream_reset_after_it_was_processed_still_takes_the_endpoint_out() {
    let upstream = upstream(First::Reset).await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream.addr])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();
    let res = forward.clone().oneshot(order()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        view.endpoints().unwrap(),
        [(upstream.addr, EndpointState::Failing)]
    );
}

/// A body that sends a few bytes and then fails, as the body of a client
/// that went away mid-upload does.
fn aborted_body() -> BoxBody {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x05part"))),
        Err("the client's upload failed".into()),
    ];
    boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

#[tokio::test]
async fn a_grpc_call_whose_own_body_fails_is_answered_in_grpc() {
    // Every answer the mesh makes a gRPC caller is trailers-only, with a
    // `grpc-status` (error.rs: INTERNAL for an invalid request), as a
    // gRPC client reads its status there and not in the HTTP code.
    let upstream = upstream(First::Refused).await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream.addr]).unwrap();
    let call = Request::post("http://orders/orders.Orders/Place")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(aborted_body())
        .unwrap();
    let res = forward.oneshot(call).await.unwrap();
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::InvalidRequest)
    );
    assert_eq!(res.headers()["mesh-error"], INVALID_REQUEST);
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
    assert_eq!(res.headers()["grpc-status"], "13");
    assert_eq!(res.headers()["content-type"], "application/grpc");
}

#[tokio::test]
async fn a_probe_that_never_ends_holds_its_endpoint_out_no_longer_than_the_longest_penalty() {
    // Out for a second at a time, at its first failure.
    let penalty = Duration::from_secs(1);
    let accrual = FailureAccrual::new(NonZeroU32::MIN, penalty, penalty, 0.0).unwrap();
    let endpoint = grpc_stream_upstream().await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(accrual);
    let view = forward.balancer_view().unwrap();
    let advance = |by| async move {
        tokio::time::pause();
        tokio::time::advance(by).await;
        tokio::time::resume();
    };

    let res = forward.clone().oneshot(grpc_call("only:14")).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );
    advance(penalty).await;

    // The probe is a stream that never ends: its verdict waits for
    // trailers that never come, and its caller keeps it.
    let probe = forward.clone().oneshot(grpc_call("hang")).await.unwrap();
    assert!(probe.headers().get("mesh-error").is_none(), "the probe");
    // One probe at a time: a call made meanwhile waits (on tokio's
    // paused clock, half a penalty on, it still is).
    let mut meanwhile = tokio::spawn(forward.clone().oneshot(grpc_call("trailers:0")));
    tokio::time::pause();
    let early = tokio::time::timeout(penalty / 2, &mut meanwhile).await;
    tokio::time::resume();
    assert!(early.is_err(), "answered while the probe held: {early:?}");

    // Once the probe has held the probation as long as the longest
    // penalty, the waiting call probes too. Before, a stream that lived
    // for hours kept its healthy endpoint out for hours, and a
    // one-endpoint service answered every other call 503 meanwhile.
    advance(penalty / 2).await;
    let next = meanwhile.await.unwrap().unwrap();
    assert!(
        next.headers().get("mesh-error").is_none(),
        "{:?}",
        next.headers()
    );
    let body = next.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)]
    );
    drop(probe);
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)]
    );
}
