//! A retryable ServiceProfile route retries, where none of its classes
//! matches, what Linkerd's profile classifier calls a failure: a
//! `grpc-status` among the default codes of Linkerd's client policy
//! (`UNKNOWN`, `DEADLINE_EXCEEDED`, `PERMISSION_DENIED`, `INTERNAL`,
//! `UNAVAILABLE`, `DATA_LOSS`), not the codes `retry.linkerd.io/grpc`
//! retries by default (`CANCELLED` and `RESOURCE_EXHAUSTED` are not
//! retried), and an answer without a `grpc-status` by its HTTP status.
//! Real HTTP/2 over sockets on 127.0.0.1, through mesh-core's pooled
//! client and the route stack the sidecar builds.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::{body::full, classify::GrpcCodes};
use mesh_retry::{Budget, RetryPolicy, ServiceRetryPolicy, config};
use tower::{Layer, ServiceExt};

use crate::support;

/// Two retryable routes: `plain` without classes, `classed` with a class
/// that matches none of the answers below but a 404.
const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: books.shop.svc.cluster.local, namespace: shop}
spec:
  routes:
  - name: plain
    condition: {method: POST, pathRegex: /pkg\\.Svc/Plain}
    isRetryable: true
  - name: classed
    condition: {method: POST, pathRegex: /pkg\\.Svc/Classed}
    isRetryable: true
    responseClasses:
    - condition: {status: {min: 404, max: 404}}
      isFailure: true
";

type Attempts = Arc<Mutex<HashMap<String, usize>>>;

/// A gRPC upstream answering a call's first attempt as its `x-first`
/// header says (`<status> <grpc-status> head|trailers`, or `<status>
/// plain` for an answer that is not gRPC), and every later one `200` with
/// `grpc-status: 0`; and its attempts by `x-call`.
async fn upstream() -> (SocketAddr, Attempts) {
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
                            [status, grpc, place] => (status, grpc, place),
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

fn books() -> ServiceRetryPolicy {
    let loaded = config::load("profile.yaml", PROFILE).unwrap();
    loaded.service("books", Some("shop")).unwrap().clone()
}

/// Sends a gRPC call named `call` on `method`'s route, as the sidecar's
/// stack does (trailers read right after the head), first answered as
/// `first` says; returns how many attempts the upstream saw.
async fn attempts(
    books: &ServiceRetryPolicy,
    budget: &Arc<Budget>,
    upstream: &(SocketAddr, Attempts),
    method: &str,
    call: &str,
    first: &str,
) -> usize {
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
        .layer(support::client());
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    upstream.1.lock().unwrap()[call]
}

#[test]
fn a_retryable_profile_route_retries_linkerds_failure_codes_and_other_routes_keep_theirs() {
    let books = books();
    for route in &books.routes {
        assert_eq!(route.retry.grpc_codes(), GrpcCodes::linkerd_failures());
    }
    assert_eq!(
        RetryPolicy::default().grpc_codes(),
        RetryPolicy::default_grpc_codes()
    );
}

#[tokio::test]
async fn a_grpc_status_no_class_matches_is_retried_when_linkerds_classifier_fails_it() {
    let books = books();
    let budget = Arc::new(Budget::new(books.budget));
    let upstream = upstream().await;
    // (grpc-status, attempts): UNKNOWN, PERMISSION_DENIED and DATA_LOSS
    // are retried; CANCELLED and RESOURCE_EXHAUSTED are not.
    let cases = [("2", 2), ("7", 2), ("15", 2), ("14", 2), ("1", 1), ("8", 1)];
    for method in ["Plain", "Classed"] {
        for (grpc, want) in cases {
            for place in ["head", "trailers"] {
                let call = format!("{method}-{grpc}-{place}");
                let first = format!("200 {grpc} {place}");
                let got = attempts(&books, &budget, &upstream, method, &call, &first).await;
                assert_eq!(got, want, "{call}");
            }
        }
    }
}

#[tokio::test]
async fn an_answer_without_a_grpc_status_is_retried_by_its_http_status() {
    let books = books();
    let budget = Arc::new(Budget::new(books.budget));
    let upstream = upstream().await;
    // Read as its gRPC client reads it, a plain 429 would be UNAVAILABLE
    // and a plain 200 or 403 UNKNOWN or PERMISSION_DENIED, all retried;
    // Linkerd's classifier reads the status on a route with classes: only
    // a 5xx is a failure. (Without classes, Linkerd's calls such an answer
    // a success; here the route without classes reads it as the other.)
    for method in ["Plain", "Classed"] {
        for (status, want) in [("200", 1), ("403", 1), ("429", 1), ("500", 2), ("503", 2)] {
            let call = format!("{method}-{status}-plain");
            let first = format!("{status} plain");
            let got = attempts(&books, &budget, &upstream, method, &call, &first).await;
            assert_eq!(got, want, "{call}");
        }
    }
    // The route's class still decides first: a plain 404 it fails.
    let got = attempts(&books, &budget, &upstream, "Classed", "404", "404 plain").await;
    assert_eq!(got, 2);
}
