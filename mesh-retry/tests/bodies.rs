//! Request bodies across retries, over real sockets and a real client.
//!
//! The policies here have no backoff, so no test waits on a timer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mesh_core::{
    BoxError,
    body::{BoxBody, boxed},
};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryLayer, RetryMetrics, RetryPolicy, retry::MESH_RETRY_ATTEMPT,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::{Seen, Upstreams, client, recording, send};
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};

struct Stack {
    svc: tower::util::BoxCloneService<
        Request<BoxBody>,
        http::Response<mesh_core::body::Proxied<hyper::body::Incoming>>,
        BoxError,
    >,
    registry: Registry,
}

fn stack(upstreams: Upstreams) -> Stack {
    stack_with(RetryPolicy::default(), upstreams)
}

fn stack_with(policy: RetryPolicy, upstreams: Upstreams) -> Stack {
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let budget = Arc::new(Budget::new(
        BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
    ));
    let policy = policy.with_backoff(Backoff::none());
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy, budget).with_metrics(metrics.route("svc", "route")))
        .service(upstreams);
    Stack {
        svc: tower::util::BoxCloneService::new(svc),
        registry,
    }
}

impl Stack {
    fn not_retryable(&self, reason: &str) -> u64 {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        let prefix = format!(
            "retry_not_retryable_total{{service=\"svc\",route=\"route\",reason=\"{reason}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.parse().unwrap())
    }
}

/// A body of `chunks`, then `trailers`, sent as a stream with no length.
fn streamed(chunks: Vec<Bytes>, trailers: Option<HeaderMap>) -> BoxBody {
    let frames = chunks
        .into_iter()
        .map(Frame::data)
        .chain(trailers.map(Frame::trailers))
        .map(Ok::<_, BoxError>);
    boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

fn fail_first(index: usize, _: &Seen) -> StatusCode {
    if index == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

#[tokio::test]
async fn a_10_kib_body_arrives_byte_identical_on_the_retry() {
    let upstream = recording(fail_first).await;
    let stack = stack(client());
    let body = payload(10 * 1024);
    let chunks = body.chunks(1000).map(Bytes::copy_from_slice).collect();
    let req = Request::put(upstream.uri("/doc"))
        .body(streamed(chunks, None))
        .unwrap();
    let (status, _, _) = send(&stack.svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, body);
    assert_eq!(
        seen[1].body, body,
        "the retry sends the same bytes, once each"
    );
    assert_eq!(seen[1].headers[MESH_RETRY_ATTEMPT], "2");
}

#[tokio::test]
async fn trailers_are_replayed_over_http2() {
    let upstream = recording(fail_first).await;
    let stack = stack(client());
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "1234".parse().unwrap());
    let req = Request::put(upstream.uri("/doc"))
        .version(Version::HTTP_2)
        .body(streamed(
            vec![Bytes::from("part one, "), Bytes::from("part two")],
            Some(trailers.clone()),
        ))
        .unwrap();
    let (status, _, _) = send(&stack.svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    for attempt in &seen {
        assert_eq!(attempt.body, "part one, part two");
        assert_eq!(attempt.trailers.as_ref(), Some(&trailers));
    }
}

#[tokio::test]
async fn a_1_mib_streaming_body_is_committed_and_never_retried() {
    let upstream = recording(|_, _| StatusCode::SERVICE_UNAVAILABLE).await;
    // Marked retryable, so only the body stops the retry.
    let stack = stack_with(RetryPolicy::default().with_any_method(true), client());
    let body = payload(1024 * 1024);
    let chunks = body.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
    let req = Request::post(upstream.uri("/upload"))
        .body(streamed(chunks, None))
        .unwrap();
    let (status, _, _) = send(&stack.svc, req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "never retried");
    assert_eq!(seen[0].body, body, "and the one attempt got every byte");
    assert_eq!(stack.not_retryable("committed"), 1);
}

#[tokio::test]
async fn an_outgrown_body_is_counted_as_committed() {
    let upstream = recording(|_, _| StatusCode::BAD_GATEWAY).await;
    let stack = stack(client());
    let chunks = (0..8).map(|_| payload(16 * 1024)).collect();
    let req = Request::put(upstream.uri("/upload"))
        .body(streamed(chunks, None))
        .unwrap();
    let (status, _, _) = send(&stack.svc, req).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "the last real response");
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(upstream.seen()[0].body.len(), 128 * 1024);
    assert_eq!(stack.not_retryable("committed"), 1);
}

#[tokio::test]
async fn a_known_length_over_the_cap_is_sent_once_and_counted() {
    let upstream = recording(|_, _| StatusCode::SERVICE_UNAVAILABLE).await;
    let stack = stack(client());
    let req = Request::put(upstream.uri("/upload"))
        .body(mesh_core::body::full(payload(100 * 1024)))
        .unwrap();
    let (status, _, _) = send(&stack.svc, req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(upstream.seen()[0].headers["content-length"], "102400");
    assert_eq!(stack.not_retryable("body_too_large"), 1);
}

#[tokio::test]
async fn a_response_that_comes_before_the_body_ends_is_not_retried() {
    // The upstream answers 503 at once, without reading the body.
    let addr = support::serve(|_req| {
        Box::pin(async {
            let mut res = http::Response::new(http_body_util::Full::new(Bytes::from("busy")));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res
        })
    })
    .await;
    let stack = stack(client());
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    tx.send(Ok(Frame::data(Bytes::from("first chunk"))))
        .await
        .unwrap();
    let body = boxed(StreamBody::new(tokio_stream(rx)));
    let req = Request::put(format!("http://{addr}/slow"))
        .version(Version::HTTP_2)
        .body(body)
        .unwrap();
    let res = stack.svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stack.not_retryable("streaming_response"), 1);
    drop(tx);
    let _ = res.into_body().collect().await;
}

/// A stream of what `rx` receives.
fn tokio_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}

#[tokio::test]
async fn a_connection_closed_before_any_response_is_retried() {
    // The first connection is closed unanswered; later ones are served.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let served = seen.clone();
    tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        drop(first);
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let served = served.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let attempt = req.headers().get(MESH_RETRY_ATTEMPT).cloned();
                    served.lock().unwrap().push(attempt);
                    async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from("ok")),
                        ))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
            });
        }
    });
    let stack = stack(client());
    let req = Request::get(format!("http://{addr}/"))
        .body(mesh_core::body::empty())
        .unwrap();
    let (status, _, body) = send(&stack.svc, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok");
    let attempts = seen.lock().unwrap().clone();
    assert_eq!(
        attempts,
        [Some("2".parse().unwrap())],
        "the retry layer made the second attempt"
    );
}

#[tokio::test]
async fn trailers_are_replayed_over_http1() {
    let upstream = recording(fail_first).await;
    let stack = stack(client());
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "1234".parse().unwrap());
    // HTTP/1.1 sends trailers only in a chunked body that declares them.
    let req = Request::put(upstream.uri("/doc"))
        .header("trailer", "x-checksum")
        .body(streamed(
            vec![Bytes::from("part one, "), Bytes::from("part two")],
            Some(trailers.clone()),
        ))
        .unwrap();
    let (status, _, _) = send(&stack.svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    for (i, attempt) in seen.iter().enumerate() {
        assert_eq!(attempt.body, "part one, part two", "attempt {i}");
        assert_eq!(
            attempt.trailers.as_ref(),
            Some(&trailers),
            "attempt {i}: {:?}",
            attempt.headers
        );
    }
}
