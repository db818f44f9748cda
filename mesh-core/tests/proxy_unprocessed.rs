//! The mesh's 502 for a request its upstream did not process carries
//! `Unprocessed`, over real HTTP/2 connections, so that a retry layer above
//! `Forward` may send it again whatever its method; the 502 for one the
//! upstream may have processed does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::unprocessed;

use http::{Request, Response, StatusCode, Version};
use mesh_core::{
    ProxyErrorKind,
    body::{BoxBody, Proxied, full},
    client::{Client, ClientConfig},
    error::{GRPC_STATUS, Unprocessed, is_unprocessed},
    proxy::{Forward, ResponseBody},
};
use tower::ServiceExt;
use unprocessed::{First, Upstream, upstream};

/// Sends one `req` through a `Forward` to an upstream that fails it as
/// `first` says.
async fn forward(
    first: First,
    req: Request<BoxBody>,
) -> (
    Response<Proxied<ResponseBody<hyper::body::Incoming>>>,
    Upstream,
) {
    let upstream = upstream(first).await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream.addr]).unwrap();
    let res = forward.oneshot(req).await.unwrap();
    (res, upstream)
}

fn order() -> Request<BoxBody> {
    Request::post("http://orders/orders")
        .version(Version::HTTP_2)
        .body(full("one order"))
        .unwrap()
}

/// Whether `res` is the mesh's 502, and marked unprocessed.
fn unreachable_and_unprocessed<B>(res: &Response<B>) -> bool {
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::UpstreamUnreachable)
    );
    res.extensions().get::<Unprocessed>().is_some()
}

#[tokio::test]
async fn a_stream_the_upstream_refused_is_marked_unprocessed() {
    let (res, upstream) = forward(First::Refused, order()).await;
    assert!(unreachable_and_unprocessed(&res));
    assert_eq!(upstream.bodies(), ["one order"], "sent once, by the mesh");
}

#[tokio::test]
async fn a_stream_above_a_graceful_goaways_last_stream_is_marked_unprocessed() {
    let (res, upstream) = forward(First::GoAway, order()).await;
    assert!(unreachable_and_unprocessed(&res));
    assert_eq!(upstream.bodies(), ["one order"]);
}

#[tokio::test]
async fn a_stream_reset_after_it_was_processed_is_not_marked() {
    let (res, upstream) = forward(First::Reset, order()).await;
    assert!(!unreachable_and_unprocessed(&res));
    assert_eq!(upstream.bodies(), ["one order"]);
}

#[tokio::test]
async fn a_stream_at_the_last_stream_of_a_goaway_with_an_error_is_not_marked() {
    // The connection closes after the GOAWAY: the stream, which the
    // upstream may have processed, ends with the connection.
    let (res, upstream) = forward(First::GoAwayAfter, order()).await;
    assert!(!unreachable_and_unprocessed(&res));
    assert_eq!(upstream.bodies(), ["one order"]);
}

#[tokio::test]
async fn a_connection_that_closed_after_reading_the_request_is_not_marked() {
    let (res, upstream) = forward(First::Close, order()).await;
    assert!(!unreachable_and_unprocessed(&res));
    assert_eq!(upstream.bodies(), ["one order"]);
}

#[tokio::test]
async fn a_refused_grpc_call_gets_unavailable_marked_unprocessed() {
    let call = Request::post("http://orders/orders.Orders/Place")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(full(&b"\0\0\0\0\x01x"[..]))
        .unwrap();
    let (res, _) = forward(First::Refused, call).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[GRPC_STATUS], "14");
    assert!(res.extensions().get::<Unprocessed>().is_some());
}

#[tokio::test]
async fn the_request_after_a_refused_one_is_answered() {
    // The refusal leaves the connection as it was: the next request goes
    // over it, and is answered.
    let upstream = upstream(First::Refused).await;
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream.addr]).unwrap();
    let refused = forward.clone().oneshot(order()).await.unwrap();
    assert!(refused.extensions().get::<Unprocessed>().is_some());
    let answered = forward.oneshot(order()).await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    assert!(answered.extensions().get::<Unprocessed>().is_none());
    assert_eq!(upstream.bodies(), ["one order", "one order"]);
}

#[tokio::test]
async fn the_clients_own_error_tells_which_requests_were_not_processed() {
    for (first, unprocessed) in [
        (First::Refused, true),
        (First::GoAway, true),
        (First::Reset, false),
        (First::GoAwayAfter, false),
        (First::Close, false),
    ] {
        let upstream = upstream(first).await;
        let client = Client::<BoxBody>::new(&ClientConfig::default());
        let mut req = order();
        *req.uri_mut() = format!("http://{}/orders", upstream.addr).parse().unwrap();
        let error = client.oneshot(req).await.unwrap_err();
        assert_eq!(
            is_unprocessed(&error),
            unprocessed,
            "{first:?}: {}",
            Chain(&error)
        );
    }
}

/// An error and its causes, as a log line shows them.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}
