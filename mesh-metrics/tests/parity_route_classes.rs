//! A ServiceProfile route's `responseClasses` classify a gRPC response in
//! `response_total` before its `grpc-status`, as linkerd2-proxy's profile
//! classifier tries the classes on the response head first
//! (`classify::Response::Profile` in `linkerd/app/core/src/classify.rs`):
//! only a status no class matches is left to the `grpc-status`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, sync::Arc};

use http::{Request, Response, header::CONTENT_TYPE};
use mesh_core::{
    classify::{Classify, StatusRanges},
    labels::DstService,
    route::RouteId,
};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// A gRPC call of `route`.
fn call(route: &RouteId) -> Request<()> {
    let mut req = Request::post("/emojivoto.v1.EmojiService/Vote")
        .header(CONTENT_TYPE, "application/grpc")
        .body(())
        .unwrap();
    req.extensions_mut().insert(DstService(Arc::from("emoji")));
    req.extensions_mut().insert(route.clone());
    req
}

/// The `classification` of `route`'s responses in `response_total`.
fn classification(metrics: &str, route: &str) -> Vec<String> {
    let route = format!("route_name=\"{route}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("response_total{") && l.contains(&route))
        .filter_map(|l| {
            let at = l.find("classification=\"")? + "classification=\"".len();
            Some(l[at..].split('"').next()?.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_routes_class_decides_a_grpc_response_before_its_grpc_status() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    // Every call fails with `INTERNAL`, in a trailers-only `200`.
    let app = service_fn(|_: Request<()>| async {
        let res = Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .header("grpc-status", "13")
            .body(String::new())
            .unwrap();
        Ok::<_, Infallible>(res)
    });
    let svc = MetricsLayer::outbound(&metrics).layer(app);
    // responseClasses: [{condition: {status: {min: 200, max: 299}}, isFailure: false}]
    let classes = Classify::new()
        .with_http_failures(StatusRanges::server_errors())
        .with_class_statuses("200-299".parse().unwrap());
    let classed = RouteId::new("classed").with_classify(classes);
    // A route whose classes match only 5xx leaves a `200` to its
    // `grpc-status`, as does a route without classes.
    let fives = Classify::new()
        .with_http_failures(StatusRanges::server_errors())
        .with_class_statuses(StatusRanges::server_errors());
    let unmatched = RouteId::new("unmatched").with_classify(fives);
    let plain = RouteId::new("plain");
    for route in [&classed, &unmatched, &plain] {
        let res = svc.clone().oneshot(call(route)).await.unwrap();
        drop(res);
    }
    let text = scrape(&registry);
    assert_eq!(classification(&text, "classed"), ["success"], "{text}");
    assert_eq!(classification(&text, "unmatched"), ["failure"], "{text}");
    assert_eq!(classification(&text, "plain"), ["failure"], "{text}");
}
