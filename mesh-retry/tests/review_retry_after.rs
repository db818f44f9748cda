//! `Retry-After` in both of its forms, through the layers on tokio's paused
//! clock: waited out up to the backoff's maximum, and never past the
//! request's deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::{Request, Response, StatusCode, header::RETRY_AFTER};
use mesh_core::body::{BoxBody, Proxied, empty, full};
use mesh_retry::{
    Backoff, Budget, RequestTimeoutLayer, RetryLayer, RetryMetrics, RetryPolicy, Timeouts,
    replay::ReplayBody,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};

/// An upstream whose first answer is a 503 with `Retry-After: value`, and
/// every later one a 200; and its count of calls.
type Upstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<BoxBody>>, Infallible>;

fn busy_once(value: String) -> (Upstream, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let svc = service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        let first = counted.fetch_add(1, Ordering::Relaxed) == 0;
        let value = value.clone();
        async move {
            let mut res = Response::new(Proxied::from(full("reply")));
            if first {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                res.headers_mut()
                    .insert(RETRY_AFTER, value.parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    });
    (BoxCloneService::new(svc), calls)
}

fn policy(max: Duration) -> RetryPolicy {
    RetryPolicy::default().with_backoff(Backoff::new(Duration::from_millis(1), max).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_date_is_waited_out() {
    // Two seconds ahead by the system clock, to the second: a wait of
    // more than one second and at most two.
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let (upstream, calls) = busy_once(date);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            policy(Duration::from_secs(10)),
            Arc::new(Budget::default()),
        ))
        .service(upstream);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert!(
        waited > Duration::from_secs(1) && waited <= Duration::from_secs(2),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_in_seconds_is_capped_at_the_backoffs_maximum() {
    let (upstream, calls) = busy_once("3600".into());
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            policy(Duration::from_secs(2)),
            Arc::new(Budget::default()),
        ))
        .service(upstream);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_returns_the_503_at_once() {
    let (upstream, calls) = busy_once("120".into());
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(5)),
        ..Timeouts::default()
    };
    let svc = ServiceBuilder::new()
        .layer(RequestTimeoutLayer::new(timeouts))
        .layer(
            RetryLayer::new(policy(Duration::from_secs(60)), Arc::new(Budget::default()))
                .with_metrics(metrics.route("svc", "route")),
        )
        .service(upstream);
    let start = Instant::now();
    let res = svc.oneshot(Request::new(empty())).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the upstream's"
    );
    assert_eq!(res.headers()[RETRY_AFTER], "120");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no wait for a retry never sent"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("retry_deadline_exceeded_total{service=\"svc\",route=\"route\"} 1"),
        "{text}"
    );
}
