//! A retryable ServiceProfile route retries, where none of its classes
//! matches, what Linkerd's profile classifier calls a failure: a
//! `grpc-status` among the default codes of Linkerd's client policy
//! (`UNKNOWN`, `DEADLINE_EXCEEDED`, `PERMISSION_DENIED`, `INTERNAL`,
//! `UNAVAILABLE`, `DATA_LOSS`), not the codes `retry.linkerd.io/grpc`
//! retries by default (`CANCELLED` and `RESOURCE_EXHAUSTED` are not
//! retried), and an answer without a `grpc-status` by its HTTP status.
//! Real HTTP/2 over sockets on 127.0.0.1, through mesh-core's pooled
//! client and the route stack the sidecar builds.

use std::sync::Arc;

use mesh_core::classify::GrpcCodes;
use mesh_retry::{Budget, RetryPolicy, ServiceRetryPolicy};

use crate::support::profile_upstream::{self, Upstream};

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

fn books() -> ServiceRetryPolicy {
    profile_upstream::books(PROFILE)
}

/// Sends a gRPC call named `call` on `method`'s route, first answered as
/// `first` says; returns how many attempts the upstream saw.
async fn attempts(
    books: &ServiceRetryPolicy,
    budget: &Arc<Budget>,
    upstream: &Upstream,
    method: &str,
    call: &str,
    first: &str,
) -> usize {
    profile_upstream::send(books, budget, upstream, method, call, first)
        .await
        .2
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
    let upstream = profile_upstream::upstream().await;
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
    let upstream = profile_upstream::upstream().await;
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
