//! The service `MetricsLayer` makes fails with the error of the service
//! it wraps, unchanged: one that cannot fail still cannot, and a failure
//! is still counted by its kind.

use std::{convert::Infallible, io};

use http::{Request, Response};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn a_failure_is_passed_on_as_the_inner_service_failed_and_counted_by_its_kind() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        Err::<Response<String>, _>(io::Error::new(io::ErrorKind::TimedOut, "too slow"))
    }));
    let error: io::Error = svc.oneshot(Request::new(())).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert_eq!(error.to_string(), "too slow");
    let text = scrape(&registry);
    assert!(
        text.contains(
            r#"response_total{direction="inbound",classification="failure",error="timeout"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_service_that_cannot_fail_still_cannot() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let result: Result<_, Infallible> = svc.oneshot(Request::new(())).await;
    let Ok(res) = result;
    drop(res);
    let text = scrape(&registry);
    assert!(
        text.contains(
            r#"response_total{direction="inbound",status_code="200",classification="success"} 1"#
        ),
        "{text}"
    );
}
