//! A route's own classifier, carried by its `RouteId`, classifies its
//! responses in `response_total` in place of the layer's rules: found
//! again from the memo of each service, and from the layer-wide cache
//! that services share, never mixed up with the same route name's
//! responses under other rules.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, sync::Arc};

use http::{Request, Response, StatusCode};
use mesh_core::{
    classify::{Classify, StatusRanges},
    labels::DstService,
    route::RouteId,
};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, Service, ServiceExt, service_fn};

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// Answers the status the path names: `/404` a `404`, `/500` a `500`.
fn app()
-> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future = impl Send> + Clone
{
    service_fn(|req: Request<()>| async move {
        let status: u16 = req.uri().path()[1..].parse().unwrap();
        let mut res = Response::new(String::new());
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok::<_, Infallible>(res)
    })
}

fn request(route: &RouteId, path: &str) -> Request<()> {
    let mut req = Request::get(path).body(()).unwrap();
    req.extensions_mut().insert(DstService(Arc::from("emoji")));
    req.extensions_mut().insert(route.clone());
    req
}

/// A ServiceProfile route's classes: `500` a success, `4xx` a failure,
/// the rest of 5xx a failure.
fn profile_classes() -> Classify {
    Classify::new().with_http_failures("400-499,501-599".parse::<StatusRanges>().unwrap())
}

fn line(route: &str, status: u16, class: &str, n: u32) -> String {
    format!(
        "response_total{{direction=\"outbound\",dst_service=\"emoji\",route_name=\"{route}\",status_code=\"{status}\",classification=\"{class}\"}} {n}\n"
    )
}

async fn send<S>(svc: &S, route: &RouteId, path: &str)
where
    S: Service<Request<()>, Response = Response<mesh_metrics::http::ResponseBody<String>>> + Clone,
    S::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(request(route, path)).await.unwrap();
    drop(res);
}

#[tokio::test]
async fn a_routes_own_rules_classify_its_responses_and_others_keep_the_layers() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::outbound(&metrics).layer(app());
    let flaky = RouteId::new("flaky").with_classify(profile_classes());
    let plain = RouteId::new("plain");
    // Twice each: the first finds its target in the layer-wide cache,
    // the second in the service's memo.
    for _ in 0..2 {
        for path in ["/500", "/404"] {
            send(&svc, &flaky, path).await;
            send(&svc, &plain, path).await;
        }
    }
    let text = scrape(&registry);
    for expected in [
        line("flaky", 500, "success", 2),
        line("flaky", 404, "failure", 2),
        line("plain", 500, "failure", 2),
        line("plain", 404, "success", 2),
    ] {
        assert!(text.contains(&expected), "{expected} not in {text}");
    }
}

#[tokio::test]
async fn one_route_name_under_other_rules_is_classified_by_each_requests_rules() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let layer = MetricsLayer::outbound(&metrics);
    // Two services of one layer, which share its cache of targets.
    let first = layer.layer(app());
    let second = layer.layer(app());
    // A route with classes, and the same route reloaded without them.
    let classes = RouteId::new("flaky").with_classify(profile_classes());
    let reloaded = RouteId::new("flaky");
    for _ in 0..2 {
        // Each service keeps the first it sees in its memo; the other is
        // found in the cache the first service filled.
        send(&first, &classes, "/500").await;
        send(&second, &reloaded, "/500").await;
        send(&first, &reloaded, "/404").await;
        send(&second, &classes, "/500").await;
    }
    let text = scrape(&registry);
    for expected in [
        line("flaky", 500, "success", 4),
        line("flaky", 500, "failure", 2),
        line("flaky", 404, "success", 2),
    ] {
        assert!(text.contains(&expected), "{expected} not in {text}");
    }
    let failed_404 = "status_code=\"404\",classification=\"failure\"";
    assert!(!text.contains(failed_404), "{text}");
}
