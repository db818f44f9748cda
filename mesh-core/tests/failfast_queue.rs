//! Requests that find no endpoint ready wait for one, then fail fast, as
//! Linkerd's balancer queue has them: over real sockets, on tokio's
//! paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::queue::{Answer, Fwd, get, spawn, until, upstream};

use std::{num::NonZeroU32, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::{EndpointSet, FailureAccrual, Forward, IN_FAILFAST, Queue},
};
use tokio::time::Instant;
use tower::ServiceExt;

fn forward(set: &EndpointSet) -> Fwd {
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    Forward::with_endpoints(client, set)
}

fn grpc() -> Request<Empty<Bytes>> {
    Request::post("/pkg.Svc/Call")
        .header("host", "web")
        .header("content-type", "application/grpc")
        .body(Empty::new())
        .unwrap()
}

/// Sends `req` and expects its answer without the clock moving.
async fn answered_at_once(forward: &Fwd, req: Request<Empty<Bytes>>) -> Answer {
    let start = Instant::now();
    let answer = spawn(forward, req).await.unwrap();
    assert_eq!(Instant::now(), start, "answered at once: {answer:?}");
    answer
}

#[tokio::test(start_paused = true)]
async fn a_request_to_a_set_without_endpoints_yet_waits_for_the_first() {
    let endpoint = upstream().await;
    let set = EndpointSet::empty();
    let forward = forward(&set);
    let start = Instant::now();
    let waiting = spawn(&forward, get("/"));
    until(start, Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "it waits for an endpoint");
    set.update([endpoint]).unwrap();
    assert_eq!(waiting.await.unwrap(), (StatusCode::OK, None));
}

#[tokio::test(start_paused = true)]
async fn a_set_that_gets_no_endpoint_fails_fast_at_3s_and_serves_again_after_an_update() {
    let endpoint = upstream().await;
    let set = EndpointSet::empty();
    let forward = forward(&set);
    let start = Instant::now();
    let first = spawn(&forward, get("/"));
    until(start, Duration::from_millis(1500)).await;
    // One that comes later waits only as long as the service has had no
    // endpoint, not 3 s of its own.
    let second = spawn(&forward, get("/"));
    until(start, Duration::from_millis(2999)).await;
    assert!(!first.is_finished() && !second.is_finished());
    let failfast = (
        StatusCode::SERVICE_UNAVAILABLE,
        Some(IN_FAILFAST.to_owned()),
    );
    assert_eq!(first.await.unwrap(), failfast);
    assert_eq!(second.await.unwrap(), failfast);
    assert_eq!(Instant::now(), start + Duration::from_secs(3));
    // In fail-fast, a new request is shed at once, as Linkerd sheds it
    // at its shut gate.
    until(start, Duration::from_secs(10)).await;
    assert_eq!(answered_at_once(&forward, get("/")).await, shed());
    // Until an endpoint is ready.
    set.update([endpoint]).unwrap();
    assert_eq!(
        answered_at_once(&forward, get("/")).await,
        (StatusCode::OK, None)
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_callers_in_fail_fast_get_unavailable() {
    let set = EndpointSet::empty();
    let forward = forward(&set);
    let waiting = forward.clone().oneshot(grpc());
    let res = waiting.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["mesh-error"], IN_FAILFAST);
    let res = forward.oneshot(grpc()).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["mesh-error"], "service unavailable");
}

/// The answer to a request shed at once, the service in fail-fast or its
/// queue full.
fn shed() -> Answer {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Some("service unavailable".to_owned()),
    )
}

