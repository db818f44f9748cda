//! How `MetricsLayer` classifies and counts: gRPC trailers, errors,
//! cancellations and the series cap.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, io, num::NonZeroUsize};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full, StreamBody};
use mesh_core::{BoxError, route::RouteId};
use mesh_metrics::{HttpMetrics, MetricsConfig, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, Service, ServiceExt, service_fn};

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

fn grpc_response(
    trailer_status: &'static str,
) -> Response<impl http_body::Body<Data = Bytes, Error = Infallible>> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(trailer_status));
    let body = Full::new(Bytes::from_static(b"\0\0\0\0\0"))
        .with_trailers(async move { Some(Ok(trailers)) });
    let mut res = Response::new(body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    res
}

#[tokio::test]
async fn grpc_unavailable_in_the_trailers_is_a_failure_and_ok_a_success() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|req: Request<()>| async move {
        let status = if req.uri().path() == "/fail" {
            "14"
        } else {
            "0"
        };
        Ok::<_, Infallible>(grpc_response(status))
    }));
    for (i, path) in ["/fail", "/ok", "/ok"].into_iter().enumerate() {
        let res = svc
            .clone()
            .oneshot(Request::post(path).body(()).unwrap())
            .await
            .unwrap();
        let counted = scrape(&registry)
            .lines()
            .filter(|l| l.starts_with("response_total{"))
            .count();
        // Nothing is counted until the stream ends with its trailers.
        assert_eq!(counted, i);
        let collected = res.into_body().collect().await.unwrap();
        assert!(collected.trailers().is_some());
    }
    let text = scrape(&registry);
    assert!(
        text.contains(
            "response_total{direction=\"inbound\",status_code=\"200\",grpc_status=\"14\",classification=\"failure\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains(
        "response_total{direction=\"inbound\",status_code=\"200\",grpc_status=\"0\",classification=\"success\"} 2\n"
    ));
}

