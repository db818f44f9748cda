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
pub(crate) const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1
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
pub(crate) async fn grpc_server() -> SocketAddr {
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
        let req = emoji_call("emoji", method).body(full("")).unwrap();
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
    let labels = "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",parent_name=\"emoji\",parent_port=\"\",parent_section_name=\"\",\
                  route_group=\"gateway.networking.k8s.io\",route_kind=\"GRPCRoute\",route_namespace=\"emojivoto\",route_name=\"emoji-rpc\",\
                  backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",backend_name=\"emoji\",backend_port=\"\",backend_section_name=\"\"";
    let mut backend: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("outbound_") && l.contains(labels) && !l.contains("_duration_seconds")
        })
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
    let closed = refused_addr().await;
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
    let labels = "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",parent_name=\"dead\",parent_port=\"\",parent_section_name=\"\",\
                  route_group=\"gateway.networking.k8s.io\",route_kind=\"GRPCRoute\",route_namespace=\"emojivoto\",route_name=\"dead-rpc\",\
                  backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",backend_name=\"dead\",backend_port=\"\",backend_section_name=\"\"";
    let mut backend: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("outbound_") && l.contains(labels) && !l.contains("_duration_seconds")
        })
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

/// How [`failing_h2`] fails every request.
#[derive(Clone, Copy, Debug)]
enum Fail {
    /// Resets its stream with `REFUSED_STREAM`.
    Refused,
    /// Sends a `GOAWAY` (`NO_ERROR`, last stream 0, below the request's),
    /// then closes the connection.
    GoAway,
    /// Closes the connection.
    Close,
}

/// An HTTP/2 upstream, spoken by hand, that reads each request whole and
/// fails it as `fail` says, with no response.
async fn failing_h2(fail: Fail) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// Appends one frame (RFC 9113 §4.1) to `out`.
    fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        out.extend_from_slice(&len[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
    }
    const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const END_STREAM: u8 = 0x1;
    const ACK: u8 = 0x1;
    const NO_ERROR: u32 = 0x0;
    const REFUSED_STREAM: u32 = 0x7;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut preface = [0; 24];
                if tcp.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let mut out = Vec::new();
                frame(&mut out, SETTINGS, 0, 0, &[]);
                if tcp.write_all(&out).await.is_err() {
                    return;
                }
                loop {
                    let mut head = [0; 9];
                    if tcp.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let (kind, flags) = (head[3], head[4]);
                    let stream =
                        u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    let mut payload = vec![0; len];
                    if tcp.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    let mut out = Vec::new();
                    if kind == SETTINGS && flags & ACK == 0 {
                        frame(&mut out, SETTINGS, ACK, 0, &[]);
                    }
                    let ended = matches!(kind, DATA | HEADERS) && flags & END_STREAM != 0;
                    match fail {
                        Fail::Refused if ended => {
                            frame(
                                &mut out,
                                RST_STREAM,
                                0,
                                stream,
                                &REFUSED_STREAM.to_be_bytes(),
                            );
                        }
                        Fail::GoAway if ended => {
                            let mut goaway = 0u32.to_be_bytes().to_vec();
                            goaway.extend_from_slice(&NO_ERROR.to_be_bytes());
                            frame(&mut out, GOAWAY, 0, 0, &goaway);
                            let _ = tcp.write_all(&out).await;
                            break;
                        }
                        Fail::Close if ended => break,
                        _ => {}
                    }
                    if tcp.write_all(&out).await.is_err() {
                        return;
                    }
                }
                let _ = tcp.shutdown().await;
                // Read until the client closes too: a socket closed over
                // unread bytes sends a reset, which could overtake the
                // GOAWAY.
                let mut sink = [0; 1024];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A GRPCRoute for the calls of three services, not retried.
const FAILING: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: failing-rpc
  namespace: emojivoto
spec:
  parentRefs:
  - {group: core, kind: Service, name: refused}
  - {group: core, kind: Service, name: goaway}
  - {group: core, kind: Service, name: closed}
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService}}]
";

#[tokio::test]
async fn an_attempt_the_upstream_failed_is_labelled_by_the_cause_as_linkerd_labels_it() {
    let refused = failing_h2(Fail::Refused).await;
    let goaway = failing_h2(Fail::GoAway).await;
    let closed = failing_h2(Fail::Close).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, FAILING).unwrap();
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: refused\n      endpoints: [{refused}]\n\
         \x20   - name: goaway\n      endpoints: [{goaway}]\n\
         \x20   - name: closed\n      endpoints: [{closed}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        routes.display()
    ));
    for service in ["refused", "goaway", "closed"] {
        let req = Request::post(format!(
            "http://{service}/emojivoto.v1.EmojiService/ListAll"
        ))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(""))
        .unwrap();
        let res = h2_via(sidecar.outbound, req).await.unwrap();
        // The mesh answered itself, trailers-only.
        assert_eq!(res.headers()["grpc-status"], "14", "{service}");
    }

    let metrics = scrape(sidecar.admin).await;
    let mut backend: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("outbound_grpc_route_backend_response_statuses_total")
                && l.contains("route_name=\"failing-rpc\"")
        })
        .collect();
    backend.sort_unstable();
    let line = |service: &str, error: &str| {
        format!(
            "outbound_grpc_route_backend_response_statuses_total{{parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",parent_name=\"{service}\",parent_port=\"\",parent_section_name=\"\",\
             route_group=\"gateway.networking.k8s.io\",route_kind=\"GRPCRoute\",route_namespace=\"emojivoto\",route_name=\"failing-rpc\",\
             backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",backend_name=\"{service}\",backend_port=\"\",backend_section_name=\"\",\
             grpc_status=\"UNAVAILABLE\",error=\"{error}\"}} 1"
        )
    };
    assert_eq!(
        backend,
        [
            // A connection closed under the stream: an I/O error.
            line("closed", "IO"),
            line("goaway", "GO_AWAY"),
            // A stream reset with REFUSED_STREAM.
            line("refused", "REFUSED"),
        ],
        "{metrics}"
    );
    drop(dir);
    stop(sidecar).await;
}
