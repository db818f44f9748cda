//! The error families `MetricsLayer` writes: a request counts there only
//! when the proxy answered it itself or it failed without a response,
//! once, under Linkerd's `error` value; outbound with the error alone.
//! Responses of the upstream, a `500` included, are not counted, and a
//! family with no series is not written.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io;

use http::{Request, Response, StatusCode};
use mesh_core::{BoxError, error::ProxyErrorKind, proxy::queue::IN_FAILFAST};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// The upstream's answer for `path`: the proxy's own for `/unreachable`,
/// `/failfast`, `/timeout` and `/denied`, a failure for `/broken`, the
/// application's `500` for `/500`, and a `200` otherwise.
async fn upstream(req: Request<()>) -> Result<Response<String>, BoxError> {
    let kind = match req.uri().path() {
        "/unreachable" => ProxyErrorKind::UpstreamUnreachable,
        "/failfast" => {
            return Ok(ProxyErrorKind::Unavailable.response_with_reason(false, IN_FAILFAST));
        }
        "/timeout" => ProxyErrorKind::Timeout,
        "/denied" => ProxyErrorKind::Denied,
        "/broken" => return Err(io::Error::from(io::ErrorKind::ConnectionReset).into()),
        "/500" => {
            let mut res = Response::new(String::new());
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(res);
        }
        _ => return Ok(Response::new("ok".into())),
    };
    Ok(kind.response_for(false))
}

async fn send(layer: &MetricsLayer, path: &str) {
    let svc = layer.layer(service_fn(upstream));
    if let Ok(res) = svc.oneshot(Request::get(path).body(()).unwrap()).await {
        drop(res.into_body());
    }
}

#[tokio::test]
async fn outbound_errors_are_the_proxys_answers_by_linkerds_values() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let layer = MetricsLayer::outbound(&metrics);
    for path in ["/", "/500", "/", "/500"] {
        send(&layer, path).await;
    }
    let text = scrape(&registry);
    assert!(!text.contains("errors"), "{text}");

    for path in [
        "/unreachable",
        "/unreachable",
        "/failfast",
        "/timeout",
        "/broken",
        "/denied",
        "/",
    ] {
        send(&layer, path).await;
    }
    let text = scrape(&registry);
    let family: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("_http_errors") && !l.starts_with("http_series_overflow"))
        .collect();
    assert_eq!(
        family,
        [
            "# HELP outbound_http_errors Outbound HTTP requests the proxy answered itself, \
             or failed without a response, for an error of its own",
            "# TYPE outbound_http_errors counter",
            "outbound_http_errors_total{error=\"i/o\"} 3",
            "outbound_http_errors_total{error=\"failfast\"} 1",
            "outbound_http_errors_total{error=\"response timeout\"} 1",
        ],
        "{text}"
    );
}

#[tokio::test]
async fn inbound_errors_name_the_target_and_leave_denials_to_the_policy() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let layer = MetricsLayer::inbound(&metrics);
    for path in ["/denied", "/", "/500"] {
        send(&layer, path).await;
    }
    assert!(!scrape(&registry).contains("errors"));
    send(&layer, "/timeout").await;
    let text = scrape(&registry);
    assert!(
        text.contains("inbound_http_errors_total{error=\"response timeout\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("outbound_http_errors_total"), "{text}");
}
