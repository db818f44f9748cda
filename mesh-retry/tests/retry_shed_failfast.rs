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

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use mesh_core::{body::full, proxy::queue::IN_FAILFAST};
use mesh_retry::RetryPolicy;

use crate::support::{
    self, Upstream,
    retrying::{Answer, BOTH, Layered, not_503, send_scripted},
};

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
    let req = Request::builder()
        .method(method)
        .uri(upstream.uri("/items"))
        .body(full(Bytes::from_static(b"order")))
        .unwrap();
    let sent = send_scripted(layered, policy, script, req).await;
    let res = sent.res;
    Outcome {
        status: res.status(),
        mesh_error: res
            .headers()
            .get("mesh-error")
            .map(|v| v.to_str().unwrap().to_owned()),
        attempts: sent.attempts,
        upstream: upstream.seen().len(),
        counted: sent.counted,
    }
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
