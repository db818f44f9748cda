//! A gRPC server may fail a call with an ordinary head (`200`,
//! `content-type: application/grpc`, no `grpc-status`) and, at once,
//! trailers carrying `UNAVAILABLE`: the same failure as a trailers-only
//! answer, in two frames. Through the sidecar's outbound routes, as
//! through Linkerd's, it is retried; an answer whose first frame is a
//! message is not, and reaches the caller byte for byte with its trailers;
//! a plain HTTP answer is never held for its body. HTTP/2 on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use support::*;
use tokio::sync::Notify;

/// A GRPCRoute on `emoji` whose calls are retried on `UNAVAILABLE`, as
/// Linkerd's annotation asks.
const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: emoji-calls
  namespace: emojivoto
  annotations: {retry.linkerd.io/grpc: unavailable}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService}}]
";

/// A gRPC message: a 5-byte prefix and its payload.
const MESSAGE: &[u8] = b"\x00\x00\x00\x00\x05hello";

fn trailers(status: &'static str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    trailers.insert("x-t", HeaderValue::from_static("1"));
    trailers
}

/// A body of `frames`, in order.
fn frames(frames: Vec<Frame<Bytes>>) -> Body {
    let frames = futures_util::stream::iter(frames.into_iter().map(Ok));
    BodyExt::boxed(StreamBody::new(frames))
}

/// Calls seen, by path.
type Calls = Arc<Mutex<HashMap<String, usize>>>;

/// The application behind the sidecar, a gRPC server and a plain one:
///
/// - `…/ListAll`: the head, then trailers `UNAVAILABLE` on its first call;
///   a message and trailers `OK` after;
/// - `…/Vote`: the head, a message, then trailers `UNAVAILABLE`;
/// - `/held` (plain HTTP): the head, then `late` once `release` is
///   notified.
///
/// Each call's request body is read whole before it is answered, as a
/// gRPC server does.
async fn app() -> (SocketAddr, Calls, Arc<Notify>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Calls::default();
    let release = Arc::new(Notify::new());
    let (seen, notify) = (calls.clone(), release.clone());
    serve(listener, move |req: Request<Incoming>| {
        let (seen, notify) = (seen.clone(), notify.clone());
        async move {
            let path = req.uri().path().to_owned();
            req.into_body().collect().await?;
            let n = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(path.clone()).or_default();
                *n += 1;
                *n
            };
            let message = || Frame::data(Bytes::from_static(MESSAGE));
            let body = match (path.as_str(), n) {
                ("/emojivoto.v1.EmojiService/ListAll", 1) => {
                    frames(vec![Frame::trailers(trailers("14"))])
                }
                ("/emojivoto.v1.EmojiService/ListAll", _) => {
                    frames(vec![message(), Frame::trailers(trailers("0"))])
                }
                ("/emojivoto.v1.EmojiService/Vote", _) => {
                    frames(vec![message(), Frame::trailers(trailers("14"))])
                }
                _ => {
                    let late = futures_util::stream::once(async move {
                        notify.notified().await;
                        Ok(Frame::data(Bytes::from_static(b"late")))
                    });
                    BodyExt::boxed(StreamBody::new(late))
                }
            };
            let mut res = Response::new(body);
            let kind = if path == "/held" {
                "text/plain"
            } else {
                "application/grpc"
            };
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static(kind));
            Ok(res)
        }
    });
    (addr, calls, release)
}

/// A sidecar whose outbound `emoji` (its GRPCRoute) and `web` (its own
/// retries, on HTTP statuses) are `app`.
fn config(dir: &tempfile::TempDir, app: SocketAddr) -> String {
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, GRPC).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         \x20   - name: web\n      endpoints: [{app}]\n      retry: {{attempts: 3}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    )
}

async fn grpc_call(outbound: SocketAddr, method: &str) -> Response<Incoming> {
    let req = emoji_call("emoji", method).body(full("request")).unwrap();
    h2_via(outbound, req).await.unwrap()
}

async fn read(res: Response<Incoming>) -> (Bytes, Option<HeaderMap>) {
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

fn calls(seen: &Calls, path: &str) -> usize {
    seen.lock().unwrap().get(path).copied().unwrap_or(0)
}

#[tokio::test]
async fn unavailable_in_trailers_right_after_the_head_is_retried() {
    let (app, seen, _) = app().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&config(&dir, app));
    let res = grpc_call(sidecar.outbound, "ListAll").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("grpc-status").is_none(), "{res:?}");
    let (data, trailers) = read(res).await;
    assert_eq!(calls(&seen, "/emojivoto.v1.EmojiService/ListAll"), 2);
    assert_eq!(data, MESSAGE, "the second attempt's message");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");

    // Counted as a retried call, as a trailers-only UNAVAILABLE is.
    let metrics = scrape(sidecar.admin).await;
    let route = ["service=\"emoji\"", "route=\"emoji-calls\""];
    assert_eq!(
        series(&metrics, "retry_requests_total", &route),
        1,
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "retry_successes_total", &route),
        1,
        "{metrics}"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_message_first_is_not_retried_and_reaches_the_caller_whole() {
    let (app, seen, _) = app().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&config(&dir, app));
    let res = grpc_call(sidecar.outbound, "Vote").await;
    assert_eq!(res.status(), StatusCode::OK);
    let (data, trailers) = read(res).await;
    assert_eq!(calls(&seen, "/emojivoto.v1.EmojiService/Vote"), 1);
    assert_eq!(data, MESSAGE, "every byte, in order");
    let trailers = trailers.unwrap();
    assert_eq!(trailers["grpc-status"], "14");
    assert_eq!(trailers["x-t"], "1");
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(
        series(&metrics, "retry_requests_total", &["service=\"emoji\""]),
        0,
        "{metrics}"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_plain_http_answer_is_not_held_for_its_body() {
    let (app, seen, release) = app().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&config(&dir, app));
    let req = Request::get("http://web/held")
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), h2_via(sidecar.outbound, req))
        .await
        .expect("the head was held back until the body's first frame")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    release.notify_one();
    assert_eq!(body_bytes(res).await, "late");
    assert_eq!(calls(&seen, "/held"), 1);
    stop(sidecar).await;
}
