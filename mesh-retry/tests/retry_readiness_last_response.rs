//! A retry that the service fails to get ready for: the caller gets the
//! last real response, body and all, not the readiness error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    future::{Ready, ready},
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_core::{
    BoxError,
    body::{BoxBody, empty, full},
};
use mesh_retry::{Budget, BudgetConfig, Deadline, RetryLayer, RetryPolicy, replay::ReplayBody};
use tower::{Layer, ServiceExt};

/// What the first attempt gets.
#[derive(Clone, Copy)]
enum First {
    /// A 503 with a body.
    Unavailable,
    /// A connection refused before any response: retryable, no response.
    Refused,
}

/// A service whose first call is answered as `first` says, and which then
/// fails to get ready, as a balancer that lost its last endpoint does.
/// `refused` counts the times it failed to: once for a retry decided on,
/// none when no retry was.
#[derive(Clone)]
struct LosesItsEndpoints {
    first: First,
    calls: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl tower::Service<Request<ReplayBody<BoxBody>>> for LosesItsEndpoints {
    type Response = Response<BoxBody>;
    type Error = BoxError;
    type Future = Ready<Result<Response<BoxBody>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.calls.load(Ordering::SeqCst) == 0 {
            Poll::Ready(Ok(()))
        } else {
            self.refused.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Err("no endpoints to send to".into()))
        }
    }

    fn call(&mut self, _: Request<ReplayBody<BoxBody>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ready(match self.first {
            First::Unavailable => Ok(Response::builder()
                .status(503)
                .header("retry-after-reason", "draining")
                .body(full("shard 7 is draining"))
                .unwrap()),
            First::Refused => Err(io::Error::from(io::ErrorKind::ConnectionRefused).into()),
        })
    }
}

fn budget() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
    ))
}

/// Sends a GET through a `RetryLayer` over [`LosesItsEndpoints`]: the
/// result, the calls made, and the retries the service refused.
async fn send(
    first: First,
    deadline: Option<Duration>,
    budget: &Arc<Budget>,
) -> (Result<Response<BoxBody>, BoxError>, usize, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let svc = RetryLayer::new(RetryPolicy::default(), budget.clone()).layer(LosesItsEndpoints {
        first,
        calls: calls.clone(),
        refused: refused.clone(),
    });
    let mut req = Request::get("/items").body(empty()).unwrap();
    if let Some(deadline) = deadline {
        req.extensions_mut().insert(Deadline::after(deadline));
    }
    let result = svc.oneshot(req).await;
    (
        result,
        calls.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    )
}

#[tokio::test(start_paused = true)]
async fn the_caller_gets_the_failed_response_when_the_service_cannot_take_the_retry() {
    let budget = budget();
    let before = budget.balance();
    let (result, calls, refused) = send(First::Unavailable, None, &budget).await;
    let res = result.expect("the 503, not the readiness error");
    assert_eq!(calls, 1, "no retry was sent");
    // A 503 returned unretried, with the budget one deposit up, is also
    // what a layer that never decided on a retry gives.
    assert_eq!(refused, 1, "a retry was decided on, and refused");
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after-reason"], "draining");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "shard 7 is draining", "the body comes whole");
    // The first attempt deposited one retry's worth (a ratio of 1.0);
    // the retry that was not sent was given back. Kept, it would cost as
    // much as the deposit, and leave the balance where it was.
    assert_eq!(
        budget.balance(),
        before + 1.0,
        "the retry was not given back"
    );
}

#[tokio::test(start_paused = true)]
async fn so_does_a_request_with_a_deadline() {
    let (result, calls, refused) =
        send(First::Unavailable, Some(Duration::from_secs(5)), &budget()).await;
    let res = result.expect("the 503, not the readiness error");
    assert_eq!(calls, 1);
    assert_eq!(refused, 1, "a retry was decided on, and refused");
    assert_eq!(res.status(), 503);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "shard 7 is draining");
}

#[tokio::test(start_paused = true)]
async fn with_no_response_to_give_back_the_caller_gets_an_error() {
    let (result, calls, refused) = send(First::Refused, None, &budget()).await;
    assert_eq!(calls, 1);
    // The attempt's error is also what comes back when it is not retried.
    assert_eq!(refused, 1, "a retry was decided on, and refused");
    let error = result.expect_err("no response ever came");
    // The request's own failure, the last thing that happened to it.
    let io = error
        .downcast_ref::<io::Error>()
        .expect("the attempt's error");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
}
