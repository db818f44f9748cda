//! Linkerd's ServiceProfile route families through a real sidecar, as
//! `linkerd viz routes` reads them: `route_response_total` and
//! `route_response_latency_ms` once per logical request over the retries,
//! `route_actual_response_total` once per attempt under them, each
//! labelled `direction`, `dst` and `rt_route`, and `route_retryable_total`;
//! for requests on ServiceProfile routes and on the default route of a
//! service that has them, and for no other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;

/// The guide's ServiceProfile for `emoji`, its `GET` route made
/// retryable, and a route for the `VotingService`'s gRPC calls.
fn profile() -> String {
    let guide = include_str!("../../mesh-retry/tests/fixtures/guide-serviceprofile.yaml");
    let retryable = guide.replace(
        "  - name: Get /api/emoji\n",
        "  - name: Get /api/emoji\n    isRetryable: true\n",
    );
    assert_ne!(retryable, guide, "the guide's GET route is where it was");
    format!(
        "{retryable}  - name: Vote\n    condition:\n      method: POST\n      \
         pathRegex: /emojivoto\\.v1\\.VotingService/.*\n"
    )
}

/// `emoji.emojivoto.svc.cluster.local` as `linkerd viz routes` finds it:
/// the ServiceProfile's name.
const EMOJI: &str = "emoji.emojivoto.svc.cluster.local";

/// A plaintext sidecar in namespace `emojivoto` with the outbound
/// services `emoji.emojivoto.svc.cluster.local`, served `profile()`, and
/// `web`, served an `HTTPRoute`, both at `app`.
fn config(dir: &tempfile::TempDir, app: SocketAddr) -> String {
    let file = dir.path().join("routes.yaml");
    let http_route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-api, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
";
    std::fs::write(&file, format!("{}---\n{http_route}", profile())).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: {EMOJI}\n      endpoints: [{app}]\n\
         \x20   - name: web\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    )
}

/// The application: `GET /api/emoji` fails its first request with `503`
/// and answers `200` after; a gRPC call answers a message and `INTERNAL`
/// in its trailers; anything else `200`.
async fn app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let first = req.method() == http::Method::GET
            && req.uri().path() == "/api/emoji"
            && !failed.swap(true, Ordering::Relaxed);
        let grpc = req.uri().path().starts_with("/emojivoto.v1.");
        async move {
            if grpc {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", "13".parse().unwrap());
                let frames = vec![
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(
                        Bytes::from_static(b"\0\0\0\0\x02ok"),
                    )),
                    Ok(Frame::trailers(trailers)),
                ];
                let mut res = Response::new(BodyExt::boxed(StreamBody::new(
                    futures_util::stream::iter(frames),
                )));
                res.headers_mut()
                    .insert("content-type", "application/grpc".parse().unwrap());
                return Ok(res);
            }
            let mut res = Response::new(full("ok"));
            if first {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok(res)
        }
    });
    addr
}

async fn send(outbound: SocketAddr, method: &str, host: &str, path: &str) -> StatusCode {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{outbound}{path}"))
        .header("host", host)
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    status
}

/// The sample lines of the profile route families, without the latency
/// buckets and sum (whose values depend on timing), sorted.
fn profile_lines(metrics: &str) -> Vec<String> {
    let mut lines: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with("route_"))
        .filter(|l| {
            !l.starts_with("route_response_latency_ms_bucket")
                && !l.starts_with("route_response_latency_ms_sum")
        })
        .map(str::to_owned)
        .collect();
    lines.sort_unstable();
    lines
}

