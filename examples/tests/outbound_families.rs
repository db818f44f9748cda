//! Linkerd's outbound route families through a real sidecar, under
//! Linkerd's names and labels, as `linkerd viz stat-outbound` and
//! Linkerd's dashboards read them: once per logical request over the
//! retries (`outbound_*_route_request_*`), once per attempt under them
//! (`outbound_*_route_backend_*`), and the retries themselves
//! (`outbound_*_route_retry_*`); each labelled with the parent service,
//! the route and, under the retries, the backend, as Linkerd's policy
//! controller names them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_metrics::query::{Delta, Scrape, Target, routes::route_rows};
use support::*;

/// A Service of `outbound.services`, in the workload's namespace, as
/// Linkerd labels a Service parent or backend: the sidecar has no service
/// ports (a service takes requests for any port of its name), so its
/// port is empty.
fn service(scope: &str, name: &str) -> String {
    format!(
        "{scope}_group=\"core\",{scope}_kind=\"Service\",{scope}_namespace=\"emojivoto\",\
         {scope}_name=\"{name}\",{scope}_port=\"\",{scope}_section_name=\"\""
    )
}

/// The route of the requests no route matches, as Linkerd labels a
/// route that is no resource.
const DEFAULT_ROUTE: &str =
    "route_group=\"\",route_kind=\"default\",route_namespace=\"\",route_name=\"default\"";

/// The labels of a route's own families: its parent, itself, and
/// Linkerd's `hostname`, empty as Linkerd leaves it by default.
fn route_labels(parent: &str, route: &str) -> String {
    format!("{},{route},hostname=\"\"", service("parent", parent))
}

/// The labels of what a route sends one backend.
fn backend_labels(parent: &str, route: &str, backend: &str) -> String {
    format!(
        "{},{route},{}",
        service("parent", parent),
        service("backend", backend)
    )
}

/// The lines of `metrics` for `family` whose labels begin with `labels`,
/// without a duration histogram's buckets and sum (whose values depend on
/// timing): each a whole sample line.
fn lines(metrics: &str, family: &str, labels: &str) -> Vec<String> {
    let mut lines: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with(family))
        .filter(|l| l.contains(&format!("{{{labels}")))
        .filter(|l| !l.contains("_duration_seconds_bucket") && !l.contains("_duration_seconds_sum"))
        .map(str::to_owned)
        .collect();
    lines.sort_unstable();
    lines
}

/// A plaintext sidecar in namespace `emojivoto` with the outbound
/// services `emoji` (at `v1`, retried with `retry` when not empty) and
/// `emoji-v2` (at `v2`), and `routes` as its policy file.
fn config(
    dir: &tempfile::TempDir,
    v1: SocketAddr,
    v2: SocketAddr,
    retry: &str,
    routes: &str,
) -> String {
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, routes).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{v1}]\n{retry}\
         \x20   - name: emoji-v2\n      endpoints: [{v2}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    )
}

/// A backend that answers `/fail` with `503` every time, its first other
/// request with `503`, and the rest with `200`.
async fn fails_first() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let first = req.uri().path() != "/fail" && !failed.swap(true, Ordering::Relaxed);
        async move {
            let mut res = Response::new(full("ok"));
            if first || req.uri().path() == "/fail" {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok(res)
        }
    });
    addr
}

