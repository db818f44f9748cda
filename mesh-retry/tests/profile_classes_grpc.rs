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

use std::sync::Arc;

use http::StatusCode;
use mesh_retry::{Budget, ServiceRetryPolicy};

use crate::support::profile_upstream::{self, Upstream};

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

impl First {
    /// The upstream's `x-first` for it.
    fn header(self) -> String {
        match self {
            First::Head(status, grpc) => format!("{status} {grpc} head"),
            First::Trailers(status, grpc) => format!("{status} {grpc} trailers"),
        }
    }
}

fn books() -> ServiceRetryPolicy {
    profile_upstream::books(PROFILE)
}

async fn upstream() -> Upstream {
    profile_upstream::upstream().await
}

/// Sends the call on its route's stack, as the sidecar builds it; returns
/// the answer's status and `grpc-status` and how many attempts the
/// upstream saw.
async fn send(
    books: &ServiceRetryPolicy,
    budget: &Arc<Budget>,
    upstream: &Upstream,
    method: &str,
    call: &str,
    first: First,
) -> (StatusCode, String, usize) {
    profile_upstream::send(books, budget, upstream, method, call, &first.header()).await
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