#[tokio::test]
async fn a_profile_route_counts_its_requests_its_attempts_and_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let app = app().await;
    let sidecar = sidecar(&config(&dir, app));

    // Retried once, then 200; then 200 twice.
    for _ in 0..3 {
        let status = send(sidecar.outbound, "GET", EMOJI, "/api/emoji").await;
        assert_eq!(status, StatusCode::OK);
    }
    let status = send(sidecar.outbound, "POST", EMOJI, "/api/emoji").await;
    assert_eq!(status, StatusCode::OK);
    // No route matches: the profile's default route.
    let status = send(sidecar.outbound, "GET", EMOJI, "/leaderboard").await;
    assert_eq!(status, StatusCode::OK);
    // A gRPC call on a profile route, failed in its trailers.
    let req = Request::post(format!(
        "http://{EMOJI}/emojivoto.v1.VotingService/VoteDoughnut"
    ))
    .version(http::Version::HTTP_2)
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(full(""))
    .unwrap();
    let res = h2_via(sidecar.outbound, req).await.unwrap();
    let end = res.into_body().collect().await.unwrap();
    assert_eq!(end.trailers().unwrap()["grpc-status"], "13");
    // An HTTPRoute's requests: none of these families.
    let status = send(sidecar.outbound, "GET", "web", "/api/emoji").await;
    assert_eq!(status, StatusCode::OK);

    let metrics = scrape(sidecar.admin).await;
    let at = |route: &str| {
        let route = match route {
            "" => String::new(),
            route => format!(",rt_route=\"{route}\""),
        };
        format!("direction=\"outbound\",dst=\"{EMOJI}\"{route}")
    };
    let (get, post, vote, default) = (
        at("Get /api/emoji"),
        at("Post /api/emoji"),
        at("Vote"),
        at(""),
    );
    let ok = "classification=\"success\",grpc_status=\"\",error=\"\"";
    let mut expected = vec![
        // The attempts: four of the three GET requests, the first failed.
        format!("route_actual_request_total{{{get}}} 4"),
        format!("route_actual_request_total{{{post}}} 1"),
        format!("route_actual_request_total{{{vote}}} 1"),
        format!("route_actual_request_total{{{default}}} 1"),
        format!("route_actual_response_total{{{get},status_code=\"200\",{ok}}} 3"),
        format!(
            "route_actual_response_total{{{get},status_code=\"503\",classification=\"failure\",grpc_status=\"\",error=\"\"}} 1"
        ),
        format!("route_actual_response_total{{{post},status_code=\"200\",{ok}}} 1"),
        format!(
            "route_actual_response_total{{{vote},status_code=\"200\",classification=\"failure\",grpc_status=\"13\",error=\"\"}} 1"
        ),
        format!("route_actual_response_total{{{default},status_code=\"200\",{ok}}} 1"),
        // The requests, as the application saw them.
        format!("route_request_total{{{get}}} 3"),
        format!("route_request_total{{{post}}} 1"),
        format!("route_request_total{{{vote}}} 1"),
        format!("route_request_total{{{default}}} 1"),
        format!("route_response_latency_ms_count{{{get},status_code=\"200\"}} 3"),
        format!("route_response_latency_ms_count{{{post},status_code=\"200\"}} 1"),
        format!("route_response_latency_ms_count{{{vote},status_code=\"200\"}} 1"),
        format!("route_response_latency_ms_count{{{default},status_code=\"200\"}} 1"),
        format!("route_response_total{{{get},status_code=\"200\",{ok}}} 3"),
        format!("route_response_total{{{post},status_code=\"200\",{ok}}} 1"),
        format!(
            "route_response_total{{{vote},status_code=\"200\",classification=\"failure\",grpc_status=\"13\",error=\"\"}} 1"
        ),
        format!("route_response_total{{{default},status_code=\"200\",{ok}}} 1"),
    ];
    // The retryable failures: the GET route's one, retried; each retryable
    // route's series is there from its start, as its retry families are.
    for route in [&get, &post, &vote, &default] {
        let n = if route == &get { 1 } else { 0 };
        expected.push(format!("route_retryable_total{{{route}}} {n}"));
        expected.push(format!(
            "route_retryable_total{{{route},skipped=\"no_budget\"}} 0"
        ));
    }
    expected.sort_unstable();
    assert_eq!(profile_lines(&metrics), expected, "{metrics}");
    // Linkerd's millisecond buckets.
    assert!(
        metrics.contains(&format!(
            "route_response_latency_ms_bucket{{le=\"50000.0\",{get},status_code=\"200\"}} 3"
        )),
        "{metrics}"
    );
    stop(sidecar).await;
}
