//! The balancer's two `503`s, decided by what they are, as linkerd2-proxy's
//! route retries decide its `LoadShedError` and `FailFastError`: a
//! request the queue shed (`service unavailable`) is never retried,
//! whatever statuses the policy retries, and counted by no retry counter;
//! one that failed fast (`service in fail-fast`) is retried by any policy
//! that retries, even one whose statuses leave out 503, and whatever its
//! method, as a request no endpoint processed, within the attempt limit.
//! Another `503` of the same kind (no backend to draw) is decided by its
//! status, as before. The retry layer and the route stack alike; the
//! attempts the mesh does not answer go to a real upstream over a socket
//! on 127.0.0.1.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::{
    BoxError, ProxyErrorKind,
    body::{BoxBody, Proxied, full},
    classify::StatusRanges,
    proxy::queue::IN_FAILFAST,
};
use mesh_retry::{Budget, RetryPolicy, replay::ReplayBody};
use tower::Service;

use crate::support::{
    self, Upstream, Upstreams,
    retrying::{BOTH, Counted, Layered},
};

/// How the balancer answers an attempt.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Shed by its queue: `503`, `service unavailable`.
    Shed,
    /// Failed fast: `503`, `service in fail-fast`.
    FailedFast,
    /// Another answer of the same kind: `503` with a reason of its own.
    Elsewhere,
    /// Sent to the upstream.
    Sent,
}

/// A balancer whose attempts are answered as `script` says, one answer an
/// attempt (the last one for any attempt past the end), and sent to the
/// real upstream when it says [`Answer::Sent`].
#[derive(Clone)]
struct Balancer {
    client: Upstreams,
    script: &'static [Answer],
    attempts: Arc<AtomicUsize>,
}

type Attempt = Pin<Box<dyn Future<Output = Result<Response<Proxied<Incoming>>, BoxError>> + Send>>;

impl Service<Request<ReplayBody<BoxBody>>> for Balancer {
    type Response = Response<Proxied<Incoming>>;
    type Error = BoxError;
    type Future = Attempt;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReplayBody<BoxBody>>) -> Attempt {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        let answer = self.script[n.min(self.script.len() - 1)];
        let res = match answer {
            Answer::Shed => ProxyErrorKind::Unavailable.response_for(false),
            Answer::FailedFast => {
                ProxyErrorKind::Unavailable.response_with_reason(false, IN_FAILFAST)
            }
            Answer::Elsewhere => {
                ProxyErrorKind::Unavailable.response_with_reason(false, "no backend today")
            }
            Answer::Sent => return Box::pin(self.client.call(req)),
        };
        Box::pin(async move { Ok(res) })
    }
}

/// What one request came to: its status and `mesh-error`, the attempts
/// the balancer got, the requests the upstream got, and the retry series
/// counted.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    mesh_error: Option<String>,
    attempts: usize,
    upstream: usize,
    counted: Vec<String>,
}

/// Sends one `method` request through `layered` with `policy`, over a
/// balancer that answers as `script` says.
async fn send(
    layered: Layered,
    policy: RetryPolicy,
    method: Method,
    script: &'static [Answer],
) -> Outcome {
    let upstream: Upstream = support::recording(|_, _| StatusCode::OK).await;
    let counted = Counted::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let balancer = Balancer {
        client: support::client(),
        script,
        attempts: attempts.clone(),
    };
    let budget = Arc::new(Budget::default());
    let req = Request::builder()
        .method(method)
        .uri(upstream.uri("/items"))
        .body(full(Bytes::from_static(b"order")))
        .unwrap();
    let res = layered
        .send(policy, budget, Some(counted.metrics.clone()), balancer, req)
        .await
        .unwrap();
    Outcome {
        status: res.status(),
        mesh_error: res
            .headers()
            .get("mesh-error")
            .map(|v| v.to_str().unwrap().to_owned()),
        attempts: attempts.load(Ordering::SeqCst),
        upstream: upstream.seen().len(),
        counted: counted.nonzero(),
    }
}

/// A policy that retries 500 and 502 only: not the 503s.
fn not_503() -> RetryPolicy {
    RetryPolicy::default().with_http_statuses(
        StatusRanges::empty()
            .with_status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_status(StatusCode::BAD_GATEWAY),
    )
}

