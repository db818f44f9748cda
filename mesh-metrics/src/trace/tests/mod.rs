#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    error::{BoxError, ProxyErrorKind},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::Mutex};
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;

use super::{context::hex, span::Attr, *};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

/// An app that answers `status` with no body after 3 ms, and returns the
/// headers it was sent in a response extension.
fn app(
    status: StatusCode,
) -> impl tower::Service<
    Request<()>,
    Response = Response<Empty<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<()>| async move {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let mut res = Response::new(Empty::new());
        *res.status_mut() = status;
        res.extensions_mut().insert(req.headers().clone());
        Ok::<_, Infallible>(res)
    })
}

fn request(traceparent: Option<&str>) -> Request<()> {
    let mut req = Request::get("/api/list?page=2&access_token=s3cr3t")
        .header("host", "web.emojivoto:8080")
        .body(())
        .unwrap();
    if let Some(value) = traceparent {
        req.headers_mut()
            .insert("traceparent", value.parse().unwrap());
    }
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "10.42.0.9:4143".parse().unwrap(),
        remote_addr: "10.42.0.63:51160".parse().unwrap(),
        tls: Tls::Mutual {
            peer: "spiffe://cluster.local/ns/emojivoto/sa/vote-bot"
                .parse()
                .unwrap(),
        },
    });
    req
}

fn tracer() -> (Tracer, SpanExporter) {
    Tracer::new(
        "http://127.0.0.1:1".parse().unwrap(),
        vec![("service.name".into(), "web".into())],
    )
}

/// Every span queued so far.
fn queued(exporter: &mut SpanExporter) -> Vec<span::Span> {
    let mut spans = Vec::new();
    while let Ok(span) = exporter.spans.try_recv() {
        spans.push(span);
    }
    spans
}

