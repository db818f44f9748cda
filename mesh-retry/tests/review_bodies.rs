//! A request body that fails while it is sent: the request is not retried,
//! and the caller learns of the failure instead of waiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mesh_core::{BoxError, body::boxed};
use mesh_retry::{Backoff, Budget, BudgetConfig, RetryLayer, RetryMetrics, RetryPolicy};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{ServiceBuilder, ServiceExt};

use crate::support::{self, client};

/// The value of the series of `name` for route `svc/route`, 0 if absent.
fn counter(registry: &Registry, name: &str) -> u64 {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix("{service=\"svc\",route=\"route\"")?
                .rsplit_once(' ')
                .map(|(_, v)| v.parse().unwrap())
        })
        .unwrap_or(0)
}

async fn a_body_that_fails_mid_stream_is_sent_once(version: Version) {
    // The upstream reads each request whole and answers 503, which the
    // policy retries.
    let requests = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(tokio::sync::Notify::new());
    let (counted, notify) = (requests.clone(), arrived.clone());
    let addr = support::serve(move |req| {
        counted.fetch_add(1, Ordering::Relaxed);
        notify.notify_one();
        Box::pin(async move {
            let _ = req.into_body().collect().await;
            let mut res = http::Response::new(http_body_util::Full::new(Bytes::from("busy")));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res
        })
    })
    .await;
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let budget = Arc::new(Budget::new(
        BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
    ));
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy, budget).with_metrics(metrics.route("svc", "route")))
        .service(client());
    // The body fails once the upstream has the request and its first chunk.
    let first = futures_util::stream::iter([Ok(Frame::data(Bytes::from("first chunk, ")))]);
    let then_fail = futures_util::stream::once(async move {
        arrived.notified().await;
        Err::<Frame<Bytes>, BoxError>("the caller's body broke".into())
    });
    let body = boxed(StreamBody::new(first.chain(then_fail)));
    let req = Request::put(format!("http://{addr}/doc"))
        .version(version)
        .body(body)
        .unwrap();
    let error = svc.oneshot(req).await.expect_err("the request failed");
    let chain: Vec<String> =
        std::iter::successors(Some(&*error as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
    if version == Version::HTTP_11 {
        // HTTP/2 resets the stream, and says only that.
        assert!(
            chain.iter().any(|e| e == "the caller's body broke"),
            "{chain:?}"
        );
    }
    assert_eq!(requests.load(Ordering::Relaxed), 1, "sent once");
    assert_eq!(counter(&registry, "retry_requests_total"), 0);
}

#[tokio::test]
async fn a_body_that_fails_mid_stream_is_sent_once_over_http1() {
    a_body_that_fails_mid_stream_is_sent_once(Version::HTTP_11).await;
}

#[tokio::test]
async fn a_body_that_fails_mid_stream_is_sent_once_over_http2() {
    a_body_that_fails_mid_stream_is_sent_once(Version::HTTP_2).await;
}
