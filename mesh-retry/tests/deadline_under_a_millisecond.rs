//! A request with less than a millisecond of its deadline left is still
//! the caller's: `mesh-deadline` (whole milliseconds) must not tell the
//! next hop `0`, which every hop reads as a deadline already passed and
//! answers with a 504 without sending the request on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderValue, Request, Response};
use mesh_core::body::{BoxBody, Proxied, empty, full};
use mesh_retry::{
    AttemptTimeoutLayer, Budget, RequestTimeoutLayer, RetryPolicy, RouteStackLayer, Timeouts,
    deadline::{MESH_DEADLINE, mesh_deadline_value, parse_mesh_deadline},
};
use tower::{Layer, Service, ServiceExt, service_fn};

const HALF_A_MILLISECOND: Duration = Duration::from_micros(500);

/// The next hop: a sidecar's request timeout, with no timeout of its own,
/// in front of an application that records what reaches it.
#[allow(clippy::type_complexity)]
fn next_hop<B: Send + 'static>() -> (
    impl Service<
        Request<B>,
        Response = Response<mesh_retry::timeout::TimeoutBody<Proxied<BoxBody>>>,
        Error = Infallible,
    > + Clone,
    Arc<Mutex<Vec<Option<HeaderValue>>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = service_fn(move |req: Request<B>| {
        log.lock()
            .unwrap()
            .push(req.headers().get(MESH_DEADLINE).cloned());
        async { Ok::<_, Infallible>(Response::new(Proxied::from(full("done")))) }
    });
    (
        RequestTimeoutLayer::new(Timeouts::default()).layer(app),
        seen,
    )
}

/// Sends a request through `svc`, in front of the [`next_hop`] that
/// records into `seen`: it must be answered, not refused as expired by the
/// next hop, and reach the application with `mesh-deadline: 1`.
async fn reaches_with_a_millisecond<S, B>(svc: S, seen: &Mutex<Vec<Option<HeaderValue>>>)
where
    S: Service<Request<BoxBody>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let res = svc
        .oneshot(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "not refused as expired by the next hop");
    assert_eq!(*seen.lock().unwrap(), [Some(HeaderValue::from_static("1"))]);
}

#[test]
fn less_than_a_millisecond_is_written_as_one_and_none_as_zero() {
    for (left, written) in [
        (Duration::ZERO, "0"),
        (Duration::from_nanos(1), "1"),
        (HALF_A_MILLISECOND, "1"),
        (Duration::from_micros(1_999), "1"),
        (Duration::from_millis(2), "2"),
    ] {
        let value = mesh_deadline_value(left);
        assert_eq!(value, written, "{left:?}");
        // Read back, a request with time left has some.
        let read = parse_mesh_deadline(&value).unwrap();
        assert_eq!(read.is_zero(), left.is_zero(), "{left:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_timeout_with_half_a_millisecond_left_reaches_the_upstream() {
    let (hop, seen) = next_hop();
    let timeouts = Timeouts {
        request: Some(HALF_A_MILLISECOND),
        ..Timeouts::default()
    };
    let svc = RequestTimeoutLayer::new(timeouts).layer(hop);
    reaches_with_a_millisecond(svc, &seen).await;
}

#[tokio::test(start_paused = true)]
async fn a_per_try_timeout_under_a_millisecond_reaches_the_upstream() {
    let (hop, seen) = next_hop();
    let timeouts = Timeouts {
        per_try: Some(HALF_A_MILLISECOND),
        ..Timeouts::default()
    };
    let svc = AttemptTimeoutLayer::new(timeouts).layer(hop);
    reaches_with_a_millisecond(svc, &seen).await;
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_with_half_a_millisecond_left_reaches_the_upstream() {
    let (hop, seen) = next_hop();
    let timeouts = Timeouts {
        request: Some(HALF_A_MILLISECOND),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(
        RetryPolicy::default(),
        timeouts,
        Arc::new(Budget::default()),
    )
    .layer(hop);
    reaches_with_a_millisecond(svc, &seen).await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_sent_half_a_millisecond_is_read_as_having_time() {
    // The caller's own hop wrote what it had left; the next one forwards.
    let (hop, seen) = next_hop();
    let mut req = Request::get("/").body(empty()).unwrap();
    req.headers_mut()
        .insert(MESH_DEADLINE, mesh_deadline_value(HALF_A_MILLISECOND));
    let res = hop.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 1);
}