fn attr<'a>(span: &'a span::Span, key: &str) -> Option<&'a Attr> {
    span.attributes
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn sent_headers<B>(res: &Response<B>) -> &HeaderMap {
    res.extensions().get::<HeaderMap>().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_sampled_request_gets_a_child_span_and_the_span_is_reported() {
    let (tracer, mut exporter) = tracer();
    let svc = TraceLayer::inbound(Some(tracer)).layer(app(StatusCode::OK));
    let res = svc
        .oneshot(request(Some(&format!("00-{TRACE}-{CALLER}-01"))))
        .await
        .unwrap();

    // The app is the proxy's child: same trace, the proxy's span as parent.
    let sent = sent_headers(&res)["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let (prefix, rest) = sent.split_at(36);
    assert_eq!(prefix, format!("00-{TRACE}-"));
    let proxy_span = &rest[..16];
    assert_ne!(proxy_span, CALLER);
    assert_eq!(&rest[16..], "-01");

    let spans = queued(&mut exporter);
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(hex(&span.trace_id.0), TRACE);
    assert_eq!(hex(&span.parent.0), CALLER);
    assert_eq!(hex(&span.span_id.0), proxy_span);
    assert_eq!(span.name, "GET");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.end - span.start, 3_000_000, "the paused clock's 3 ms");
    assert_eq!(span.error, None);
    let expected = [
        ("mesh.direction", Attr::Str("inbound".into())),
        ("http.request.method", Attr::Str("GET".into())),
        ("url.path", Attr::Str("/api/list".into())),
        ("server.address", Attr::Str("web.emojivoto".into())),
        ("server.port", Attr::Int(8080)),
        ("client.address", Attr::Str("10.42.0.63".into())),
        (
            "mesh.client_id",
            Attr::Str("spiffe://cluster.local/ns/emojivoto/sa/vote-bot".into()),
        ),
        ("http.response.status_code", Attr::Int(200)),
    ];
    assert_eq!(span.attributes, expected);
}

#[tokio::test(start_paused = true)]
async fn spans_are_named_by_method_and_their_strings_are_bounded() {
    let (tracer, mut exporter) = tracer();
    let svc = TraceLayer::inbound(Some(tracer)).layer(app(StatusCode::OK));
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let long_path = format!("/users/{}", "x".repeat(16 * 1024));
    let mut req = request(Some(&traceparent));
    *req.uri_mut() = long_path.parse().unwrap();
    *req.method_mut() = "PURGE".parse().unwrap();
    svc.oneshot(req).await.unwrap();
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(span.name, "HTTP");
    let method = |key| attr(&span, key).cloned();
    assert_eq!(
        method("http.request.method"),
        Some(Attr::Str("_OTHER".into()))
    );
    assert_eq!(
        method("http.request.method_original"),
        Some(Attr::Str("PURGE".into()))
    );
    let expected = Attr::Str(long_path[..open::MAX_ATTRIBUTE].to_owned().into());
    assert_eq!(attr(&span, "url.path"), Some(&expected));
}

#[tokio::test(start_paused = true)]
async fn an_unsampled_trace_is_propagated_but_not_reported() {
    let (tracer, mut exporter) = tracer();
    let svc = TraceLayer::outbound(Some(tracer)).layer(app(StatusCode::OK));
    let res = svc
        .oneshot(request(Some(&format!("00-{TRACE}-{CALLER}-00"))))
        .await
        .unwrap();
    let sent = sent_headers(&res)["traceparent"].to_str().unwrap();
    assert!(sent.starts_with(&format!("00-{TRACE}-")) && sent.ends_with("-00"));
    assert!(!sent.contains(CALLER));
    assert!(queued(&mut exporter).is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_a_context_or_a_tracer_nothing_changes() {
    let (tracer, mut exporter) = tracer();
    let svc = TraceLayer::inbound(Some(tracer)).layer(app(StatusCode::OK));
    let res = svc.oneshot(request(None)).await.unwrap();
    assert!(!sent_headers(&res).contains_key("traceparent"));
    assert!(queued(&mut exporter).is_empty());

    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let svc = TraceLayer::inbound(None).layer(app(StatusCode::OK));
    let res = svc.oneshot(request(Some(&traceparent))).await.unwrap();
    assert_eq!(sent_headers(&res)["traceparent"], traceparent.as_str());
}

#[tokio::test(start_paused = true)]
async fn failures_are_errors_as_opentelemetry_defines_them() {
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let cases = [
        (
            TraceLayer::inbound as fn(_) -> _,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            TraceLayer::inbound,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("503"),
        ),
        (TraceLayer::outbound, StatusCode::NOT_FOUND, Some("404")),
        (TraceLayer::outbound, StatusCode::OK, None),
    ];
    for (layer, status, error_type) in cases {
        let (tracer, mut exporter) = tracer();
        let svc = layer(Some(tracer)).layer(app(status));
        svc.oneshot(request(Some(&traceparent))).await.unwrap();
        let span = queued(&mut exporter).pop().unwrap();
        assert_eq!(
            attr(&span, "error.type"),
            error_type.map(|t| Attr::Str(t.into())).as_ref(),
            "{status}"
        );
        assert_eq!(span.error.is_some(), error_type.is_some(), "{status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_mesh_answer_names_its_error_and_a_dropped_request_is_cancelled() {
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let (tracer, mut exporter) = tracer();
    let denied = service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(ProxyErrorKind::Denied.response_for::<Empty<Bytes>>(false))
    });
    let svc = TraceLayer::inbound(Some(tracer.clone())).layer(denied);
    svc.oneshot(request(Some(&traceparent))).await.unwrap();
    let span = queued(&mut exporter).pop().unwrap();
    let label = ProxyErrorKind::Denied.as_label();
    assert_eq!(attr(&span, "error.type"), Some(&Attr::Str(label.into())));

    let svc = TraceLayer::inbound(Some(tracer)).layer(app(StatusCode::OK));
    let fut = svc.oneshot(request(Some(&traceparent)));
    let _ = tokio::time::timeout(Duration::from_millis(1), fut).await;
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(attr(&span, "error.type"), Some(&Attr::Str("cancel".into())));
    assert_eq!(attr(&span, "http.response.status_code"), None);
    assert_eq!(span.end - span.start, 1_000_000);
}

type Failing = tower::util::BoxCloneService<Request<()>, Response<Empty<Bytes>>, BoxError>;

#[tokio::test(start_paused = true)]
async fn a_failed_request_names_its_error_as_opentelemetry_does() {
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let timeout = || async {
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>()).await;
        Err::<Response<Empty<Bytes>>, BoxError>(elapsed.unwrap_err().into())
    };
    let other = || async { Err::<Response<Empty<Bytes>>, BoxError>("no route".into()) };
    let failing = [
        (Failing::new(service_fn(move |_| timeout())), "timeout"),
        (Failing::new(service_fn(move |_| other())), "_OTHER"),
    ];
    for (inner, kind) in failing {
        let (tracer, mut exporter) = tracer();
        let svc = TraceLayer::outbound(Some(tracer)).layer(inner);
        svc.oneshot(request(Some(&traceparent))).await.unwrap_err();
        let span = queued(&mut exporter).pop().unwrap();
        assert_eq!(attr(&span, "error.type"), Some(&Attr::Str(kind.into())));
        assert!(span.error.is_some_and(|m| !m.is_empty()), "{kind}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_passed_on_as_the_inner_service_failed_and_named_in_the_span() {
    let (tracer, mut exporter) = tracer();
    let inner = service_fn(|_: Request<()>| async {
        Err::<Response<Empty<Bytes>>, _>(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "too slow",
        ))
    });
    let svc = TraceLayer::outbound(Some(tracer)).layer(inner);
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let error: std::io::Error = svc.oneshot(request(Some(&traceparent))).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(
        attr(&span, "error.type"),
        Some(&Attr::Str("timeout".into()))
    );
    assert_eq!(span.error.as_deref(), Some("too slow"));
}

#[tokio::test(start_paused = true)]
async fn a_service_that_cannot_fail_still_cannot() {
    let (tracer, _exporter) = tracer();
    let svc = TraceLayer::inbound(Some(tracer)).layer(app(StatusCode::OK));
    let res: Result<_, Infallible> = svc.oneshot(request(None)).await;
    assert_eq!(res.map(|res| res.status()).ok(), Some(StatusCode::OK));
}

#[tokio::test(start_paused = true)]
async fn userinfo_in_the_authority_is_never_reported() {
    let (tracer, mut exporter) = tracer();
    let svc = TraceLayer::outbound(Some(tracer)).layer(app(StatusCode::OK));
    let mut req = request(Some(&format!("00-{TRACE}-{CALLER}-01")));
    *req.uri_mut() = "http://alice:s3cr3t@web.emojivoto:8080/api"
        .parse()
        .unwrap();
    svc.oneshot(req).await.unwrap();
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(
        attr(&span, "server.address"),
        Some(&Attr::Str("web.emojivoto".into()))
    );
    assert!(!format!("{span:?}").contains("s3cr3t"), "{span:?}");
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_and_counts() {
    let (tracer, mut exporter) = tracer();
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let svc = TraceLayer::inbound(Some(tracer.clone())).layer(app(StatusCode::OK));
    for _ in 0..QUEUE + 3 {
        svc.clone()
            .oneshot(request(Some(&traceparent)))
            .await
            .unwrap();
    }
    assert_eq!(tracer.dropped(), 3);
    assert_eq!(queued(&mut exporter).len(), QUEUE);
}

mod export;
mod grpc;
