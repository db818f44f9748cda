//! `TraceLayer` behind real hyper servers, its spans exported to a
//! collector on 127.0.0.1: over HTTP/2, a gRPC call's span ends at its
//! trailers and carries their `grpc-status`; over HTTP/1, the responses
//! hyper sends without reading their body's end (to `HEAD`, a 204, a body
//! that has written its `content-length`) are complete, not cancelled.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use mesh_metrics::trace::{TraceLayer, Tracer};
use serde_json::Value;
use tokio::sync::mpsc;
use tower::{Layer, service_fn};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE";

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A collector on 127.0.0.1:0 that passes on every span posted to it.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (spans, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let spans = spans.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let spans = spans.clone();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    let batch = &body["resourceSpans"][0]["scopeSpans"][0]["spans"];
                    for span in batch.as_array().unwrap() {
                        let _ = spans.send(span.clone());
                    }
                    Ok::<_, hyper::Error>(Response::new(Empty::<Bytes>::new()))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    (addr, received)
}

/// The application: gRPC under `/emojivoto.v1.EmojiService/` (`ListAll`
/// fails with UNAVAILABLE in its trailers, other methods answer a
/// trailers-only OK), `/204`, and `/stream`, a body that does not know it
/// has ended under a `content-length`; `hello` to anything else.
async fn app(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let full =
        |text: &'static str| UnsyncBoxBody::new(Full::new(Bytes::from_static(text.as_bytes())));
    let path = req.uri().path();
    let mut res = if path == "/emojivoto.v1.EmojiService/ListAll" {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        let frames = [
            Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut res = Response::new(UnsyncBoxBody::new(StreamBody::new(
            futures_util::stream::iter(frames),
        )));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
        res
    } else if path.starts_with("/emojivoto.v1.EmojiService/") {
        let mut res = Response::new(UnsyncBoxBody::new(Empty::new()));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
        res.headers_mut()
            .insert("grpc-status", "0".parse().unwrap());
        res
    } else if path == "/stream" {
        let frames = [Ok(Frame::data(Bytes::from_static(b"hello")))];
        let mut res = Response::new(UnsyncBoxBody::new(StreamBody::new(
            futures_util::stream::iter(frames),
        )));
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, "5".parse().unwrap());
        res
    } else {
        Response::new(full("hello"))
    };
    if path == "/204" {
        *res.status_mut() = StatusCode::NO_CONTENT;
    }
    Ok(res)
}

/// Serves `app` behind an inbound `TraceLayer` on 127.0.0.1:0, HTTP/1 or
/// (with `h2`) HTTP/2, one connection.
async fn server(tracer: &Tracer, h2: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc =
        TowerToHyperService::new(TraceLayer::inbound(Some(tracer.clone())).layer(service_fn(app)));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let io = TokioIo::new(tcp);
        if h2 {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, svc)
                .await;
        } else {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        }
    });
    addr
}

fn request(method: Method, path: &str) -> Request<Empty<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://emoji{path}"))
        .header("traceparent", TRACEPARENT)
        .header("tracestate", TRACESTATE)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Empty::new())
        .unwrap()
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    let attrs = span["attributes"].as_array().unwrap();
    attrs.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

/// Each call's span, by path and method, once the exporter has sent them.
async fn spans(
    tracer: Tracer,
    calls: usize,
    received: &mut mpsc::UnboundedReceiver<Value>,
) -> Vec<Value> {
    drop(tracer);
    let mut spans = Vec::new();
    while spans.len() < calls {
        spans.push(received.recv().await.expect("every span is exported"));
    }
    spans
}

#[tokio::test]
async fn a_grpc_span_over_http2_ends_with_the_status_in_its_trailers() {
    let (collector, mut received) = collector().await;
    let (tracer, exporter) =
        Tracer::new(format!("http://{collector}").parse().unwrap(), Vec::new());
    let export = tokio::spawn(exporter.run());
    let addr = server(&tracer, true).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for (method, status) in [("ListAll", "14"), ("FindByShortcode", "0")] {
        let path = format!("/emojivoto.v1.EmojiService/{method}");
        let res = client
            .send_request(request(Method::POST, &path))
            .await
            .unwrap();
        let head_status = res.headers().get("grpc-status").cloned();
        let collected = res.into_body().collect().await.unwrap();
        let sent = collected
            .trailers()
            .and_then(|t| t.get("grpc-status").cloned())
            .or(head_status)
            .unwrap();
        assert_eq!(sent, status, "{method}");
    }
    let spans = spans(tracer, 2, &mut received).await;
    export.abort();
    for span in &spans {
        let path = attribute(span, "url.path").unwrap()["stringValue"]
            .as_str()
            .unwrap();
        assert_eq!(span["traceId"], TRACE);
        assert_eq!(span["traceState"], TRACESTATE, "{span}");
        assert_eq!(
            attribute(span, "rpc.system").unwrap()["stringValue"],
            "grpc"
        );
        let code = &attribute(span, "rpc.grpc.status_code").unwrap()["intValue"];
        if path.ends_with("/ListAll") {
            assert_eq!(code, "14", "{span}");
            assert_eq!(span["status"]["code"], 2, "{span}");
            assert_eq!(
                attribute(span, "error.type").unwrap()["stringValue"],
                "UNAVAILABLE"
            );
        } else {
            assert_eq!(code, "0", "{span}");
            assert!(span.get("status").is_none(), "{span}");
        }
    }
}

#[tokio::test]
async fn answers_hyper_sends_without_reading_their_body_end_are_not_cancelled() {
    let (collector, mut received) = collector().await;
    let (tracer, exporter) =
        Tracer::new(format!("http://{collector}").parse().unwrap(), Vec::new());
    let export = tokio::spawn(exporter.run());
    let addr = server(&tracer, false).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let calls = [
        (Method::HEAD, "/"),
        (Method::GET, "/204"),
        (Method::GET, "/stream"),
        (Method::GET, "/"),
    ];
    for (method, path) in calls.clone() {
        let res = client.send_request(request(method, path)).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    // The connection closes, and with it the responses the server held.
    drop(client);
    driver.await.unwrap().unwrap();
    let spans = spans(tracer, calls.len(), &mut received).await;
    export.abort();
    for span in &spans {
        assert!(attribute(span, "error.type").is_none(), "{span}");
        assert!(span.get("status").is_none(), "{span}");
    }
}
