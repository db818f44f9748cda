//! `TraceLayer` given straight to axum's `Router::layer`, over
//! `MetricsLayer`: the router cannot fail, and the services both layers
//! make fail as the one they wrap does, so axum takes them with no
//! `HandleErrorLayer` around them. Served by mesh-core's `Server` on a
//! real socket, one request joins its caller's trace, its span is
//! exported to a collector, and it is counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{full, series, serve, serve_one};

use axum::{Router, routing::get};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_metrics::{
    HttpMetrics, MetricsLayer,
    trace::{TraceLayer, Tracer},
};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::mpsc;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn router_layer_takes_trace_layer_as_is() {
    // A collector on 127.0.0.1:0 that passes on every span posted to it.
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = collector.local_addr().unwrap();
    let (spans, mut received) = mpsc::unbounded_channel::<Value>();
    serve(collector, move |req: Request<hyper::body::Incoming>| {
        let spans = spans.clone();
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let batch = &body["resourceSpans"][0]["scopeSpans"][0]["spans"];
            for span in batch.as_array().unwrap() {
                let _ = spans.send(span.clone());
            }
            Ok(Response::new(full("")))
        }
    });
    let (tracer, exporter) = Tracer::new(
        format!("http://{collector_addr}").parse().unwrap(),
        Vec::new(),
    );
    let export = tokio::spawn(exporter.run());

    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(MetricsLayer::inbound(&http))
        .layer(TraceLayer::inbound(Some(tracer)));

    let req = Request::get("/hello").header("traceparent", format!("00-{TRACE}-{CALLER}-01"));
    // Once stopped, the server has let go of the router, and with it of
    // the last tracer: the exporter sends what it holds and returns.
    let (status, body) = serve_one(app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello");
    export.await.unwrap();

    let span = received.recv().await.expect("the span is exported");
    assert_eq!(span["traceId"], TRACE, "{span}");
    assert_eq!(span["parentSpanId"], CALLER, "{span}");
    assert_eq!(span["name"], "GET", "{span}");
    assert!(span.get("status").is_none(), "{span}");
    assert!(received.try_recv().is_err(), "one span");

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let ok = [
        r#"direction="inbound""#,
        r#"status_code="200""#,
        r#"classification="success""#,
    ];
    assert_eq!(series(&text, "response_total", &ok), 1, "{text}");
}
