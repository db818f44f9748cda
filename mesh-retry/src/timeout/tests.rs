use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mesh_core::{
    BoxError, ProxyErrorKind,
    body::{BoxBody, Proxied, boxed, empty, full},
    error::MESH_ERROR,
};
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

use super::{error::Elapsed, *};
use crate::{
    Deadline,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
};

fn timeouts(request: Option<u64>, per_try: Option<u64>, idle: Option<u64>) -> Timeouts {
    Timeouts {
        request: request.map(Duration::from_millis),
        per_try: per_try.map(Duration::from_millis),
        idle: idle.map(Duration::from_millis),
    }
}

/// An upstream that answers after `delay`, and records the request head.
fn slow(
    delay: Duration,
    heads: Arc<Mutex<Vec<Request<()>>>>,
) -> impl tower::Service<
    Request<BoxBody>,
    Response = Response<Proxied<BoxBody>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Proxied<BoxBody>>, Infallible>>,
> + Clone {
    service_fn(move |req: Request<BoxBody>| {
        heads.lock().unwrap().push(req.map(|_| ()));
        async move {
            sleep(delay).await;
            Ok::<_, Infallible>(Response::new(Proxied::from(full("done"))))
        }
    })
}

fn grpc_request() -> Request<BoxBody> {
    Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .body(empty())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_request_timeout_answers_504_when_the_response_is_late() {
    let heads = Arc::default();
    let svc = RequestTimeoutLayer::new(timeouts(Some(1000), None, None))
        .layer(slow(Duration::from_secs(5), heads));
    let start = Instant::now();
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.headers()[MESH_ERROR], "request timed out");
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_caller_gets_deadline_exceeded() {
    let heads = Arc::default();
    let svc = RequestTimeoutLayer::new(timeouts(Some(1000), None, None))
        .layer(slow(Duration::from_secs(5), heads));
    let res = svc.oneshot(grpc_request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "4");
}

#[tokio::test(start_paused = true)]
async fn no_timeout_is_applied_by_default() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let svc = RequestTimeoutLayer::new(Timeouts::default())
        .layer(slow(Duration::from_secs(3600), heads.clone()));
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let heads = heads.lock().unwrap();
    assert!(heads[0].extensions().get::<Deadline>().is_none());
    assert!(!heads[0].headers().contains_key(MESH_DEADLINE));
}

#[tokio::test(start_paused = true)]
async fn the_callers_grpc_timeout_is_honoured_and_passed_on() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let svc = RequestTimeoutLayer::new(Timeouts::default())
        .layer(slow(Duration::from_secs(5), heads.clone()));
    let mut req = grpc_request();
    req.headers_mut()
        .insert(GRPC_TIMEOUT, "300m".parse().unwrap());
    let start = Instant::now();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(res.headers()["grpc-status"], "4");
    assert_eq!(heads.lock().unwrap()[0].headers()[GRPC_TIMEOUT], "300000u");
}

#[tokio::test(start_paused = true)]
async fn the_nearest_deadline_is_inserted_and_propagated() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let svc = RequestTimeoutLayer::new(timeouts(Some(10_000), None, None))
        .layer(slow(Duration::ZERO, heads.clone()));
    let mut req = Request::new(empty());
    req.headers_mut()
        .insert(MESH_DEADLINE, "4000".parse().unwrap());
    let start = Instant::now();
    svc.oneshot(req).await.unwrap();
    let heads = heads.lock().unwrap();
    assert_eq!(heads[0].headers()[MESH_DEADLINE], "4000");
    let deadline = heads[0].extensions().get::<Deadline>().unwrap();
    assert_eq!(deadline.instant(), start + Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn the_per_try_timeout_answers_with_a_timeout_the_retry_layer_recognizes() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let svc = AttemptTimeoutLayer::new(timeouts(None, Some(200), None))
        .layer(slow(Duration::from_secs(5), heads.clone()));
    let mut req = Request::new(empty());
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_secs(1)));
    let start = Instant::now();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        res.extensions().get::<ProxyErrorKind>(),
        Some(&ProxyErrorKind::Timeout)
    );
    // The upstream is told the attempt's 200 ms, nearer than the 1 s left.
    assert_eq!(heads.lock().unwrap()[0].headers()[MESH_DEADLINE], "200");
}

