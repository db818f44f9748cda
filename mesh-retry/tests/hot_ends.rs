//! A request body whose end arrives on its own, after its data: the empty
//! `DATA` frame with `END_STREAM` that HTTP/2 clients may send last. A
//! client that finds such a body ended sends its end and never polls it
//! again, so the end is never read as a frame; the request was still sent
//! whole, and a failure the upstream answered after reading it is retried.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use mesh_core::{BoxError, body::boxed};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryMetrics, RetryPolicy, RouteStackLayer, Timeouts,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::{Seen, client, recording};
use tower::{Service, ServiceBuilder, ServiceExt};

/// No data; its end is known once `ended` is set.
struct EndsLater {
    ended: Arc<AtomicBool>,
}

impl Body for EndsLater {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended.load(Ordering::SeqCst) {
            Poll::Ready(None)
        } else {
            // Never reached: the end is known before the client looks.
            Poll::Pending
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

fn fail_first(index: usize, _: &Seen) -> StatusCode {
    if index == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

fn counter(registry: &Registry, line: &str) -> u64 {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_body_whose_end_came_before_it_was_sent_is_retried_whole() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let upstream = recording(fail_first).await;
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        let budget = Arc::new(Budget::new(
            BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
        ));
        let policy = RetryPolicy::default().with_backoff(Backoff::none());
        let layer = RouteStackLayer::new(policy, Timeouts::default(), budget)
            .with_metrics(metrics.route("svc", "route"));
        let mut svc = ServiceBuilder::new().layer(layer).service(client());

        let ended = Arc::new(AtomicBool::new(false));
        let body = boxed(EndsLater {
            ended: ended.clone(),
        });
        let req = Request::put(upstream.uri("/doc"))
            .version(version)
            .body(body)
            .unwrap();
        // The route records the body for replay while it has not ended;
        // its end arrives before the client sends the request.
        let fut = svc.ready().await.unwrap().call(req);
        ended.store(true, Ordering::SeqCst);
        let res = fut.await.unwrap();
        let status = res.status();
        let _ = res.into_body().collect().await;

        let seen = upstream.seen();
        assert_eq!(
            counter(
                &registry,
                "retry_not_retryable_total{service=\"svc\",route=\"route\",reason=\"streaming_response\"} "
            ),
            0,
            "{version:?}: the upstream had the whole request when it answered"
        );
        assert_eq!(status, StatusCode::OK, "{version:?}");
        assert_eq!(seen.len(), 2, "{version:?}");
        assert!(seen.iter().all(|s| s.body.is_empty()), "{version:?}");
        assert_eq!(
            counter(
                &registry,
                "retry_requests_total{service=\"svc\",route=\"route\"} "
            ),
            1
        );
    }
}
