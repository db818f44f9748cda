//! A gRPC server may answer a call with its headers, then trailers carrying
//! the status, and no data frame in between (not a trailers-only answer).
//! On a route that retries gRPC codes, the route stack reads the first
//! frame of such an answer before deciding on it, as Linkerd's retries do,
//! and hands that frame on unchanged when it does not retry; a plain HTTP
//! request, or a call on a route retrying no gRPC code, is never held for
//! its body. Real HTTP/2 over sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::{
    BoxError,
    body::{BoxBody, Proxied, boxed, empty, full},
    classify::GrpcCodes,
};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryPolicy, RouteStackLayer, Timeouts, replay::ReplayBody,
};
use tokio::sync::Notify;
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};

type ServerBody = UnsyncBoxBody<Bytes, Infallible>;

/// What the upstream answers each attempt with, by its number from 0.
#[derive(Clone, Copy)]
enum Answer {
    /// Headers, then trailers with this `grpc-status` (and `x-t: 1`).
    Trailers(&'static str),
    /// Headers, a data frame, then trailers with this `grpc-status`.
    DataThenTrailers(&'static str),
    /// Headers, then a data frame only once `release` is notified.
    Held,
}

fn trailers(status: &'static str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    trailers.insert("x-t", HeaderValue::from_static("1"));
    trailers
}

fn body(answer: Answer, release: Arc<Notify>) -> ServerBody {
    let frames = stream::unfold(0, move |i| {
        let release = release.clone();
        async move {
            let frame = match (answer, i) {
                (Answer::Trailers(status), 0) => Frame::trailers(trailers(status)),
                (Answer::DataThenTrailers(_), 0) => Frame::data(Bytes::from("hello")),
                (Answer::DataThenTrailers(status), 1) => Frame::trailers(trailers(status)),
                (Answer::Held, 0) => {
                    release.notified().await;
                    Frame::data(Bytes::from("late"))
                }
                _ => return None,
            };
            Some((Ok::<_, Infallible>(frame), i + 1))
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

struct Upstream {
    addr: std::net::SocketAddr,
    calls: Arc<Mutex<usize>>,
    release: Arc<Notify>,
}

/// An HTTP/1.1 and HTTP/2 server answering attempt `i` with `answers[i]`
/// (the last repeats), as a gRPC server (`content-type: application/grpc`)
/// or, with `grpc` false, as a plain one.
async fn upstream(answers: &'static [Answer], grpc: bool) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls: Arc<Mutex<usize>> = Arc::default();
    let release = Arc::new(Notify::new());
    let (count, notify) = (calls.clone(), release.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (count, notify) = (count.clone(), notify.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (count, notify) = (count.clone(), notify.clone());
                    async move {
                        req.into_body().collect().await.unwrap();
                        let i = {
                            let mut count = count.lock().unwrap();
                            *count += 1;
                            *count - 1
                        };
                        let answer = answers[i.min(answers.len() - 1)];
                        let mut res = Response::new(body(answer, notify));
                        let kind = if grpc {
                            "application/grpc"
                        } else {
                            "text/plain"
                        };
                        res.headers_mut()
                            .insert("content-type", HeaderValue::from_static(kind));
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        calls,
        release,
    }
}

fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ))
}

/// A route that retries gRPC codes (the default ones), and its calls,
/// without backoff.
fn grpc_route() -> RetryPolicy {
    RetryPolicy::default()
        .with_grpc_requests(true)
        .with_backoff(Backoff::none())
}

type Stack = Pin<
    Box<
        dyn Fn(
            Request<BoxBody>,
        ) -> Pin<
            Box<dyn Future<Output = Response<mesh_retry::timeout::TimeoutBody<Proxied<Incoming>>>>>,
        >,
    >,
>;

/// The route stack under `policy` over mesh-core's pooled client.
fn stack(policy: RetryPolicy, timeouts: Timeouts) -> Stack {
    let client = support::client();
    let layer = RouteStackLayer::new(policy, timeouts, unlimited());
    let svc = layer.layer(client);
    Box::pin(move |req| {
        let svc = svc.clone();
        Box::pin(async move { svc.oneshot(req).await.unwrap() })
    })
}

fn call(upstream: &Upstream, grpc: bool) -> Request<BoxBody> {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("http://{}/pkg.Svc/Call", upstream.addr))
        .version(Version::HTTP_2);
    if grpc {
        req = req.header("content-type", "application/grpc");
    }
    req.body(full("request")).unwrap()
}

async fn read(res: Response<impl http_body::Body<Error = BoxError>>) -> (Bytes, Option<HeaderMap>) {
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

#[tokio::test]
async fn unavailable_in_trailers_right_after_the_headers_is_retried() {
    static ANSWERS: [Answer; 2] = [Answer::Trailers("14"), Answer::DataThenTrailers("0")];
    let upstream = upstream(&ANSWERS, true).await;
    let res = stack(grpc_route(), Timeouts::default())(call(&upstream, true)).await;
    assert_eq!(res.status(), 200);
    let (data, trailers) = read(res).await;
    assert_eq!(*upstream.calls.lock().unwrap(), 2);
    assert_eq!(data, "hello", "the second attempt's answer");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}

#[tokio::test]
async fn trailers_not_retried_reach_the_caller_unchanged() {
    // NOT_FOUND is not a code the route retries: the peeked trailers are
    // the caller's, whole.
    static ANSWERS: [Answer; 1] = [Answer::Trailers("5")];
    let upstream = upstream(&ANSWERS, true).await;
    let res = stack(grpc_route(), Timeouts::default())(call(&upstream, true)).await;
    let (data, trailers) = read(res).await;
    assert_eq!(*upstream.calls.lock().unwrap(), 1);
    assert!(data.is_empty());
    let trailers = trailers.unwrap();
    assert_eq!(trailers["grpc-status"], "5");
    assert_eq!(trailers["x-t"], "1");
}

#[tokio::test]
async fn unavailable_after_the_attempts_run_out_reaches_the_caller() {
    static ANSWERS: [Answer; 1] = [Answer::Trailers("14")];
    let upstream = upstream(&ANSWERS, true).await;
    let res = stack(grpc_route(), Timeouts::default())(call(&upstream, true)).await;
    let (_, trailers) = read(res).await;
    assert_eq!(
        *upstream.calls.lock().unwrap(),
        3,
        "the default three attempts"
    );
    assert_eq!(trailers.unwrap()["grpc-status"], "14");
}

#[tokio::test]
async fn a_data_frame_first_is_handed_on_and_not_looked_past() {
    // One frame is read: a message came, so the call is the caller's.
    static ANSWERS: [Answer; 1] = [Answer::DataThenTrailers("14")];
    let upstream = upstream(&ANSWERS, true).await;
    let res = stack(grpc_route(), Timeouts::default())(call(&upstream, true)).await;
    let (data, trailers) = read(res).await;
    assert_eq!(*upstream.calls.lock().unwrap(), 1);
    assert_eq!(data, "hello");
    assert_eq!(trailers.unwrap()["grpc-status"], "14");
}

/// Sends `req` and checks that its response head arrives while the
/// upstream still holds the body's first frame; then releases it.
async fn head_before_body(stack: Stack, upstream: &Upstream, req: Request<BoxBody>) {
    let head = tokio::time::timeout(Duration::from_secs(30), stack(req))
        .await
        .expect("the head was held back until the body's first frame");
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
    head_before_body(stack(grpc_route(), Timeouts::default()), &upstream, get).await;
}

#[tokio::test]
async fn a_call_on_a_route_retrying_no_grpc_code_is_not_held() {
    static ANSWERS: [Answer; 1] = [Answer::Held];
    let upstream = upstream(&ANSWERS, true).await;
    let http_only = grpc_route().with_grpc_codes(GrpcCodes::empty());
    let req = call(&upstream, true);
    head_before_body(stack(http_only, Timeouts::default()), &upstream, req).await;
}

/// An in-process gRPC answer whose first frame comes only when `release`
/// is notified.
fn held_answer(
    release: Arc<Notify>,
) -> BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible> {
    BoxCloneService::new(service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let release = release.clone();
        // Boxed: holding the `Collect` across an await fails rustc's `Send`
        // check of the block (rust#102211).
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
    // yet, the response goes on as it is, not as a 504.
    let release = Arc::new(Notify::new());
    let timeouts = Timeouts {
        per_try: Some(Duration::from_secs(1)),
        ..Timeouts::default()
    };
    let svc = RouteStackLayer::new(grpc_route(), timeouts, unlimited())
        .layer(held_answer(release.clone()));
    let req = Request::builder()
        .method("POST")
        .header("content-type", "application/grpc")
        .body(full("request"))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    release.notify_one();
    let (data, _) = read(res).await;
    assert_eq!(data, "late");
}
