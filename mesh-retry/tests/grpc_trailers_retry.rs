//! A gRPC server may fail a call with an ordinary head (`200`,
//! `content-type: application/grpc`, no `grpc-status`) followed at once by
//! trailers carrying the status, with no message in between: the same
//! failure as a trailers-only answer, sent in two frames. A retry layer
//! that [peeks](mesh_retry::RetryLayer::peek_grpc_trailers) reads the first
//! frame of such an answer before deciding on it, as linkerd2-proxy's
//! retries do, and hands that frame on unchanged when it does not retry.
//! A plain HTTP answer is never held for its body. Real HTTP/2 over
//! sockets on 127.0.0.1, through mesh-core's pooled client.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use mesh_core::{
    BoxError,
    body::{BoxBody, Proxied, boxed, empty, full},
    classify::GrpcCodes,
};
use mesh_retry::{Budget, BudgetConfig, RetryLayer, RetryMetrics, RetryPolicy, replay::ReplayBody};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt, service_fn, util::BoxCloneService};

use crate::support;

use support::grpc_upstream::{
    Answer, MESSAGE, Upstream, body, call, counter, grpc_route, read, unlimited, upstream,
};

type ServerBody = UnsyncBoxBody<Bytes, Infallible>;

/// The retry layer under `policy`, peeking, over mesh-core's pooled client,
/// counting into the returned registry.
fn layer(
    policy: RetryPolicy,
) -> (
    impl Service<
        Request<BoxBody>,
        Response = Response<impl http_body::Body<Data = Bytes, Error = hyper::Error>>,
        Error = BoxError,
    > + Clone,
    Registry,
) {
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let svc = RetryLayer::new(policy, unlimited())
        .with_metrics(metrics.route("svc", "route"))
        .peek_grpc_trailers(None)
        .layer(support::client());
    (svc, registry)
}

#[tokio::test]
async fn unavailable_in_trailers_right_after_the_head_is_retried() {
    static ANSWERS: [Answer; 2] = [Answer::Trailers("14"), Answer::DataThenTrailers("0")];
    let upstream = upstream(&ANSWERS, true).await;
    let (svc, registry) = layer(grpc_route());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    assert_eq!(res.status(), 200);
    let (data, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 2);
    assert_eq!(data, MESSAGE, "the second attempt's message");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    // Counted as a trailers-only UNAVAILABLE that a retry fixed is.
    assert_eq!(counter(&registry, "retry_requests"), 1);
    assert_eq!(counter(&registry, "retry_successes"), 1);
}

#[tokio::test]
async fn a_message_first_is_handed_on_whole_and_not_retried() {
    // One frame is read: a message came, so the call is the caller's, and
    // its trailers, a retried code or not, are not looked at.
    static ANSWERS: [Answer; 1] = [Answer::DataThenTrailers("14")];
    let upstream = upstream(&ANSWERS, true).await;
    let (svc, registry) = layer(grpc_route());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    let (data, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(data, MESSAGE, "every byte, in order");
    let trailers = trailers.unwrap();
    assert_eq!(trailers["grpc-status"], "14");
    assert_eq!(trailers["x-t"], "1");
    assert_eq!(counter(&registry, "retry_requests"), 0);
}

#[tokio::test]
async fn the_last_answer_keeps_its_trailers_when_the_attempts_run_out() {
    static ANSWERS: [Answer; 1] = [Answer::Trailers("14")];
    let upstream = upstream(&ANSWERS, true).await;
    let (svc, registry) = layer(grpc_route());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("grpc-status").is_none(), "the real head");
    let (data, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 3, "the default three attempts");
    assert!(data.is_empty());
    let trailers = trailers.unwrap();
    assert_eq!(trailers["grpc-status"], "14");
    assert_eq!(trailers["x-t"], "1");
    assert_eq!(counter(&registry, "retry_requests"), 2);
    // The last answer, with no attempt left, is read too: its trailers
    // say the retries ran out, not that they ended in a success.
    assert_eq!(counter(&registry, "retry_limit_exceeded"), 1);
    assert_eq!(counter(&registry, "retry_successes"), 0);
}

