//! `MetricsLayer` reads its inner service's error in place through
//! `AsDynError`; before, it boxed it into a `BoxError` and read that. Each
//! kind of error must be counted under the same `error` labels either way:
//! failing with the error itself, and failing with a `BoxError` holding it
//! (what the layer read before), give the same series.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{io, net::TcpListener, time::Duration};

use http::{Request, Response};
use mesh_core::{
    client::ClientError,
    error::BoxError,
    proxy::{NoEndpoints, queue::InFailFast},
};
use mesh_metrics::{HttpMetrics, MetricsLayer, http::AsDynError};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

/// The series with an `error` label after one request to each direction's
/// layer over a service that fails with `error()`.
async fn error_series<E>(mut error: impl FnMut() -> E) -> Vec<String>
where
    E: AsDynError + Send + 'static,
{
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    for layer in [
        MetricsLayer::inbound(&metrics),
        MetricsLayer::outbound(&metrics),
    ] {
        let mut once = Some(error());
        let svc = layer.layer(service_fn(move |_: Request<()>| {
            let error = once.take().unwrap();
            async move { Err::<Response<String>, E>(error) }
        }));
        let req = Request::builder()
            .uri("http://web.ns.svc.cluster.local/")
            .body(())
            .unwrap();
        assert!(svc.oneshot(req).await.is_err());
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let mut series: Vec<String> = text
        .lines()
        .filter(|l| l.contains("error=\""))
        .map(str::to_owned)
        .collect();
    series.sort();
    assert!(!series.is_empty(), "{text}");
    series
}

/// The series one failed request to each direction gives, under
/// `errors` in the error families and `response` in `response_total`.
fn series(errors: &str, response: &str) -> Vec<String> {
    let mut series: Vec<String> = ["inbound", "outbound"]
        .into_iter()
        .flat_map(|d| {
            [
                format!("{d}_http_errors_total{{error=\"{errors}\"}} 1"),
                format!(
                    "response_total{{direction=\"{d}\",classification=\"failure\",error=\"{response}\"}} 1"
                ),
            ]
        })
        .collect();
    series.sort();
    series
}

async fn same_as_boxed<E>(mut error: impl FnMut() -> E, label: &str)
where
    E: AsDynError + std::error::Error + Send + Sync + 'static,
{
    let own = error_series(&mut error).await;
    let boxed = error_series(|| -> BoxError { Box::new(error()) }).await;
    assert_eq!(own, boxed);
    assert!(
        own.iter()
            .any(|l| l.contains(&format!("error=\"{label}\""))),
        "{own:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn io_errors_are_counted_as_before() {
    same_as_boxed(
        || io::Error::new(io::ErrorKind::TimedOut, "slow"),
        "timeout",
    )
    .await;
    let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
    let own = error_series(refused).await;
    let boxed = error_series(|| -> BoxError { Box::new(refused()) }).await;
    assert_eq!(own, boxed);
}

#[tokio::test(start_paused = true)]
async fn a_tokio_timeout_is_counted_as_before() {
    let mut pool = Vec::new();
    for _ in 0..4 {
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>()).await;
        pool.push(elapsed.unwrap_err());
    }
    let own = error_series(|| pool.pop().unwrap()).await;
    let boxed = error_series(|| -> BoxError { Box::new(pool.pop().unwrap()) }).await;
    assert_eq!(own, boxed);
}

#[tokio::test(start_paused = true)]
async fn the_mesh_core_errors_a_stack_boxes_are_counted_by_their_kind() {
    let fail_fast = error_series(|| -> BoxError { Box::new(InFailFast) }).await;
    let no_endpoints = error_series(|| -> BoxError { Box::new(NoEndpoints) }).await;
    assert_eq!(fail_fast, series("failfast", "other"));
    assert_eq!(no_endpoints, series("loadshed", "other"));
}

#[tokio::test]
async fn a_refused_connection_of_hyper_utils_client_is_counted_as_before() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<String>();
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let mut errors = Vec::new();
    for _ in 0..6 {
        errors.push(client.get(uri.clone()).await.unwrap_err());
    }
    let legacy = error_series(|| errors.pop().unwrap()).await;
    let boxed = error_series(|| -> BoxError { Box::new(errors.pop().unwrap()) }).await;
    let wrapped = error_series(|| ClientError::from(errors.pop().unwrap())).await;
    assert_eq!(legacy, series("i/o", "connect"));
    assert_eq!(legacy, boxed);
    assert_eq!(legacy, wrapped);
}