/// Takes an endpoint out at its first failure, for 1 s.
fn one_second_out() -> FailureAccrual {
    FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(1),
        Duration::from_secs(1),
        0.0,
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn with_every_endpoint_out_a_request_waits_for_the_penalty_end_and_is_the_probe() {
    let endpoint = upstream().await;
    let set = EndpointSet::new([endpoint])
        .unwrap()
        .with_failure_accrual(one_second_out());
    let forward = forward(&set);
    let (status, _) = spawn(&forward, get("/fail")).await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let start = Instant::now();
    let probe = spawn(&forward, get("/"));
    let next = spawn(&forward, get("/"));
    until(start, Duration::from_millis(999)).await;
    assert!(
        !probe.is_finished() && !next.is_finished(),
        "the endpoint is out"
    );
    // The penalty ends: one request probes, and its success lets the
    // other through.
    assert_eq!(probe.await.unwrap(), (StatusCode::OK, None));
    assert_eq!(next.await.unwrap(), (StatusCode::OK, None));
    assert!(Instant::now() < start + Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_request_beyond_the_queue_capacity_is_answered_at_once() {
    let set = EndpointSet::empty().with_queue(Queue::new(1, Duration::from_secs(3)));
    let forward = forward(&set);
    let waiting = spawn(&forward, get("/"));
    tokio::task::yield_now().await;
    assert_eq!(
        answered_at_once(&forward, get("/")).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("service unavailable".to_owned())
        )
    );
    assert!(!waiting.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_while_waiting_gives_its_place_back() {
    let endpoint = upstream().await;
    let set = EndpointSet::empty().with_queue(Queue::new(1, Duration::from_secs(3)));
    let forward = forward(&set);
    let start = Instant::now();
    let gone =
        tokio::time::timeout(Duration::from_secs(1), forward.clone().oneshot(get("/"))).await;
    assert!(gone.is_err(), "it was waiting");
    // Its place is free: the next request waits rather than being
    // turned away.
    let next = spawn(&forward, get("/"));
    until(start, Duration::from_millis(2500)).await;
    assert!(!next.is_finished(), "it waits");
    set.update([endpoint]).unwrap();
    assert_eq!(next.await.unwrap(), (StatusCode::OK, None));
}

/// Linkerd's `Failfast` stays `Waiting` from the first request that found
/// no endpoint ready until the pool is ready: callers that give up before
/// the timeout, one after another (gRPC clients with short deadlines), do
/// not keep a service that stays down out of fail-fast.
#[tokio::test(start_paused = true)]
async fn the_failfast_timeout_runs_on_when_its_waiters_give_up() {
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::from_secs(3)));
    let forward = forward(&set);
    let start = Instant::now();
    for _ in 0..2 {
        let gone =
            tokio::time::timeout(Duration::from_secs(1), forward.clone().oneshot(get("/"))).await;
        assert!(gone.is_err(), "it was waiting");
    }
    let last = spawn(&forward, get("/"));
    let (status, error) = last.await.unwrap();
    assert_eq!(
        (status, error.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(IN_FAILFAST))
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "fail-fast came at the timeout counted from the first request"
    );
    // A request after the timeout is shed at once.
    assert_eq!(answered_at_once(&forward, get("/")).await, shed());
}

/// A zero timeout has passed once a request finds no endpoint: that one
/// brings fail-fast, and the next are shed until an endpoint is ready,
/// as with Linkerd's queue.
#[tokio::test(start_paused = true)]
async fn a_zero_failfast_timeout_fails_the_first_fast_and_sheds_the_next() {
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::ZERO));
    let forward = forward(&set);
    assert_eq!(answered_at_once(&forward, get("/")).await, failfast());
    assert_eq!(answered_at_once(&forward, get("/")).await, shed());
    set.update([upstream().await]).unwrap();
    assert_eq!(
        answered_at_once(&forward, get("/")).await,
        (StatusCode::OK, None)
    );
}