#[tokio::test]
async fn trailers_with_a_code_not_retried_reach_the_caller_unchanged() {
    static ANSWERS: [Answer; 1] = [Answer::Trailers("5")];
    let upstream = upstream(&ANSWERS, true).await;
    let (svc, _registry) = layer(grpc_route());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    let (data, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 1);
    assert!(data.is_empty());
    let trailers = trailers.unwrap();
    assert_eq!(trailers["grpc-status"], "5");
    assert_eq!(trailers["x-t"], "1");
}

/// Sends `req` and checks that its head arrives while the upstream still
/// holds the body's first frame; then releases it.
async fn head_before_body<S, RB>(svc: S, upstream: &Upstream, req: Request<BoxBody>)
where
    S: Service<Request<BoxBody>, Response = Response<RB>, Error = BoxError>,
    RB: http_body::Body<Data = Bytes>,
    RB::Error: std::fmt::Debug,
{
    let head = tokio::time::timeout(Duration::from_secs(30), svc.oneshot(req))
        .await
        .expect("the head was held back until the body's first frame")
        .unwrap();
    upstream.release.notify_one();
    let (data, _) = read(head).await;
    assert_eq!(data, "late");
}

#[tokio::test]
async fn a_plain_http_answer_is_not_held_for_its_body() {
    static ANSWERS: [Answer; 1] = [Answer::Held];
    let upstream = upstream(&ANSWERS, false).await;
    let mut get = call(&upstream, false);
    *get.method_mut() = http::Method::GET;
    *get.body_mut() = empty();
    head_before_body(layer(grpc_route()).0, &upstream, get).await;
}

#[tokio::test]
async fn a_call_on_a_route_retrying_no_grpc_code_is_not_held() {
    static ANSWERS: [Answer; 1] = [Answer::Held];
    let upstream = upstream(&ANSWERS, true).await;
    let http_only = grpc_route().with_grpc_codes(GrpcCodes::empty());
    let req = call(&upstream, true);
    head_before_body(layer(http_only).0, &upstream, req).await;
}

#[tokio::test]
async fn a_call_with_no_attempt_left_is_not_held() {
    static ANSWERS: [Answer; 1] = [Answer::Held];
    let upstream = upstream(&ANSWERS, true).await;
    let once = grpc_route().with_max_attempts(std::num::NonZeroU32::MIN);
    let req = call(&upstream, true);
    head_before_body(layer(once).0, &upstream, req).await;
}

/// An in-process gRPC upstream whose body counts its polls, and whose first
/// frame, a message, comes once `release` is notified.
#[derive(Default)]
struct Polled {
    polls: Mutex<usize>,
}

struct CountingBody {
    polled: Arc<Polled>,
    inner: ServerBody,
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        *self.polled.polls.lock().unwrap() += 1;
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}

fn counted(
    polled: Arc<Polled>,
    content_type: &'static str,
) -> BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible> {
    BoxCloneService::new(service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let polled = polled.clone();
        // Boxed: holding the `Collect` across an await fails rustc's `Send`
        // check of the block (rust#102211).
        let read: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(req.into_body().collect());
        async move {
            // Read whole, as a server does: a body still unread is not
            // retried, and so not peeked for.
            read.await.unwrap();
            let inner = body(Answer::DataThenTrailers("0"), Arc::default());
            let body = CountingBody { polled, inner }.map_err(|never| match never {});
            let mut res = Response::new(Proxied::from(boxed(body)));
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static(content_type));
            Ok::<_, Infallible>(res)
        }
    }))
}

#[tokio::test]
async fn an_http_answer_is_not_polled_before_its_caller_polls_it() {
    let polled = Arc::new(Polled::default());
    let svc = RetryLayer::new(grpc_route(), unlimited())
        .peek_grpc_trailers(None)
        .layer(counted(polled.clone(), "text/plain"));
    let req = Request::get("/").body(empty()).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(*polled.polls.lock().unwrap(), 0);
    let (data, _) = read(res).await;
    assert_eq!(data, MESSAGE);
}

