//! `MetricsLayer` given straight to axum's `Router::layer`: the router
//! cannot fail, and the service the layer makes fails as the one it wraps
//! does, so axum takes it with no `HandleErrorLayer` around it. Served by
//! mesh-core's `Server` on a real socket, one request is counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{series, serve_one};

use axum::{Router, routing::get};
use http::{Request, StatusCode};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::registry::Registry;

#[tokio::test]
async fn router_layer_takes_metrics_layer_as_is() {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(MetricsLayer::inbound(&http));

    let (status, body) = serve_one(app, Request::get("/hello")).await;
    assert_eq!(status, StatusCode::OK);
    // Read to its end, the response is counted before the body is
    // handed over.
    assert_eq!(body, "hello");

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let labels = [r#"direction="inbound""#];
    assert_eq!(series(&text, "request_total", &labels), 1, "{text}");
    let ok = [
        r#"direction="inbound""#,
        r#"status_code="200""#,
        r#"classification="success""#,
    ];
    assert_eq!(series(&text, "response_total", &ok), 1, "{text}");
}
