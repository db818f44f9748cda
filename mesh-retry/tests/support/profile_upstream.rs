//! A gRPC upstream for the ServiceProfile route tests: it answers the
//! first attempt of each call as the call itself asks, every later one
//! with success, and counts each call's attempts; and the call sent on a
//! profile route's stack as the sidecar builds it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::body::full;
use mesh_retry::{Budget, ServiceRetryPolicy, config};
use tower::{Layer, ServiceExt};

/// Each call's attempts, by its `x-call` header.
pub(crate) type Attempts = Arc<Mutex<HashMap<String, usize>>>;

/// The upstream's address and the attempts it has seen.
pub(crate) type Upstream = (SocketAddr, Attempts);

/// A gRPC upstream answering a call's first attempt as its `x-first`
/// header says (`<status> <grpc-status> head|trailers`, the `grpc-status`
/// in a trailers-only head or in the trailers, or `<status> plain` for an
/// answer that is not gRPC), and every later one `200` with
/// `grpc-status: 0` in the head.
pub(crate) async fn upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts: Attempts = Arc::default();
    let seen = attempts.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let header = |name: &str| req.headers()[name].to_str().unwrap().to_owned();
                        let (call, first) = (header("x-call"), header("x-first"));
                        req.into_body().collect().await.unwrap();
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            let n = seen.entry(call).or_default();
                            *n += 1;
                            *n
                        };
                        let words: Vec<&str> = first.split(' ').collect();
                        let (status, grpc, place) = match words[..] {
                            _ if n > 1 => ("200", "0", "head"),
                            [status, "plain"] => (status, "", "plain"),
                            [status, grpc, place @ ("head" | "trailers")] => (status, grpc, place),
                            _ => panic!("x-first: {first}"),
                        };
                        let mut frames = Vec::new();
                        if place == "trailers" {
                            let mut trailers = HeaderMap::new();
                            trailers.insert("grpc-status", HeaderValue::from_str(grpc).unwrap());
                            frames.push(Ok::<_, Infallible>(Frame::<Bytes>::trailers(trailers)));
                        }
                        let mut res =
                            Response::new(BodyExt::boxed(StreamBody::new(stream::iter(frames))));
                        *res.status_mut() = status.parse().unwrap();
                        let headers = res.headers_mut();
                        if place != "plain" {
                            headers.insert(
                                "content-type",
                                HeaderValue::from_static("application/grpc"),
                            );
                        }
                        if place == "head" {
                            headers.insert("grpc-status", HeaderValue::from_str(grpc).unwrap());
                        }
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, attempts)
}

/// The service `books` in namespace `shop` of the ServiceProfile `profile`.
pub(crate) fn books(profile: &str) -> ServiceRetryPolicy {
    let loaded = config::load("profile.yaml", profile).unwrap();
    loaded.service("books", Some("shop")).unwrap().clone()
}

/// Sends a gRPC call named `call` on `method`'s route of `books`, as the
/// sidecar's stack does (trailers read right after the head), with the
/// service's budget, first answered as `first` says (the upstream's
/// `x-first`); returns the answer's status and `grpc-status` (head, else
/// trailers; empty without one) and how many attempts the upstream saw.
pub(crate) async fn send(
    books: &ServiceRetryPolicy,
    budget: &Arc<Budget>,
    upstream: &Upstream,
    method: &str,
    call: &str,
    first: &str,
) -> (StatusCode, String, usize) {
    let req = Request::post(format!("http://{}/pkg.Svc/{method}", upstream.0))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-call", call)
        .header("x-first", first)
        .body(full("request"))
        .unwrap();
    let route = books.route_for(&req).unwrap();
    let svc = route
        .layer(budget.clone())
        .peek_grpc_trailers()
        .layer(super::client());
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let head = res.headers().get("grpc-status").cloned();
    let collected = res.into_body().collect().await.unwrap();
    let grpc = head
        .or_else(|| collected.trailers()?.get("grpc-status").cloned())
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let attempts = upstream.1.lock().unwrap()[call];
    (status, grpc, attempts)
}