#[test]
fn the_defaults_are_linkerds() {
    let queue = Queue::default();
    assert_eq!(queue.capacity(), 10_000);
    assert_eq!(queue.failfast_timeout(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn fail_fast_ends_with_an_endpoint_ready_and_a_later_outage_waits_again() {
    let endpoint = upstream().await;
    let set = EndpointSet::empty().with_failure_accrual(one_second_out());
    let forward = forward(&set);
    let (status, error) = spawn(&forward, get("/")).await.unwrap();
    assert_eq!(
        (status, error.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(IN_FAILFAST))
    );
    set.update([endpoint]).unwrap();
    let (status, _) = spawn(&forward, get("/fail")).await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // Out again, for 1 s: a request waits for the probe, not fail-fast.
    let start = Instant::now();
    let waiting = spawn(&forward, get("/"));
    until(start, Duration::from_millis(999)).await;
    assert!(!waiting.is_finished());
    assert_eq!(waiting.await.unwrap(), (StatusCode::OK, None));
}

#[tokio::test(start_paused = true)]
async fn a_penalty_longer_than_the_timeout_fails_fast_until_the_probe() {
    let endpoint = upstream().await;
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([endpoint])
        .unwrap()
        .with_failure_accrual(accrual);
    let forward = forward(&set);
    let (status, _) = spawn(&forward, get("/fail")).await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let start = Instant::now();
    let failfast = (
        StatusCode::SERVICE_UNAVAILABLE,
        Some(IN_FAILFAST.to_owned()),
    );
    assert_eq!(spawn(&forward, get("/")).await.unwrap(), failfast);
    assert_eq!(Instant::now(), start + Duration::from_secs(3));
    until(start, Duration::from_secs(30)).await;
    assert_eq!(answered_at_once(&forward, get("/")).await, shed());
    // The penalty is over: the next request probes, and is served.
    until(start, Duration::from_secs(61)).await;
    assert_eq!(
        answered_at_once(&forward, get("/")).await,
        (StatusCode::OK, None)
    );
}

#[tokio::test(start_paused = true)]
async fn a_failfast_timeout_past_the_clock_waits_without_a_panic() {
    let endpoint = upstream().await;
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::MAX));
    let forward = forward(&set);
    let start = Instant::now();
    let waiting = spawn(&forward, get("/"));
    until(start, Duration::from_secs(3600)).await;
    assert!(!waiting.is_finished(), "it waits for an endpoint");
    set.update([endpoint]).unwrap();
    assert_eq!(waiting.await.unwrap(), (StatusCode::OK, None));
}

// `Forward::in_failfast`, which a traffic split asks to pass a backend
// over: true only while a request would be answered `service in
// fail-fast` at once.

/// The answer to `GET path`.
async fn answer(forward: &Fwd, path: &str) -> Answer {
    spawn(forward, get(path)).await.unwrap()
}

fn failfast() -> Answer {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Some(IN_FAILFAST.to_owned()),
    )
}

#[tokio::test(start_paused = true)]
async fn a_set_without_endpoints_is_in_failfast_from_the_timeout_until_an_update() {
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::from_secs(3)));
    let forward = forward(&set);
    // Not yet: a request would wait for an endpoint.
    assert!(!forward.in_failfast());
    let start = Instant::now();
    assert_eq!(answer(&forward, "/").await, failfast());
    assert_eq!(Instant::now(), start + Duration::from_secs(3));
    assert!(forward.in_failfast());
    assert!(forward.clone().in_failfast(), "clones share the state");
    set.update([upstream().await]).unwrap();
    assert!(!forward.in_failfast());
    assert_eq!(answer(&forward, "/").await, (StatusCode::OK, None));
}

#[tokio::test(start_paused = true)]
async fn endpoints_that_fail_without_failure_accrual_are_never_in_failfast() {
    let forward = forward(&EndpointSet::new([upstream().await]).unwrap());
    assert_eq!(
        answer(&forward, "/fail").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(!forward.in_failfast());
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_past_its_penalty_ends_failfast_for_the_asker() {
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(60),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([upstream().await])
        .unwrap()
        .with_failure_accrual(accrual);
    let forward = forward(&set);
    assert_eq!(
        answer(&forward, "/fail").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let start = Instant::now();
    // Out for 60 s: the first request waits the 3 s timeout.
    assert!(!forward.in_failfast());
    assert_eq!(answer(&forward, "/").await, failfast());
    assert!(forward.in_failfast());
    tokio::time::sleep_until(start + Duration::from_secs(30)).await;
    assert!(forward.in_failfast());
    // The penalty is over: with no request sent since, the endpoint may
    // take one, its probe, which a split must still send it.
    tokio::time::sleep_until(start + Duration::from_secs(61)).await;
    assert!(!forward.in_failfast());
    assert_eq!(answer(&forward, "/").await, (StatusCode::OK, None));
    assert!(!forward.in_failfast());
}