#[tokio::test]
async fn a_grpc_answer_is_polled_once_before_its_caller_polls_it() {
    // The peek reads exactly one frame, which the caller then gets first.
    let polled = Arc::new(Polled::default());
    let svc = RetryLayer::new(grpc_route(), unlimited())
        .peek_grpc_trailers(None)
        .layer(counted(polled.clone(), "application/grpc"));
    let req = Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(full("request"))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(*polled.polls.lock().unwrap(), 1);
    let (data, trailers) = read(res).await;
    assert_eq!(data, MESSAGE);
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}

/// An in-process gRPC answer whose first frame comes only when `release`
/// is notified.
fn held_answer(
    release: Arc<Notify>,
) -> BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible> {
    BoxCloneService::new(service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let release = release.clone();
        let read: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(req.into_body().collect());
        async move {
            read.await.unwrap();
            let body = body(Answer::Held, release).map_err(|never| match never {});
            let mut res = Response::new(Proxied::from(boxed(body)));
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            Ok::<_, Infallible>(res)
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn the_per_try_timeout_ends_the_wait_for_the_first_frame() {
    // The head came in time; when the attempt's time is up with no frame
    // yet, the response goes on as it is, not as a 504, and is not retried.
    let release = Arc::new(Notify::new());
    let svc = RetryLayer::new(grpc_route(), unlimited())
        .peek_grpc_trailers(Some(Duration::from_secs(1)))
        .layer(held_answer(release.clone()));
    let req = Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(full("request"))
        .unwrap();
    // Without the bound, nothing would end the wait: the paused clock
    // would run on to this timeout.
    let res = tokio::time::timeout(Duration::from_secs(60), svc.oneshot(req))
        .await
        .expect("the wait for the first frame was bounded")
        .unwrap();
    assert_eq!(res.status(), 200);
    release.notify_one();
    let (data, _) = read(res).await;
    assert_eq!(data, "late");
}

/// Sends a gRPC call through a peeking layer over `upstream`, and checks
/// that its answer comes without its first frame having come (the paused
/// clock would otherwise run on to the timeout here).
async fn not_held(
    policy: RetryPolicy,
    budget: Arc<Budget>,
    upstream: BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>,
    req: Request<BoxBody>,
) {
    let svc = RetryLayer::new(policy, budget)
        .peek_grpc_trailers(None)
        .layer(upstream);
    let res = tokio::time::timeout(Duration::from_secs(60), svc.oneshot(req))
        .await
        .expect("the answer was held for its first frame")
        .unwrap();
    assert_eq!(res.status(), 200);
}

fn grpc_call() -> Request<BoxBody> {
    Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(full("request"))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_call_the_budget_could_not_retry_is_not_held() {
    let empty = Arc::new(Budget::new(
        BudgetConfig::new(0.0, 0, Duration::from_secs(10)).unwrap(),
    ));
    let release = Arc::new(Notify::new());
    not_held(grpc_route(), empty, held_answer(release), grpc_call()).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_deadline_passed_before_the_head_is_not_held() {
    // The head comes 2 s after the call, whose caller gave it 1 s.
    let release = Arc::new(Notify::new());
    let slow = held_answer(release)
        .map_future(|fut| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            fut.await
        })
        .boxed_clone();
    let mut req = grpc_call();
    req.headers_mut()
        .insert("grpc-timeout", HeaderValue::from_static("1S"));
    not_held(grpc_route(), unlimited(), slow, req).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_with_time_left_is_held_until_its_first_frame() {
    // The counterpart of the two above: the same call, with a budget and
    // time to spare, is held, here until the paused clock runs on.
    let release = Arc::new(Notify::new());
    let svc = RetryLayer::new(grpc_route(), unlimited())
        .peek_grpc_trailers(None)
        .layer(held_answer(release));
    let held = tokio::time::timeout(Duration::from_secs(60), svc.oneshot(grpc_call())).await;
    assert!(held.is_err(), "held for its first frame");
}