#[tokio::test]
async fn a_request_dropped_before_its_response_is_counted_as_cancelled() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let mut svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| {
        std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
    }));
    let fut = svc.ready().await.unwrap().call(Request::new(()));
    drop(fut);
    let text = scrape(&registry);
    assert!(
        text.contains("request_total{direction=\"inbound\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "response_total{direction=\"inbound\",classification=\"failure\",error=\"cancel\"} 1\n"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_response_body_dropped_before_its_end_is_counted_as_cancelled() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        // A stream that sends one chunk and then waits forever.
        let chunks = futures_util::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
            Bytes::from_static(b"partial"),
        ))])
        .chain(futures_util::stream::pending());
        Ok::<_, Infallible>(Response::new(StreamBody::new(chunks)))
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "partial");
    assert!(!scrape(&registry).contains("response_total{"));
    drop(body);
    let text = scrape(&registry);
    assert!(
        text.contains(
            "response_total{direction=\"inbound\",status_code=\"200\",classification=\"failure\",error=\"cancel\"} 1\n"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn an_error_instead_of_a_response_is_a_failure_labelled_with_its_kind() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::outbound(&metrics).layer(service_fn(|_: Request<()>| async {
        Err::<Response<Full<Bytes>>, BoxError>(io::Error::from(io::ErrorKind::TimedOut).into())
    }));
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(mesh_core::labels::DstService("emoji".into()));
    let err = svc.oneshot(req).await.unwrap_err();
    assert!(err.downcast_ref::<io::Error>().is_some());
    let text = scrape(&registry);
    assert!(
        text.contains(
            "response_total{direction=\"outbound\",dst_service=\"emoji\",classification=\"failure\",error=\"timeout\"} 1\n"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_that_fails_after_its_head_is_a_failure_with_its_status_and_kind() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        let frames = futures_util::stream::iter([
            Ok(http_body::Frame::data(Bytes::from_static(b"partial"))),
            Err(io::Error::from(io::ErrorKind::ConnectionReset)),
        ]);
        Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let err = res.into_body().collect().await.unwrap_err();
    assert!(err.downcast_ref::<io::Error>().is_some());
    let text = scrape(&registry);
    assert!(
        text.contains(
            "response_total{direction=\"inbound\",status_code=\"200\",classification=\"failure\",error=\"reset\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("response_latency_ms_count{direction=\"inbound\",status_code=\"200\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn twenty_thousand_route_names_stay_within_the_cap_plus_one_overflow_series() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    for i in 0..20_000 {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(RouteId::new(format!("route-{i}")));
        svc.clone().oneshot(req).await.unwrap();
    }
    let text = scrape(&registry);
    let series = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(series("request_total{"), 10_001);
    assert_eq!(series("response_total{"), 10_001);
    assert_eq!(series("response_latency_ms_count{"), 10_001);
    assert!(text.contains("request_total{direction=\"inbound\",overflow=\"true\"} 10000\n"));
    assert!(text.contains("http_series_overflow_total{family=\"request_total\"} 10000\n"));
    // Totals stay right: every request is somewhere.
    let total: u64 = text
        .lines()
        .filter(|l| l.starts_with("request_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 20_000);
}

#[tokio::test]
async fn the_series_limit_is_configurable() {
    let mut registry = Registry::default();
    let config = MetricsConfig::default().with_series_limit(NonZeroUsize::new(3).unwrap());
    let metrics = HttpMetrics::register_with(&mut registry, config);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    for i in 0..10 {
        let mut req = Request::new(());
        req.extensions_mut().insert(RouteId::new(format!("r{i}")));
        svc.clone().oneshot(req).await.unwrap();
    }
    let text = scrape(&registry);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("request_total{"))
            .count(),
        4
    );
    assert!(text.contains("request_total{direction=\"inbound\",overflow=\"true\"} 7\n"));
}

#[tokio::test]
async fn each_direction_reads_only_the_labels_that_belong_to_it() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let app = || {
        service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        })
    };
    let request = || {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(mesh_core::labels::DstService("emoji".into()));
        req.extensions_mut().insert(mesh_core::labels::Authorized {
            server: "emoji-grpc".into(),
            server_kind: &mesh_core::labels::ResourceKind::DEFAULT,
            server_port: None,
            route: "list".into(),
            route_kind: None,
            authz: "web-only".into(),
            authz_kind: &mesh_core::labels::ResourceKind::DEFAULT,
            audit: false,
        });
        req
    };
    MetricsLayer::inbound(&metrics)
        .layer(app())
        .oneshot(request())
        .await
        .unwrap();
    MetricsLayer::outbound(&metrics)
        .layer(app())
        .oneshot(request())
        .await
        .unwrap();

    let text = scrape(&registry);
    // Inbound: the server's policy names the series; a destination
    // service does not. Outbound: the destination does; a policy does not.
    assert!(
        text.contains(
            "request_total{direction=\"inbound\",srv_group=\"\",srv_kind=\"default\",srv_name=\"emoji-grpc\",route_name=\"list\",authz_group=\"\",authz_kind=\"default\",authz_name=\"web-only\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("request_total{direction=\"outbound\",dst_service=\"emoji\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_grpc_call_answered_by_a_page_that_is_not_grpc_is_a_failure() {
    // A misrouted gRPC call that an HTTP server answers with a `200` page:
    // its gRPC client fails it (UNKNOWN), so the metrics do too. The same
    // page answering a plain POST is a success.
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async move {
        let mut res = Response::new(Full::new(Bytes::from_static(b"<html></html>")));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        Ok::<_, Infallible>(res)
    }));
    for content_type in ["application/grpc+proto", "application/json"] {
        let req = Request::post("/emoji.EmojiService/ListAll")
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let text = scrape(&registry);
    let responses: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("response_total{"))
        .collect();
    assert_eq!(
        responses,
        [
            "response_total{direction=\"inbound\",status_code=\"200\",classification=\"failure\"} 1",
            "response_total{direction=\"inbound\",status_code=\"200\",classification=\"success\"} 1",
        ],
        "{text}"
    );
}
