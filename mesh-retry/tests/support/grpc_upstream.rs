//! A gRPC upstream for the trailers retry tests: an HTTP/2 (and
//! HTTP/1.1) server on 127.0.0.1 that answers each attempt as told, with a
//! head and then trailers, a message and trailers, or a message held back;
//! and the calls, budget, policy and readings those tests share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
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
use mesh_core::body::{BoxBody, full};
use mesh_retry::{Backoff, Budget, BudgetConfig, RetryPolicy};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

/// What the upstream answers an attempt with.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    /// The head, then trailers with this `grpc-status` (and `x-t: 1`).
    Trailers(&'static str),
    /// The head, a message, then trailers with this `grpc-status`.
    DataThenTrailers(&'static str),
    /// The head, then a message only once `release` is notified.
    Held,
}

/// A gRPC message: a 5-byte prefix and its payload.
pub(crate) const MESSAGE: &[u8] = b"\x00\x00\x00\x00\x05hello";

pub(crate) fn trailers(status: &'static str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    trailers.insert("x-t", HeaderValue::from_static("1"));
    trailers
}

/// The body of `answer`; `release` lets a held message go.
pub(crate) fn body(answer: Answer, release: Arc<Notify>) -> UnsyncBoxBody<Bytes, Infallible> {
    let frames = stream::unfold(0, move |i| {
        let release = release.clone();
        async move {
            let frame = match (answer, i) {
                (Answer::Trailers(status), 0) => Frame::trailers(trailers(status)),
                (Answer::DataThenTrailers(_), 0) => Frame::data(Bytes::from_static(MESSAGE)),
                (Answer::DataThenTrailers(status), 1) => Frame::trailers(trailers(status)),
                (Answer::Held, 0) => {
                    release.notified().await;
                    Frame::data(Bytes::from_static(b"late"))
                }
                _ => return None,
            };
            Some((Ok::<_, Infallible>(frame), i + 1))
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// The upstream's address, how many attempts it has answered, and what
/// releases a held message.
pub(crate) struct Upstream {
    pub(crate) addr: std::net::SocketAddr,
    calls: Arc<Mutex<usize>>,
    pub(crate) release: Arc<Notify>,
}

impl Upstream {
    pub(crate) fn calls(&self) -> usize {
        *self.calls.lock().unwrap()
    }
}

/// An HTTP/2 server answering attempt `i` with `answers[i]` (the last
/// repeats), as a gRPC server or, with `grpc` false, a plain one.
pub(crate) async fn upstream(answers: &'static [Answer], grpc: bool) -> Upstream {
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

pub(crate) fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ))
}

/// A route that retries the default gRPC codes, and its calls, at once.
pub(crate) fn grpc_route() -> RetryPolicy {
    RetryPolicy::default()
        .with_grpc_requests(true)
        .with_backoff(Backoff::none())
}

/// The value of `name`'s counter for the route `svc`/`route`.
pub(crate) fn counter(registry: &Registry, name: &str) -> u64 {
    super::retrying::count(registry, name, "")
}

/// A call to `upstream`, a gRPC one when `grpc`.
pub(crate) fn call(upstream: &Upstream, grpc: bool) -> Request<BoxBody> {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("http://{}/pkg.Svc/Call", upstream.addr))
        .version(Version::HTTP_2);
    if grpc {
        req = req.header("content-type", "application/grpc");
    }
    req.body(full("request")).unwrap()
}

/// The whole body of `res`, and its trailers.
pub(crate) async fn read<B>(res: Response<B>) -> (Bytes, Option<HeaderMap>)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

/// Asserts that `res` has no message and the trailers with `status` (and
/// `x-t: 1`) that the upstream sent and the retry read for its decision.
pub(crate) async fn assert_the_trailers_read<B>(res: Response<B>, status: &str)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (data, trailers) = read(res).await;
    assert!(data.is_empty());
    let trailers = trailers.expect("the trailers read for the decision");
    assert_eq!(trailers["grpc-status"], status);
    assert_eq!(trailers["x-t"], "1");
}
