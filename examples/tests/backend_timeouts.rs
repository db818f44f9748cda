//! How the per-backend families label an attempt that never got its
//! answer because its caller went away: `error="CANCEL"`, the value
//! linkerd2-proxy gives it
//! (`linkerd/app/outbound/src/http/logical/policy/route/metrics/labels.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, Version};
use support::*;

/// A route of `emoji` for calls with `x-case: patient`, with a request
/// timeout of an hour.
const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-patient, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: patient}]}]
    timeouts: {request: 1h}
";

/// The sample of `family` for route `route` of `emoji` whose status label
/// is `status` and whose `error` is `error`, if there is one.
fn sample(metrics: &str, family: &str, route: &str, status: &str, error: &str) -> Option<u64> {
    let labels = format!(
        "{family}{{parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",parent_name=\"emoji\",parent_port=\"\",parent_section_name=\"\",\
         route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",route_namespace=\"emojivoto\",route_name=\"{route}\",\
         backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",backend_name=\"emoji\",backend_port=\"\",backend_section_name=\"\",\
         {status},error=\"{error}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&labels))
        .map(|n| n.parse().unwrap())
}

const HTTP: &str = "outbound_http_route_backend_response_statuses_total";
const GRPC: &str = "outbound_grpc_route_backend_response_statuses_total";

fn grpc_call(case: &str) -> Request<Body> {
    Request::post("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-case", case)
        .body(full(""))
        .unwrap()
}

#[tokio::test]
async fn an_attempt_whose_caller_hangs_up_is_counted_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, gate) = backend().await;
    let sidecar = sidecar(&emoji_routes_yaml(dir.path(), backend, ROUTES, 2));

    // The caller resets its stream once the backend has the request, long
    // before the route's hour is up.
    let outbound = sidecar.outbound;
    let call = tokio::spawn(async move { h2_via(outbound, grpc_call("patient")).await });
    gate.arrived.notified().await;
    call.abort();
    let plain = Request::get("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("x-case", "patient")
        .body(full(""))
        .unwrap();
    let call = tokio::spawn(async move { h2_via(outbound, plain).await });
    gate.arrived.notified().await;
    call.abort();

    // The sidecar learns of the reset as it reads it: wait for both
    // attempts to be counted.
    let route = "emoji-patient";
    let counted = |metrics: &str| {
        let http = sample(metrics, HTTP, route, "http_status=\"\"", "CANCEL");
        let grpc = sample(metrics, GRPC, route, "grpc_status=\"UNKNOWN\"", "CANCEL");
        (http, grpc)
    };
    let admin = sidecar.admin;
    let metrics = tokio::time::timeout(WAIT_BOUND, async {
        loop {
            let metrics = scrape(admin).await;
            if counted(&metrics) == (Some(1), Some(1)) {
                return metrics;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let Ok(metrics) = metrics else {
        panic!("both attempts not counted CANCEL: {}", scrape(admin).await);
    };
    assert!(!metrics.contains("REQUEST_TIMEOUT"), "{metrics}");
    stop(sidecar).await;
}