#[tokio::test(start_paused = true)]
async fn a_shed_request_is_not_retried_and_counted_nowhere() {
    static SHED: [Answer; 2] = [Answer::Shed, Answer::Sent];
    for layered in BOTH {
        let got = send(layered, RetryPolicy::default(), Method::GET, &SHED).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{layered:?}");
        assert_eq!(got.mesh_error.as_deref(), Some("service unavailable"));
        assert_eq!(
            (got.attempts, got.upstream),
            (1, 0),
            "{layered:?}: not retried"
        );
        assert_eq!(got.counted, Vec::<String>::new(), "{layered:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_failed_fast_is_retried_whatever_statuses_the_route_retries() {
    static FAILED_FAST: [Answer; 2] = [Answer::FailedFast, Answer::Sent];
    for layered in BOTH {
        for policy in [RetryPolicy::default(), not_503()] {
            let got = send(layered, policy, Method::GET, &FAILED_FAST).await;
            assert_eq!(got.status, StatusCode::OK, "{layered:?}");
            assert_eq!((got.attempts, got.upstream), (2, 1), "{layered:?}: retried");
            assert_eq!(
                got.counted,
                ["retry_requests_total{} 1", "retry_successes_total{} 1"],
                "{layered:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_post_that_failed_fast_is_retried_as_unprocessed() {
    static FAILED_FAST: [Answer; 2] = [Answer::FailedFast, Answer::Sent];
    for layered in BOTH {
        let got = send(layered, RetryPolicy::default(), Method::POST, &FAILED_FAST).await;
        assert_eq!(got.status, StatusCode::OK, "{layered:?}");
        assert_eq!((got.attempts, got.upstream), (2, 1), "{layered:?}: retried");

        // Unless failures the upstream did not process are not retried.
        let policy = RetryPolicy::default().with_unprocessed(false);
        let got = send(layered, policy, Method::POST, &FAILED_FAST).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{layered:?}");
        assert_eq!((got.attempts, got.upstream), (1, 0), "{layered:?}");
        assert_eq!(
            got.counted,
            ["retry_not_retryable_total{reason=\"non_idempotent\"} 1"],
            "{layered:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn failing_fast_again_and_again_ends_at_the_attempt_limit() {
    static ALWAYS: [Answer; 1] = [Answer::FailedFast];
    for layered in BOTH {
        let got = send(layered, not_503(), Method::GET, &ALWAYS).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{layered:?}");
        assert_eq!(got.mesh_error.as_deref(), Some(IN_FAILFAST));
        assert_eq!((got.attempts, got.upstream), (3, 0), "{layered:?}");
        assert_eq!(
            got.counted,
            ["retry_requests_total{} 2", "retry_limit_exceeded_total{} 1"],
            "{layered:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_fast_retry_that_is_shed_ends_there() {
    // Linkerd's sequence with a zero fail-fast timeout: the first request
    // to find no endpoint fails fast and brings fail-fast; its retry is
    // shed, and not retried again.
    static SEQUENCE: [Answer; 3] = [Answer::FailedFast, Answer::Shed, Answer::Sent];
    for layered in BOTH {
        let got = send(layered, RetryPolicy::default(), Method::GET, &SEQUENCE).await;
        assert_eq!(got.mesh_error.as_deref(), Some("service unavailable"));
        assert_eq!((got.attempts, got.upstream), (2, 0), "{layered:?}");
        assert_eq!(got.counted, ["retry_requests_total{} 1"], "{layered:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn another_503_of_the_mesh_is_decided_by_its_status() {
    static ELSEWHERE: [Answer; 2] = [Answer::Elsewhere, Answer::Sent];
    for layered in BOTH {
        let got = send(layered, RetryPolicy::default(), Method::GET, &ELSEWHERE).await;
        assert_eq!(got.status, StatusCode::OK, "{layered:?}: 5xx retried");
        let got = send(layered, not_503(), Method::GET, &ELSEWHERE).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{layered:?}");
        assert_eq!((got.attempts, got.upstream), (1, 0), "{layered:?}");
    }
}
