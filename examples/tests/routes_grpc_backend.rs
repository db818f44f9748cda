//! The outcome of each gRPC attempt a route sends its backend, as
//! linkerd2-proxy exports it: `outbound_grpc_route_backend_*`, with the
//! `grpc_status` of the trailers (or of a trailers-only head), counted
//! under the retries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;

/// A GRPCRoute for all of `emoji`'s `EmojiService`, retried on
/// `UNAVAILABLE`.
const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: emoji-rpc
  namespace: emojivoto
  annotations: {retry.linkerd.io/grpc: unavailable}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService}}]
";

/// A gRPC server over HTTP/2. `ListAll` fails its first call at once, with
/// `UNAVAILABLE` in a trailers-only response, and then answers a message
/// and `OK` in the trailers; `Vote` answers a message and `INTERNAL` in
/// the trailers, after a `200`, as gRPC servers fail most calls.
async fn grpc_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let calls = calls.clone();
        async move {
            let path = req.uri().path().to_owned();
            let n = {
                let mut calls = calls.lock().unwrap();
                let n = calls.entry(path.clone()).or_default();
                *n += 1;
                *n
            };
            let status = match (path.as_str(), n) {
                ("/emojivoto.v1.EmojiService/ListAll", 1) => {
                    let mut res = Response::new(full(""));
                    res.headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    res.headers_mut()
                        .insert("grpc-status", "14".parse().unwrap());
                    return Ok(res);
                }
                ("/emojivoto.v1.EmojiService/ListAll", _) => "0",
                _ => "13",
            };
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", status.parse().unwrap());
            let frames = vec![
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(
                    b"\0\0\0\0\x02ok",
                ))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut res = Response::new(BodyExt::boxed(StreamBody::new(
                futures_util::stream::iter(frames),
            )));
            res.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            Ok(res)
        }
    });
    addr
}

#[tokio::test]
async fn each_grpc_attempt_is_counted_by_the_status_in_its_trailers() {
    let app = grpc_server().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, GRPC).unwrap();
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        routes.display()
    ));
    let call = |method: &str| {
        let req = Request::post(format!("http://emoji/emojivoto.v1.EmojiService/{method}"))
            .version(http::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(""))
            .unwrap();
        h2_via(sidecar.outbound, req)
    };
    // Two attempts: UNAVAILABLE in the head, retried, then OK in the
    // trailers.
    let res = call("ListAll").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let end = res.into_body().collect().await.unwrap();
    assert_eq!(end.trailers().unwrap()["grpc-status"], "0");
    // One attempt, answered 200, that failed in its trailers.
    let res = call("Vote").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let end = res.into_body().collect().await.unwrap();
    assert_eq!(end.trailers().unwrap()["grpc-status"], "13");

    let metrics = scrape(sidecar.admin).await;
    let labels = "parent_name=\"emoji\",route_name=\"emoji-rpc\",backend_name=\"emoji\"";
    let mut backend: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("outbound_") && l.contains(labels))
        .collect();
    backend.sort_unstable();
    let status = |code: &str, n: u32| {
        format!(
            "outbound_grpc_route_backend_response_statuses_total{{{labels},grpc_status=\"{code}\",error=\"\"}} {n}"
        )
    };
    assert_eq!(
        backend,
        [
            format!("outbound_grpc_route_backend_requests_total{{{labels}}} 3"),
            status("INTERNAL", 1),
            status("OK", 1),
            status("UNAVAILABLE", 1),
            // The route's HTTP family, resolved when it was built, counts
            // none of them.
            format!("outbound_http_route_backend_requests_total{{{labels}}} 0"),
        ],
        "{metrics}"
    );
    drop(dir);
    stop(sidecar).await;
}

/// A GRPCRoute for all of `dead`'s calls, not retried.
const DEAD: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: dead-rpc
  namespace: emojivoto
spec:
  parentRefs: [{group: core, kind: Service, name: dead}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService}}]
";

#[tokio::test]
async fn an_attempt_the_mesh_answers_for_carries_linkerds_error_value() {
    // A port nothing listens on: every connection is refused.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, DEAD).unwrap();
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: dead\n      endpoints: [{closed}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        routes.display()
    ));
    let req = Request::post("http://dead/emojivoto.v1.EmojiService/ListAll")
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(""))
        .unwrap();
    let res = h2_via(sidecar.outbound, req).await.unwrap();
    // The mesh answered itself, trailers-only.
    assert_eq!(res.headers()["grpc-status"], "14");

    let metrics = scrape(sidecar.admin).await;
    let labels = "parent_name=\"dead\",route_name=\"dead-rpc\",backend_name=\"dead\"";
    let mut backend: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("outbound_") && l.contains(labels))
        .collect();
    backend.sort_unstable();
    assert_eq!(
        backend,
        [
            format!("outbound_grpc_route_backend_requests_total{{{labels}}} 1"),
            // The mesh's own answer for an unreachable upstream, which
            // Linkerd has no value for: its catch-all.
            format!(
                "outbound_grpc_route_backend_response_statuses_total{{{labels},grpc_status=\"UNAVAILABLE\",error=\"UNKNOWN\"}} 1"
            ),
            format!("outbound_http_route_backend_requests_total{{{labels}}} 0"),
        ],
        "{metrics}"
    );
    drop(dir);
    stop(sidecar).await;
}
