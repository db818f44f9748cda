//! A response body that ends short of its `content-length` is a message
//! its client reads as incomplete (RFC 9112 §6.3, RFC 9113 §8.1.1): a tap
//! ends it with `error=reset` and its span with `error.type` `reset`, as
//! `MetricsLayer` counts it, whether an application's body stops early
//! behind an HTTP/1 server or an HTTP/2 upstream ends its stream early
//! with `RST_STREAM(NO_ERROR)`, which hyper's client reads as a clean end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use mesh_metrics::{
    Direction,
    tap::{Tap, TapEventKind, TapFilter, TapLayer},
    trace::{TraceLayer, Tracer},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::mpsc};
use tower::{Layer, ServiceExt, service_fn};

use crate::review_reset_h2::{
    h2_client, half_body, head_of_ten_bytes, raw_h2_upstream, rst_stream,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A collector on 127.0.0.1:0 that passes on every span posted to it.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
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

/// A tracer exporting to a new collector: the tracer, a sender that
/// stops the exporter (which sends what it holds), and the spans the
/// collector received.
async fn tracing() -> (
    Tracer,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<Value>,
) {
    let (addr, received) = collector().await;
    let (tracer, exporter) = Tracer::new(format!("http://{addr}").parse().unwrap(), Vec::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let export = tokio::spawn(exporter.run_until(async move {
        let _ = stopped.await;
    }));
    (tracer, stop, export, received)
}

fn error_type(span: &Value) -> Option<&str> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "error.type")
        .map(|a| a["value"]["stringValue"].as_str().unwrap())
}

/// The `error` of the tap's end event of the next request it sees.
async fn tapped_end(events: &mut mesh_metrics::tap::Subscription) -> Option<String> {
    loop {
        if let TapEventKind::End { error, .. } = events.next().await.unwrap().kind {
            return error;
        }
    }
}

/// `content-length: 10` over a body that sends `sent` and ends, with no
/// size hint of its own.
fn declared_ten(sent: &'static [u8]) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let frames = futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(sent)))]);
    Response::builder()
        .header(header::CONTENT_LENGTH, "10")
        .body(UnsyncBoxBody::new(StreamBody::new(frames)))
        .unwrap()
}

fn path(span: &Value) -> &str {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "url.path")
        .map(|a| a["value"]["stringValue"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn an_application_body_short_of_its_length_ends_its_tap_and_span_as_a_reset() {
    let (tracer, stop, export, mut spans) = tracing().await;
    let tap = Tap::new();
    let mut events = tap.subscribe(TapFilter::default()).unwrap();
    // `/short` sends 5 of its 10 bytes; anything else all 10.
    let app = service_fn(|req: Request<Incoming>| async move {
        let sent: &'static [u8] = if req.uri().path() == "/short" {
            b"hello"
        } else {
            b"helloworld"
        };
        Ok::<_, Infallible>(declared_ten(sent))
    });
    let svc = TapLayer::new(&tap, Direction::Inbound)
        .layer(TraceLayer::inbound(Some(tracer.clone())).layer(app));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    for (path, whole) in [("/whole", true), ("/short", false)] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        let req = Request::get(path)
            .header(header::HOST, addr.to_string())
            .header("traceparent", TRACEPARENT)
            .body(Empty::<Bytes>::new())
            .unwrap();
        // hyper aborts a short response, maybe before it flushed the head:
        // either way, the client gets no complete one.
        let complete = match sender.send_request(req).await {
            Ok(res) => res.into_body().collect().await.is_ok(),
            Err(_) => false,
        };
        assert_eq!(complete, whole, "{path}");
        let expected = (!whole).then(|| "reset".to_owned());
        assert_eq!(tapped_end(&mut events).await, expected, "{path}");
        drop(sender);
        let _ = driver.await;
    }
    server.abort();
    drop(tracer);
    stop.send(()).unwrap();
    export.await.unwrap();
    let mut both = [spans.recv().await.unwrap(), spans.recv().await.unwrap()];
    both.sort_by(|a, b| path(b).cmp(path(a)));
    let [whole, short] = both;
    assert_eq!(path(&whole), "/whole");
    assert_eq!(error_type(&whole), None, "{whole}");
    assert!(whole.get("status").is_none(), "{whole}");
    assert_eq!(error_type(&short), Some("reset"), "{short}");
    assert_eq!(short["status"]["code"], 2, "{short}");
}

#[tokio::test]
async fn an_upstream_stream_ended_early_with_no_error_is_tapped_and_traced_as_a_reset() {
    let (tracer, stop, export, mut spans) = tracing().await;
    let tap = Tap::new();
    let mut events = tap.subscribe(TapFilter::default()).unwrap();
    // 5 of 10 bytes, then RST_STREAM(NO_ERROR): hyper's client ends the
    // body there, cleanly.
    let addr = raw_h2_upstream([head_of_ten_bytes(), half_body(), rst_stream(0)].concat()).await;
    let sender = h2_client(addr).await;
    let upstream = service_fn(move |req| {
        let mut sender = sender.clone();
        async move { sender.send_request(req).await }
    });
    let outbound = TapLayer::new(&tap, Direction::Outbound)
        .layer(TraceLayer::outbound(Some(tracer.clone())).layer(upstream));
    let req = Request::get(format!("http://{addr}/"))
        .header("traceparent", TRACEPARENT)
        .body(Empty::new())
        .unwrap();
    let res = outbound.oneshot(req).await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "10");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    assert_eq!(tapped_end(&mut events).await.as_deref(), Some("reset"));
    drop(tracer);
    stop.send(()).unwrap();
    export.await.unwrap();
    let span = spans.recv().await.unwrap();
    assert_eq!(error_type(&span), Some("reset"), "{span}");
    assert_eq!(span["status"]["code"], 2, "{span}");
}