async fn get(outbound: SocketAddr, path: &str) -> Response<Bytes> {
    let req = Request::get(format!("http://{outbound}{path}"))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let (head, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Response::from_parts(head, body)
}

#[tokio::test]
async fn a_retried_route_counts_requests_attempts_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let app = fails_first().await;
    // The service's own route, retried: no route resource, Linkerd's
    // default route.
    let retry = "      retry: {attempts: 2}\n";
    let sidecar = sidecar(&config(&dir, app, app, retry, ""));

    // Retried once, then answered 200; answered 200 twice; retried once,
    // and answered 503 when the attempts ran out.
    for path in ["/a", "/b", "/c"] {
        assert_eq!(get(sidecar.outbound, path).await.status(), StatusCode::OK);
    }
    let res = get(sidecar.outbound, "/fail").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    let metrics = scrape(sidecar.admin).await;
    let route = route_labels("emoji", DEFAULT_ROUTE);
    // Over the retries: four requests, as the application saw them.
    assert_eq!(
        lines(&metrics, "outbound_http_route_request_", &route),
        [
            format!("outbound_http_route_request_duration_seconds_count{{{route}}} 4"),
            format!(
                "outbound_http_route_request_statuses_total{{{route},http_status=\"200\",error=\"\"}} 3"
            ),
            format!(
                "outbound_http_route_request_statuses_total{{{route},http_status=\"503\",error=\"\"}} 1"
            ),
        ],
        "{metrics}"
    );
    // Under them: six attempts.
    let backend = backend_labels("emoji", DEFAULT_ROUTE, "emoji");
    assert_eq!(
        lines(&metrics, "outbound_http_route_backend_", &backend),
        [
            format!("outbound_http_route_backend_requests_total{{{backend}}} 6"),
            format!("outbound_http_route_backend_response_duration_seconds_count{{{backend}}} 6"),
            format!(
                "outbound_http_route_backend_response_statuses_total{{{backend},http_status=\"200\",error=\"\"}} 3"
            ),
            format!(
                "outbound_http_route_backend_response_statuses_total{{{backend},http_status=\"503\",error=\"\"}} 3"
            ),
        ],
        "{metrics}"
    );
    // The retries: two sent, one that succeeded, one request out of
    // attempts; none refused by the budget.
    assert_eq!(
        lines(&metrics, "outbound_http_route_retry_", &route),
        [
            format!("outbound_http_route_retry_limit_exceeded_total{{{route}}} 1"),
            format!("outbound_http_route_retry_overflow_total{{{route}}} 0"),
            format!("outbound_http_route_retry_requests_total{{{route}}} 2"),
            format!("outbound_http_route_retry_successes_total{{{route}}} 1"),
        ],
        "{metrics}"
    );
    // No gRPC call, no gRPC series.
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("outbound_grpc_route_") && l.contains("parent_name=\"emoji\"")),
        "{metrics}"
    );

    // `sidecar routes --to emoji` reads the attempts from the backend
    // families, labelled as they now are: three of six succeeded, counted
    // rather than estimated.
    let targets = Target::parse_list("web=127.0.0.1:1").unwrap();
    let delta = Delta::between(
        &Scrape::parse("").unwrap(),
        &Scrape::parse(&metrics).unwrap(),
        Duration::from_secs(1),
    );
    let rows = route_rows(&targets, &[Some(delta)], Some("emoji"));
    let row = rows.iter().find(|r| r.route == "default").unwrap();
    assert_eq!(row.actual_success, Some(0.5), "{rows:#?}");
    assert!(!row.actual_estimated, "{rows:#?}");
    assert_eq!(row.actual_rps, 6.0, "{rows:#?}");
    stop(sidecar).await;
}

/// A canary of `emoji`: of the requests under `/api`, one in four goes to
/// `emoji`'s own endpoints and three to `emoji-v2`'s.
const CANARY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-canary, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs:
    - {name: emoji, port: 8080, weight: 1}
    - {name: emoji-v2, port: 8080, weight: 3}
";

/// An `HTTPRoute` of the Gateway API in `emojivoto` as the sidecar labels
/// it: its API group, kind, namespace and name.
fn http_route(name: &str) -> String {
    format!(
        "route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",route_namespace=\"emojivoto\",route_name=\"{name}\""
    )
}

/// A backend that answers every request with `name`.
async fn named(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(
        listener,
        move |_| async move { Ok(Response::new(full(name))) },
    );
    addr
}

#[tokio::test]
async fn a_split_counts_each_request_once_and_each_backend_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&config(&dir, v1, v2, "", CANARY));
    let mut shares: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        let res = get(sidecar.outbound, "/api/list").await;
        assert_eq!(res.status(), StatusCode::OK);
        let name = String::from_utf8(res.into_body().to_vec()).unwrap();
        *shares.entry(name).or_default() += 1;
    }
    let metrics = scrape(sidecar.admin).await;
    let canary = http_route("emoji-canary");
    let route = route_labels("emoji", &canary);
    // The route counts each request once, whichever backend took it.
    assert_eq!(
        lines(&metrics, "outbound_http_route_request_", &route),
        [
            format!("outbound_http_route_request_duration_seconds_count{{{route}}} 40"),
            format!(
                "outbound_http_route_request_statuses_total{{{route},http_status=\"200\",error=\"\"}} 40"
            ),
        ],
        "{metrics}"
    );
    // Each backend its share, under its own name.
    for (backend, answer) in [("emoji", "v1"), ("emoji-v2", "v2")] {
        let n = shares.get(answer).copied().unwrap_or(0);
        let labels = backend_labels("emoji", &canary, backend);
        let expected: Vec<String> = [
            format!("outbound_http_route_backend_requests_total{{{labels}}} {n}"),
            format!("outbound_http_route_backend_response_duration_seconds_count{{{labels}}} {n}"),
            format!(
                "outbound_http_route_backend_response_statuses_total{{{labels},http_status=\"200\",error=\"\"}} {n}"
            ),
        ]
        .into_iter()
        // A backend the draw never chose counts no status.
        .filter(|l| n > 0 || !l.contains("statuses"))
        .collect();
        assert_eq!(
            lines(&metrics, "outbound_http_route_backend_", &labels),
            expected,
            "{metrics}"
        );
    }
    // Nothing retries on this route; its retry series are there, at 0.
    assert_eq!(
        lines(&metrics, "outbound_http_route_retry_requests", &route),
        [format!(
            "outbound_http_route_retry_requests_total{{{route}}} 0"
        )],
        "{metrics}"
    );
    stop(sidecar).await;
}