#[tokio::test(start_paused = true)]
async fn the_per_try_timeout_passes_on_a_nearer_request_deadline() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let svc = AttemptTimeoutLayer::new(timeouts(None, Some(2000), None))
        .layer(slow(Duration::ZERO, heads.clone()));
    let mut req = Request::new(empty());
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(750)));
    svc.oneshot(req).await.unwrap();
    assert_eq!(heads.lock().unwrap()[0].headers()[MESH_DEADLINE], "750");
}

/// A response body that sends "a", waits `gap`, sends "b", then ends.
fn gappy(gap: Duration) -> BoxBody {
    let frames = futures_util::stream::unfold(0, move |step| async move {
        match step {
            0 => Some((Ok::<_, BoxError>(Frame::data(Bytes::from("a"))), 1)),
            1 => {
                sleep(gap).await;
                Some((Ok(Frame::data(Bytes::from("b"))), 2))
            }
            _ => None,
        }
    });
    boxed(StreamBody::new(frames))
}

async fn body_with_gap(
    t: Timeouts,
    gap: Duration,
    req: Request<BoxBody>,
) -> Response<TimeoutBody<BoxBody>> {
    let svc =
        RequestTimeoutLayer::new(t).layer(service_fn(move |_: Request<BoxBody>| async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .body(gappy(gap))
                    .unwrap(),
            )
        }));
    svc.oneshot(req).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_covers_the_response_body() {
    let res = body_with_gap(
        timeouts(Some(1000), None, None),
        Duration::from_secs(5),
        Request::new(empty()),
    )
    .await;
    let mut body = std::pin::pin!(res.into_body());
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "a"
    );
    let err = body.frame().await.unwrap().unwrap_err();
    let elapsed = err.downcast_ref::<Elapsed>().unwrap();
    assert_eq!(elapsed.timeout(), error::Timeout::Request);
    assert_eq!(
        mesh_core::classify::ErrorKind::of(&*err),
        mesh_core::classify::ErrorKind::Timeout
    );
    assert!(body.frame().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_grpc_stream_past_its_deadline_ends_with_deadline_exceeded_trailers() {
    let res = body_with_gap(
        timeouts(Some(1000), None, None),
        Duration::from_secs(5),
        grpc_request(),
    )
    .await;
    let collected = res.into_body().collect().await.unwrap();
    let trailers: &HeaderMap = collected.trailers().unwrap();
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(collected.to_bytes(), "a");
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_cuts_a_body_that_stalls_and_spares_one_that_flows() {
    let res = body_with_gap(
        timeouts(None, None, Some(500)),
        Duration::from_secs(1),
        Request::new(empty()),
    )
    .await;
    let err = res.into_body().collect().await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<Elapsed>().unwrap().timeout(),
        error::Timeout::Idle
    );

    let res = body_with_gap(
        timeouts(None, None, Some(500)),
        Duration::from_millis(400),
        Request::new(empty()),
    )
    .await;
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ab");
}

/// A timeout an `Instant` cannot reach. Configuration refuses durations
/// past Go's longest (about 292 years), but timeouts built in code may
/// say anything.
fn unreachable_timeout() -> Duration {
    let far = Duration::MAX;
    assert!(Instant::now().checked_add(far).is_none());
    far
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_for_the_clock_is_no_timeout_rather_than_a_panic() {
    let far = unreachable_timeout();
    let t = Timeouts {
        request: Some(far),
        per_try: None,
        idle: Some(far),
    };
    // The body waits between its frames, so the idle timer is armed.
    let res = body_with_gap(t, Duration::from_secs(30), Request::new(empty())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.to_bytes(), "ab");

    let deadline = Deadline::after(far);
    assert!(deadline.remaining() > Duration::from_secs(86_400 * 365));
}

/// A response whose body always has its next frame ready: 100 chunks, from
/// an upstream that is faster than its reader.
async fn ready_chunks(t: Timeouts, req: Request<BoxBody>) -> Response<TimeoutBody<BoxBody>> {
    let svc = RequestTimeoutLayer::new(t).layer(service_fn(|_: Request<BoxBody>| async {
        let frames = (0..100).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from("chunk"))));
        let body = boxed(StreamBody::new(futures_util::stream::iter(frames)));
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/grpc")
                .body(body)
                .unwrap(),
        )
    }));
    svc.oneshot(req).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_cuts_a_body_its_reader_is_slow_to_read() {
    let res = ready_chunks(timeouts(Some(1000), None, None), Request::new(empty())).await;
    let mut body = std::pin::pin!(res.into_body());
    let start = Instant::now();
    let mut chunks = 0;
    let err = loop {
        match body.frame().await.unwrap() {
            Ok(_) => chunks += 1,
            Err(err) => break err,
        }
        // The reader takes 100 ms over each chunk.
        sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        err.downcast_ref::<Elapsed>().unwrap().timeout(),
        error::Timeout::Request
    );
    assert_eq!(chunks, 10, "the chunks read before the deadline");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(body.frame().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_slow_read_grpc_stream_past_its_deadline_ends_with_deadline_exceeded() {
    let res = ready_chunks(timeouts(Some(1000), None, None), grpc_request()).await;
    let mut body = std::pin::pin!(res.into_body());
    let mut chunks = 0;
    let trailers = loop {
        let frame = body.frame().await.unwrap().unwrap();
        match frame.into_trailers() {
            Ok(trailers) => break trailers,
            Err(_) => chunks += 1,
        }
        sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(chunks, 10);
}

#[tokio::test(start_paused = true)]
async fn a_body_read_at_once_within_its_deadline_is_whole() {
    let res = ready_chunks(timeouts(Some(1000), None, None), Request::new(empty())).await;
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.len(), 500);
}

#[tokio::test(start_paused = true)]
async fn the_trailers_that_end_a_slow_read_grpc_stream_are_not_replaced() {
    let svc = RequestTimeoutLayer::new(timeouts(Some(1000), None, None)).layer(service_fn(
        |_: Request<BoxBody>| async {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let frames = [
                Ok::<_, BoxError>(Frame::data(Bytes::from("message"))),
                Ok(Frame::trailers(trailers)),
            ];
            // A stream body never says it has ended before it returns `None`.
            let body = boxed(StreamBody::new(futures_util::stream::iter(frames)));
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .body(body)
                    .unwrap(),
            )
        },
    ));
    let res = svc.oneshot(grpc_request()).await.unwrap();
    let mut body = std::pin::pin!(res.into_body());
    body.frame().await.unwrap().unwrap();
    sleep(Duration::from_secs(2)).await;
    let trailers = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(
        trailers["grpc-status"], "0",
        "the upstream's status, complete"
    );
}

#[tokio::test(start_paused = true)]
async fn the_per_try_timeout_does_not_lengthen_the_deadline_the_caller_sent() {
    // No request timeout layer outside: the caller's own header is all
    // there is of its deadline.
    let heads = Arc::new(Mutex::new(Vec::new()));
    let svc = AttemptTimeoutLayer::new(timeouts(None, Some(2000), None))
        .layer(slow(Duration::ZERO, heads.clone()));
    let mut req = grpc_request();
    req.headers_mut()
        .insert(GRPC_TIMEOUT, "100m".parse().unwrap());
    svc.clone().oneshot(req).await.unwrap();
    let mut req = Request::new(empty());
    req.headers_mut()
        .insert(MESH_DEADLINE, "750".parse().unwrap());
    svc.clone().oneshot(req).await.unwrap();
    // A caller with more time than the attempt is told the attempt's.
    let mut req = Request::new(empty());
    req.headers_mut()
        .insert(MESH_DEADLINE, "5000".parse().unwrap());
    svc.oneshot(req).await.unwrap();
    let heads = heads.lock().unwrap();
    assert_eq!(heads[0].headers()[GRPC_TIMEOUT], "100000u");
    assert_eq!(heads[1].headers()[MESH_DEADLINE], "750");
    assert_eq!(heads[2].headers()[MESH_DEADLINE], "2000");
}
