//! The balancer's two `503`s as the retry layers tell them apart, at the
//! edges: only the mesh's own answer (its `ProxyErrorKind`) is a shed or a
//! failed-fast request, never an upstream's response that carries the same
//! `mesh-error` (a remote proxy's, or an application's), which its status
//! decides as any other; a failed-fast request is retried as one no
//! endpoint read, whatever the route's connection-error setting, with the
//! whole of a body that was still streaming, and as a gRPC call whatever
//! codes the route retries, while a shed gRPC call is not retried even on
//! a route that retries `UNAVAILABLE`. The retry layer and the route stack
//! alike; every attempt the mesh does not answer goes to a real upstream
//! on 127.0.0.1.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use mesh_core::{
    ProxyErrorKind,
    body::{BoxBody, Proxied, full},
    classify::{GrpcCode, GrpcCodes},
    proxy::queue::IN_FAILFAST,
};
use mesh_retry::{Budget, RetryPolicy, replay::ReplayBody};
use tokio::sync::mpsc;

use crate::support::{
    self, Upstream,
    retrying::{Answer, BOTH, Layered, not_503, send_scripted},
};

/// What a request came to.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    grpc_status: Option<String>,
    /// What the balancer was asked to send.
    attempts: usize,
    /// The bodies the upstream read, in order.
    bodies: Vec<Bytes>,
    counted: Vec<String>,
}

/// Sends `req` through `layered` with `policy`, over a balancer that
/// answers as `script` says and sends the rest to `upstream`.
async fn send(
    layered: Layered,
    policy: RetryPolicy,
    script: &'static [Answer],
    upstream: &Upstream,
    req: Request<BoxBody>,
) -> Outcome {
    let sent = send_scripted(layered, policy, script, req).await;
    let res = sent.res;
    Outcome {
        status: res.status(),
        grpc_status: res
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned()),
        attempts: sent.attempts,
        bodies: upstream.seen().into_iter().map(|seen| seen.body).collect(),
        counted: sent.counted,
    }
}

/// An upstream whose first answer is a `503` carrying `mesh-error:
/// reason` (a remote proxy's refusal, or an application's), and 200 after.
async fn answering_503_with(reason: &'static str) -> Upstream {
    support::answering(move |index, _| {
        let status = if index == 0 { 503 } else { 200 };
        Response::builder()
            .status(status)
            .header("mesh-error", reason)
            .body(Full::new(Bytes::from_static(b"reply")))
            .unwrap()
    })
    .await
}

