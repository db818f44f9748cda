//! What failure accrual holds against an endpoint, over real HTTP/2
//! connections: a request the endpoint refused before doing anything with
//! it is no failure of the endpoint's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/unprocessed.rs"]
mod unprocessed;

use std::{num::NonZeroU32, time::Duration};

use http::{Request, StatusCode, Version};
use mesh_core::{
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    error::Unprocessed,
    proxy::{EndpointState, FailureAccrual, Forward},
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
