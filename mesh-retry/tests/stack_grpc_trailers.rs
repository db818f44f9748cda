//! A route stack built with
//! [`peek_grpc_trailers`](mesh_retry::RouteStackLayer::peek_grpc_trailers)
//! retries a gRPC call failed by an ordinary head (`200`,
//! `content-type: application/grpc`, no `grpc-status`) and, at once,
//! trailers with a retried code, as linkerd2-proxy's retries do; it hands
//! any other first frame on unchanged, and never holds a plain HTTP answer
//! for its body. The default stack still decides by the head. Real HTTP/2
//! over sockets on 127.0.0.1, through mesh-core's pooled client; the
//! per-try bound on the wait, in process on tokio's paused clock.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use mesh_core::body::{BoxBody, Proxied, boxed, empty, full};
use mesh_retry::{RetryMetrics, RouteStackLayer, Timeouts, replay::ReplayBody};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};

use crate::support;

use support::grpc_upstream::{
    Answer, MESSAGE, body, call, counter, grpc_route, read, unlimited, upstream,
};

/// A route's timeouts as the sidecar's usually are.
fn timeouts() -> Timeouts {
    Timeouts {
        request: Some(Duration::from_secs(30)),
        per_try: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    }
}

/// The route's layer, counting into the returned registry.
fn route(timeouts: Timeouts) -> (RouteStackLayer, Registry) {
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let layer = RouteStackLayer::new(grpc_route(), timeouts, unlimited())
        .with_metrics(metrics.route("svc", "route"));
    (layer, registry)
}

#[tokio::test]
async fn unavailable_in_trailers_right_after_the_head_is_retried() {
    static ANSWERS: [Answer; 2] = [Answer::Trailers("14"), Answer::DataThenTrailers("0")];
    let upstream = upstream(&ANSWERS, true).await;
    let (layer, registry) = route(timeouts());
    let svc = layer.peek_grpc_trailers().layer(support::client());
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
async fn the_default_stack_still_decides_by_the_head() {
    static ANSWERS: [Answer; 2] = [Answer::Trailers("14"), Answer::DataThenTrailers("0")];
    let upstream = upstream(&ANSWERS, true).await;
    let (layer, registry) = route(timeouts());
    let svc = layer.layer(support::client());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    let (_, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(trailers.unwrap()["grpc-status"], "14");
    assert_eq!(counter(&registry, "retry_requests"), 0);
}

#[tokio::test]
async fn a_message_first_is_handed_on_whole_and_not_retried() {
    static ANSWERS: [Answer; 1] = [Answer::DataThenTrailers("14")];
    let upstream = upstream(&ANSWERS, true).await;
    let (layer, registry) = route(timeouts());
    let svc = layer.peek_grpc_trailers().layer(support::client());
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
    let (layer, registry) = route(timeouts());
    let svc = layer.peek_grpc_trailers().layer(support::client());
    let res = svc.oneshot(call(&upstream, true)).await.unwrap();
    assert!(res.headers().get("grpc-status").is_none(), "the real head");
    let (data, trailers) = read(res).await;
    assert_eq!(upstream.calls(), 3, "the default three attempts");
    assert!(data.is_empty());
    let trailers = trailers.unwrap();
    assert_eq!(trailers["grpc-status"], "14");
    assert_eq!(trailers["x-t"], "1");
    assert_eq!(counter(&registry, "retry_requests"), 2);
}

#[tokio::test]
async fn a_plain_http_answer_is_not_held_for_its_body() {
    static ANSWERS: [Answer; 1] = [Answer::Held];
    let upstream = upstream(&ANSWERS, false).await;
    let (layer, _registry) = route(timeouts());
    let svc = layer.peek_grpc_trailers().layer(support::client());
    let mut get = call(&upstream, false);
    *get.method_mut() = http::Method::GET;
    *get.body_mut() = empty();
    let res = tokio::time::timeout(Duration::from_secs(30), svc.oneshot(get))
        .await
        .expect("the head was held back until the body's first frame")
        .unwrap();
    upstream.release.notify_one();
    let (data, _) = read(res).await;
    assert_eq!(data, "late");
}

/// An in-process gRPC upstream whose answer's first frame, a message, comes
/// only once `release` is notified; it counts its calls into `calls`.
fn held(release: Arc<Notify>, calls: Arc<Mutex<usize>>) -> HeldUpstream {
    let (notify, count) = (release, calls);
    BoxCloneService::new(service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let notify = notify.clone();
        *count.lock().unwrap() += 1;
        // Boxed: holding the `Collect` across an await fails rustc's `Send`
        // check of the block (rust#102211).
        let read: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(req.into_body().collect());
        async move {
            // Read whole, as a server does, so that the call could be
            // retried.
            read.await.unwrap();
            let body = body(Answer::Held, notify).map_err(|never| match never {});
            let mut res = Response::new(Proxied::from(boxed(body)));
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            Ok::<_, Infallible>(res)
        }
    }))
}

type HeldUpstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>;

fn grpc_request() -> Request<BoxBody> {
    Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(full("request"))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_the_first_frame_ends_with_the_per_try_timeout() {
    // The answer is then the caller's, unread and not retried: its message
    // comes when the upstream sends it.
    let release = Arc::new(Notify::new());
    let calls: Arc<Mutex<usize>> = Arc::default();
    let (layer, registry) = route(Timeouts {
        per_try: Some(Duration::from_secs(2)),
        ..Timeouts::default()
    });
    let svc = layer
        .peek_grpc_trailers()
        .layer(held(release.clone(), calls.clone()));
    let start = tokio::time::Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(60), svc.oneshot(grpc_request()))
        .await
        .expect("the answer was held for its first frame past the attempt's time")
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(res.status(), 200);
    release.notify_one();
    let (data, _) = read(res).await;
    assert_eq!(data, "late");
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(counter(&registry, "retry_requests"), 0);
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_the_first_frame_ends_with_the_deadline() {
    // With no per-try timeout, the request's deadline ends the wait: the
    // answer goes on unread, and its body then ends as any body past the
    // deadline does, with DEADLINE_EXCEEDED in its trailers.
    let calls: Arc<Mutex<usize>> = Arc::default();
    let (layer, registry) = route(Timeouts {
        request: Some(Duration::from_secs(3)),
        ..Timeouts::default()
    });
    let svc = layer
        .peek_grpc_trailers()
        .layer(held(Arc::new(Notify::new()), calls.clone()));
    let start = tokio::time::Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(60), svc.oneshot(grpc_request()))
        .await
        .expect("the answer was held for its first frame past the attempt's time")
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("grpc-status").is_none(), "the real head");
    let (data, trailers) = read(res).await;
    assert!(data.is_empty());
    assert_eq!(trailers.unwrap()["grpc-status"], "4");
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(counter(&registry, "retry_requests"), 0);
}