fn request(method: Method, upstream: &Upstream) -> Request<BoxBody> {
    Request::builder()
        .method(method)
        .uri(upstream.uri("/items"))
        .body(full(Bytes::from_static(b"order")))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_upstreams_503_saying_service_unavailable_is_decided_by_its_status() {
    // The next hop's refusal, not this one's: its 503 is retried when the
    // route retries 503, as any upstream 503 is.
    static SENT: [Answer; 1] = [Answer::Sent];
    for layered in BOTH {
        let upstream = answering_503_with("service unavailable").await;
        let req = request(Method::GET, &upstream);
        let got = send(layered, RetryPolicy::default(), &SENT, &upstream, req).await;
        assert_eq!(got.status, StatusCode::OK, "{layered:?}: retried by status");
        assert_eq!(got.bodies.len(), 2, "{layered:?}");
        assert_eq!(
            got.counted,
            ["retry_requests_total{} 1", "retry_successes_total{} 1"],
            "{layered:?}"
        );

        // And not when the route leaves 503 out.
        let upstream = answering_503_with("service unavailable").await;
        let req = request(Method::GET, &upstream);
        let got = send(layered, not_503(), &SENT, &upstream, req).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{layered:?}");
        assert_eq!(got.bodies.len(), 1, "{layered:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_upstreams_503_saying_in_fail_fast_is_neither_retried_regardless_nor_unprocessed() {
    static SENT: [Answer; 1] = [Answer::Sent];
    for layered in BOTH {
        // A route that does not retry 503 does not retry it.
        let upstream = answering_503_with(IN_FAILFAST).await;
        let req = request(Method::GET, &upstream);
        let got = send(layered, not_503(), &SENT, &upstream, req).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{layered:?}");
        assert_eq!(got.bodies.len(), 1, "{layered:?}");
        assert_eq!(got.counted, Vec::<String>::new(), "{layered:?}");

        // The upstream read the POST: it is not retried as unprocessed.
        let upstream = answering_503_with(IN_FAILFAST).await;
        let req = request(Method::POST, &upstream);
        let got = send(layered, RetryPolicy::default(), &SENT, &upstream, req).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{layered:?}");
        assert_eq!(got.bodies.len(), 1, "{layered:?}");
        assert_eq!(
            got.counted,
            ["retry_not_retryable_total{reason=\"non_idempotent\"} 1"],
            "{layered:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_fast_request_is_retried_on_a_route_that_does_not_retry_connection_errors() {
    static FAILED_FAST: [Answer; 2] = [Answer::FailedFast, Answer::Sent];
    for layered in BOTH {
        let upstream = support::recording(|_, _| StatusCode::OK).await;
        let policy = not_503().with_connection_errors(false);
        let req = request(Method::GET, &upstream);
        let got = send(layered, policy, &FAILED_FAST, &upstream, req).await;
        assert_eq!(got.status, StatusCode::OK, "{layered:?}");
        assert_eq!(got.attempts, 2, "{layered:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_streamed_post_that_failed_fast_is_retried_with_its_whole_body() {
    // The queue answers before the body is read, with part of it still to
    // come: the retry sends all of it.
    static FAILED_FAST: [Answer; 2] = [Answer::FailedFast, Answer::Sent];
    for layered in BOTH {
        let upstream = support::recording(|_, _| StatusCode::OK).await;
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        let body = BoxBody::new(StreamBody::new(stream));
        let req = Request::post(upstream.uri("/items")).body(body).unwrap();
        tokio::spawn(async move {
            tx.send(Ok(Frame::data(Bytes::from_static(b"ord"))))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"er"))))
                .await
                .unwrap();
        });
        let got = send(
            layered,
            RetryPolicy::default(),
            &FAILED_FAST,
            &upstream,
            req,
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "{layered:?}");
        assert_eq!(got.attempts, 2, "{layered:?}");
        assert_eq!(got.bodies, [Bytes::from_static(b"order")], "{layered:?}");
    }
}

/// A gRPC call (a POST, on a route that does not retry gRPC calls by
/// method) to an upstream that answers `OK`.
async fn grpc_call() -> (Upstream, Request<BoxBody>) {
    let upstream = support::answering(|_, _| {
        Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let req = Request::post(upstream.uri("/pkg.Svc/Call"))
        .header("content-type", "application/grpc")
        .body(full(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    (upstream, req)
}

#[tokio::test(start_paused = true)]
async fn a_grpc_call_that_failed_fast_is_retried_whatever_codes_the_route_retries() {
    static FAILED_FAST: [Answer; 2] = [Answer::FailedFast, Answer::Sent];
    let deadline_only = GrpcCodes::empty().with(GrpcCode::DEADLINE_EXCEEDED);
    for layered in BOTH {
        let (upstream, req) = grpc_call().await;
        let policy = RetryPolicy::default().with_grpc_codes(deadline_only);
        let got = send(layered, policy, &FAILED_FAST, &upstream, req).await;
        assert_eq!(got.grpc_status.as_deref(), Some("0"), "{layered:?}");
        assert_eq!((got.attempts, got.bodies.len()), (2, 1), "{layered:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_shed_grpc_call_is_not_retried_on_a_route_that_retries_unavailable() {
    static SHED: [Answer; 2] = [Answer::Shed, Answer::Sent];
    for layered in BOTH {
        let (upstream, req) = grpc_call().await;
        let policy = RetryPolicy::default()
            .with_grpc_requests(true)
            .with_grpc_codes(GrpcCodes::empty().with(GrpcCode::UNAVAILABLE));
        let got = send(layered, policy, &SHED, &upstream, req).await;
        assert_eq!(got.grpc_status.as_deref(), Some("14"), "{layered:?}");
        assert_eq!((got.attempts, got.bodies.len()), (1, 0), "{layered:?}");
        assert_eq!(got.counted, Vec::<String>::new(), "{layered:?}");
    }
}

/// A ServiceProfile route marked `isRetryable`, with a reserve of 100
/// retries: its policy and its service's.
fn profile_route() -> (mesh_retry::ServiceRetryPolicy, mesh_retry::RouteRetryPolicy) {
    let text = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: books.shop.svc.cluster.local, namespace: shop}
spec:
  retryBudget: {retryRatio: 0.2, minRetriesPerSecond: 10, ttl: 10s}
  routes:
  - name: create
    condition: {method: POST, pathRegex: /books}
    isRetryable: true
";
    let loaded = mesh_retry::config::load("profile.yaml", text).unwrap();
    let books = loaded.service("books", Some("shop")).unwrap().clone();
    let req = Request::post("/books").body(()).unwrap();
    let route = books.route_for(&req).unwrap().clone();
    (books, route)
}

/// How many attempts a POST on the profile route takes when every attempt
/// is answered with the mesh's own `answer()`, and the status it ends with.
async fn profile_attempts(answer: fn() -> Response<Proxied<BoxBody>>) -> (StatusCode, usize) {
    use tower::{Layer, ServiceExt};
    let (service, route) = profile_route();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let balancer = tower::service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok::<_, Infallible>(answer()))
    });
    let budget = Arc::new(Budget::new(service.budget));
    let svc = route.layer(budget).layer(balancer);
    let req = Request::post("/books")
        .body(full(Bytes::from_static(b"book")))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    (res.status(), calls.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn a_profile_route_does_not_retry_a_request_that_failed_fast() {
    // linkerd2-proxy's profile retries read responses only: its
    // `FailFastError` is an error there, never retried. With no attempt
    // limit and no backoff, every request waiting in the queue when
    // fail-fast comes would take a retry at once.
    let failed_fast = || ProxyErrorKind::Unavailable.response_with_reason(false, IN_FAILFAST);
    assert_eq!(
        profile_attempts(failed_fast).await,
        (StatusCode::SERVICE_UNAVAILABLE, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_profile_route_does_not_retry_the_meshs_answer_to_a_refused_stream() {
    // As mesh-core's `Forward` answers a stream the upstream reset with
    // `REFUSED_STREAM`: a 502 marked unprocessed. Linkerd's profile
    // retries see the error, and do not retry it; with no limit and no
    // backoff, retrying it would spend the whole reserve at once on an
    // upstream turning streams away.
    let refused = || {
        let mut res = ProxyErrorKind::UpstreamUnreachable.response_for(false);
        res.extensions_mut().insert(mesh_core::error::Unprocessed);
        res
    };
    assert_eq!(
        profile_attempts(refused).await,
        (StatusCode::BAD_GATEWAY, 1)
    );
}
