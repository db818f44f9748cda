//! A retryable ServiceProfile route judges a gRPC response by its
//! `responseClasses` before its `grpc-status`, as its metrics do and as
//! linkerd2-proxy's profile retries do (their `isRetryable` policy asks the
//! route's profile classifier, which tries the classes on the response
//! head first): a status a class calls a success is not retried whatever
//! the `grpc-status`, one a class calls a failure is retried even with
//! `grpc-status: 0`, and a status no class matches is left to the
//! `grpc-status` as on a route without classes. Real HTTP/2 over sockets
//! on 127.0.0.1, through mesh-core's pooled client and the route stack the
//! sidecar builds, which reads a gRPC answer's trailers right after its
//! head.

use std::{
    collections::HashMap,
    convert::Infallible,
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
use mesh_core::body::{BoxBody, full};
use mesh_retry::{Budget, ServiceRetryPolicy, config};
use tower::{Layer, ServiceExt};

use crate::support;

/// A profile of three retryable gRPC routes: `Ok` calls a `2xx` a
/// success, `Fail` calls a `5xx` a failure, and `Plain` has no classes.
const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: books.shop.svc.cluster.local, namespace: shop}
spec:
  routes:
  - name: ok
    condition: {method: POST, pathRegex: /pkg\\.Svc/Ok}
    isRetryable: true
    responseClasses:
    - condition: {status: {min: 200, max: 299}}
      isFailure: false
  - name: fail
    condition: {method: POST, pathRegex: /pkg\\.Svc/Fail}
    isRetryable: true
    responseClasses:
    - condition: {status: {min: 500, max: 599}}
      isFailure: true
  - name: plain
    condition: {method: POST, pathRegex: /pkg\\.Svc/Plain}
    isRetryable: true
";

/// How the upstream answers a call's first attempt: the HTTP status, and
/// the `grpc-status`, in the head (trailers-only) or in the trailers.
#[derive(Clone, Copy, Debug)]
enum First {
    Head(u16, &'static str),
    Trailers(u16, &'static str),
}

/// A gRPC upstream answering the first attempt of each call (by its
/// `x-call` header) as the call's `x-first` header says, and every later
/// one `200` with `grpc-status: 0` in the head; and its attempts by call.
async fn upstream() -> (std::net::SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
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
                        let (status, grpc, in_head) = match first.split(' ').collect::<Vec<_>>()[..]
                        {
                            _ if n > 1 => ("200", "0", true),
                            [status, grpc, "head"] => (status, grpc, true),
                            [status, grpc, "trailers"] => (status, grpc, false),
                            _ => panic!("x-first: {first}"),
                        };
                        let mut trailers = HeaderMap::new();
                        let grpc = HeaderValue::from_str(grpc).unwrap();
                        let frames = if in_head {
                            Vec::new()
                        } else {
                            trailers.insert("grpc-status", grpc.clone());
                            vec![Ok::<_, Infallible>(Frame::<Bytes>::trailers(trailers))]
                        };
                        let mut res =
                            Response::new(BodyExt::boxed(StreamBody::new(stream::iter(frames))));
                        *res.status_mut() = status.parse().unwrap();
                        let headers = res.headers_mut();
                        headers
                            .insert("content-type", HeaderValue::from_static("application/grpc"));
                        if in_head {
                            headers.insert("grpc-status", grpc);
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

fn books() -> ServiceRetryPolicy {
    let loaded = config::load("profile.yaml", PROFILE).unwrap();
    loaded.service("books", Some("shop")).unwrap().clone()
}

/// A gRPC call of `method` to `addr`, named `call`, first answered as
/// `first` says.
fn grpc_call(
    addr: std::net::SocketAddr,
    method: &str,
    call: &str,
    first: First,
) -> Request<BoxBody> {
    let first = match first {
        First::Head(status, grpc) => format!("{status} {grpc} head"),
        First::Trailers(status, grpc) => format!("{status} {grpc} trailers"),
    };
    Request::post(format!("http://{addr}/pkg.Svc/{method}"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-call", call)
        .header("x-first", first)
        .body(full("request"))
        .unwrap()
}

/// Sends the call on its route's stack, as the sidecar builds it (its
/// trailers read right after its head), with the service's budget; returns
/// the answer's status and `grpc-status` (head or trailers) and how many
/// attempts the upstream saw.
async fn send(
    books: &ServiceRetryPolicy,
    budget: &Arc<Budget>,
    upstream: &(std::net::SocketAddr, Arc<Mutex<HashMap<String, usize>>>),
    method: &str,
    call: &str,
    first: First,
) -> (StatusCode, String, usize) {
    let req = grpc_call(upstream.0, method, call, first);
    let route = books.route_for(&req).unwrap();
    let svc = route
        .layer(budget.clone())
        .peek_grpc_trailers()
        .layer(support::client());
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

#[tokio::test]
async fn a_status_a_class_calls_a_success_is_not_retried_whatever_its_grpc_status() {
    let books = books();
    let budget = Arc::new(Budget::new(books.budget));
    let upstream = upstream().await;
    let ok = StatusCode::OK;
    // Trailers-only `INTERNAL` and `UNAVAILABLE`, both codes the route
    // retries: a `200` its class calls a success is answered as it is.
    for (call, grpc) in [("internal", "13"), ("unavailable", "14")] {
        let first = First::Head(200, grpc);
        let got = send(&books, &budget, &upstream, "Ok", call, first).await;
        assert_eq!(got, (ok, grpc.to_owned(), 1), "{call}");
    }
    // In the trailers, read right after the head: the head's status
    // decided already.
    let first = First::Trailers(200, "14");
    let got = send(&books, &budget, &upstream, "Ok", "trailers", first).await;
    assert_eq!(got, (ok, "14".to_owned(), 1));
    // The same answers on the route without classes: the grpc-status
    // decides, and a retry fixes them.
    for (call, first) in [
        ("plain-internal", First::Head(200, "13")),
        ("plain-trailers", First::Trailers(200, "14")),
    ] {
        let got = send(&books, &budget, &upstream, "Plain", call, first).await;
        assert_eq!(got, (ok, "0".to_owned(), 2), "{call}");
    }
}

#[tokio::test]
async fn a_status_a_class_calls_a_failure_is_retried_even_with_grpc_status_ok() {
    let books = books();
    let budget = Arc::new(Budget::new(books.budget));
    let upstream = upstream().await;
    let first = First::Head(500, "0");
    let got = send(&books, &budget, &upstream, "Fail", "fail", first).await;
    assert_eq!(got, (StatusCode::OK, "0".to_owned(), 2));
    // Without classes, `grpc-status: 0` decides: a success, not retried.
    let got = send(&books, &budget, &upstream, "Plain", "plain", first).await;
    assert_eq!(got, (StatusCode::INTERNAL_SERVER_ERROR, "0".to_owned(), 1));
}

#[tokio::test]
async fn a_status_no_class_matches_is_left_to_the_grpc_status() {
    let books = books();
    let budget = Arc::new(Budget::new(books.budget));
    let upstream = upstream().await;
    // The `Ok` route's class does not match a 503: its `UNAVAILABLE` is
    // retried, as on a route without classes.
    let first = First::Head(503, "14");
    let got = send(&books, &budget, &upstream, "Ok", "unmatched", first).await;
    assert_eq!(got, (StatusCode::OK, "0".to_owned(), 2));
    // Nor a 200 the `Fail` route's: its `OK` is a success.
    let first = First::Head(200, "0");
    let got = send(&books, &budget, &upstream, "Fail", "fine", first).await;
    assert_eq!(got, (StatusCode::OK, "0".to_owned(), 1));
}