// The GRPCRoute and gRPC server of the backend-family tests.
use crate::routes_grpc_backend::{GRPC, grpc_server};

#[tokio::test]
async fn a_grpc_route_counts_its_calls_in_the_grpc_families() {
    let app = grpc_server().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&config(&dir, app, app, "", GRPC));
    let call = |method: &str| {
        let req = emoji_call("emoji", method).body(full("")).unwrap();
        h2_via(sidecar.outbound, req)
    };
    // Retried once on UNAVAILABLE, then OK in the trailers.
    let res = call("ListAll").await.unwrap();
    let end = res.into_body().collect().await.unwrap();
    assert_eq!(end.trailers().unwrap()["grpc-status"], "0");
    // INTERNAL in the trailers, after a 200: not retried.
    let res = call("Vote").await.unwrap();
    let end = res.into_body().collect().await.unwrap();
    assert_eq!(end.trailers().unwrap()["grpc-status"], "13");

    let metrics = scrape(sidecar.admin).await;
    // A GRPCRoute is the Gateway API's; its namespace is not known to the
    // sidecar (see `http_route`).
    let rpc = "route_group=\"gateway.networking.k8s.io\",route_kind=\"GRPCRoute\",\
               route_namespace=\"emojivoto\",route_name=\"emoji-rpc\"";
    let route = route_labels("emoji", rpc);
    assert_eq!(
        lines(&metrics, "outbound_grpc_route_request_", &route),
        [
            format!("outbound_grpc_route_request_duration_seconds_count{{{route}}} 2"),
            format!(
                "outbound_grpc_route_request_statuses_total{{{route},grpc_status=\"INTERNAL\",error=\"\"}} 1"
            ),
            format!(
                "outbound_grpc_route_request_statuses_total{{{route},grpc_status=\"OK\",error=\"\"}} 1"
            ),
        ],
        "{metrics}"
    );
    let backend = backend_labels("emoji", rpc, "emoji");
    assert_eq!(
        lines(&metrics, "outbound_grpc_route_backend_", &backend),
        [
            format!("outbound_grpc_route_backend_requests_total{{{backend}}} 3"),
            format!("outbound_grpc_route_backend_response_duration_seconds_count{{{backend}}} 3"),
            format!(
                "outbound_grpc_route_backend_response_statuses_total{{{backend},grpc_status=\"INTERNAL\",error=\"\"}} 1"
            ),
            format!(
                "outbound_grpc_route_backend_response_statuses_total{{{backend},grpc_status=\"OK\",error=\"\"}} 1"
            ),
            format!(
                "outbound_grpc_route_backend_response_statuses_total{{{backend},grpc_status=\"UNAVAILABLE\",error=\"\"}} 1"
            ),
        ],
        "{metrics}"
    );
    assert_eq!(
        lines(&metrics, "outbound_grpc_route_retry_", &route),
        [
            format!("outbound_grpc_route_retry_limit_exceeded_total{{{route}}} 0"),
            format!("outbound_grpc_route_retry_overflow_total{{{route}}} 0"),
            format!("outbound_grpc_route_retry_requests_total{{{route}}} 1"),
            format!("outbound_grpc_route_retry_successes_total{{{route}}} 1"),
        ],
        "{metrics}"
    );
    // The HTTP families of the route stay at 0: its calls are gRPC.
    assert_eq!(
        lines(&metrics, "outbound_http_route_retry_requests", &route),
        [format!(
            "outbound_http_route_retry_requests_total{{{route}}} 0"
        )],
        "{metrics}"
    );
    stop(sidecar).await;
}
