//! Spans that end with their response body: gRPC's status in trailers,
//! bodies the caller abandons, and `tracestate`.

use http::{HeaderValue, Method};
use http_body::Frame;
use http_body_util::{StreamBody, combinators::UnsyncBoxBody};

use super::*;

type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A header list for a head or trailers.
type Fields = &'static [(&'static str, &'static str)];

/// An app that answers 200 with `head` at once; with `trailers`, a
/// message 5 ms later and the trailers 5 ms after that, else nothing more
/// (a trailers-only answer when `head` has the status).
fn app_with(
    head: Fields,
    trailers: Option<Fields>,
) -> impl tower::Service<Request<()>, Response = Response<Body>, Error = Infallible, Future = impl Send>
+ Clone {
    let fields = |pairs: Fields| -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_static(v)))
            .collect()
    };
    service_fn(move |req: Request<()>| async move {
        let body = match trailers {
            Some(trailers) => {
                let frames = [
                    Frame::data(Bytes::from_static(b"msg")),
                    Frame::trailers(fields(trailers)),
                ];
                let stream = futures_util::stream::unfold(frames.into_iter(), |mut frames| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    frames.next().map(|f| (Ok::<_, BoxError>(f), frames))
                });
                UnsyncBoxBody::new(StreamBody::new(stream))
            }
            None => UnsyncBoxBody::new(Empty::new().map_err(|never| match never {})),
        };
        let mut res = Response::new(body);
        *res.headers_mut() = fields(head);
        res.extensions_mut().insert(req.headers().clone());
        Ok::<_, Infallible>(res)
    })
}

const GRPC: Fields = &[("content-type", "application/grpc")];

fn sampled() -> Request<()> {
    request(Some(&format!("00-{TRACE}-{CALLER}-01")))
}

async fn read_to_end<B: http_body::Body>(res: Response<B>) -> Option<HeaderMap>
where
    B::Error: std::fmt::Debug,
{
    res.into_body().collect().await.unwrap().trailers().cloned()
}

#[tokio::test(start_paused = true)]
async fn a_grpc_failure_in_the_trailers_is_an_error_span_ended_by_them() {
    let (tracer, mut exporter) = tracer();
    let unavailable: Fields = &[("grpc-status", "14"), ("grpc-message", "no endpoints")];
    let svc = TraceLayer::inbound(Some(tracer)).layer(app_with(GRPC, Some(unavailable)));
    let res = svc.oneshot(sampled()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(queued(&mut exporter).is_empty(), "reported at the head");

    let trailers = read_to_end(res).await.unwrap();
    assert_eq!(trailers["grpc-status"], "14", "the trailers pass on");
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(span.end - span.start, 10_000_000, "ends at the trailers");
    let expected = [
        ("http.response.status_code", Attr::Int(200)),
        ("rpc.system", Attr::Str("grpc".into())),
        ("rpc.grpc.status_code", Attr::Int(14)),
        ("error.type", Attr::Str("UNAVAILABLE".into())),
    ];
    assert_eq!(span.attributes[span.attributes.len() - 4..], expected);
    assert!(span.error.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_trailers_only_ok_ends_with_the_head_and_is_no_error() {
    let (tracer, mut exporter) = tracer();
    let ok: Fields = &[
        ("content-type", "application/grpc+proto"),
        ("grpc-status", "0"),
    ];
    let svc = TraceLayer::outbound(Some(tracer)).layer(app_with(ok, None));
    let res = svc.oneshot(sampled()).await.unwrap();
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(attr(&span, "rpc.grpc.status_code"), Some(&Attr::Int(0)));
    assert_eq!(attr(&span, "error.type"), None);
    assert_eq!(span.error, None);
    read_to_end(res).await;
    assert!(queued(&mut exporter).is_empty(), "reported twice");
}

#[tokio::test(start_paused = true)]
async fn not_found_fails_a_client_span_but_not_a_server_span() {
    let not_found: Fields = &[("grpc-status", "5")];
    for (layer, error_type) in [
        (TraceLayer::inbound as fn(_) -> _, None),
        (TraceLayer::outbound, Some("NOT_FOUND")),
    ] {
        let (tracer, mut exporter) = tracer();
        let svc = layer(Some(tracer)).layer(app_with(GRPC, Some(not_found)));
        read_to_end(svc.oneshot(sampled()).await.unwrap()).await;
        let span = queued(&mut exporter).pop().unwrap();
        assert_eq!(attr(&span, "rpc.grpc.status_code"), Some(&Attr::Int(5)));
        let expected = error_type.map(|t| Attr::Str(t.into()));
        assert_eq!(attr(&span, "error.type"), expected.as_ref());
        assert_eq!(span.error.is_some(), error_type.is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn a_status_in_an_http_answer_is_not_read_as_grpc() {
    let (tracer, mut exporter) = tracer();
    let svc =
        TraceLayer::outbound(Some(tracer)).layer(app_with(&[], Some(&[("grpc-status", "14")])));
    read_to_end(svc.oneshot(sampled()).await.unwrap()).await;
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(attr(&span, "rpc.system"), None);
    assert_eq!(attr(&span, "rpc.grpc.status_code"), None);
    assert_eq!(span.error, None);
    assert_eq!(span.end - span.start, 10_000_000, "ends with the body");
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_body_reports_a_cancelled_span_with_its_status() {
    let (tracer, mut exporter) = tracer();
    let svc =
        TraceLayer::inbound(Some(tracer)).layer(app_with(GRPC, Some(&[("grpc-status", "0")])));
    let res = svc.oneshot(sampled()).await.unwrap();
    let mut body = res.into_body();
    body.frame().await.unwrap().unwrap();
    assert!(queued(&mut exporter).is_empty());
    drop(body);
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(
        attr(&span, "http.response.status_code"),
        Some(&Attr::Int(200))
    );
    assert_eq!(attr(&span, "rpc.grpc.status_code"), None);
    assert_eq!(attr(&span, "error.type"), Some(&Attr::Str("cancel".into())));
    let message = span.error.unwrap();
    assert!(message.contains("response body"), "{message}");
    assert_eq!(span.end - span.start, 5_000_000);
}

#[tokio::test(start_paused = true)]
async fn tracestate_goes_with_the_span_and_passes_on_unchanged() {
    let (tracer, mut exporter) = tracer();
    let svc = TraceLayer::inbound(Some(tracer)).layer(app(StatusCode::OK));
    let mut req = sampled();
    let state = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7";
    req.headers_mut()
        .insert("tracestate", state.parse().unwrap());
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(sent_headers(&res)["tracestate"], state);
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(span.trace_state.as_deref(), Some(state));

    // One the W3C calls invalid (a key twice) goes on as it came, and
    // with no span.
    let mut req = sampled();
    let invalid = "congo=t61rcWkgMzE,congo=00f067aa0ba902b7";
    req.headers_mut()
        .insert("tracestate", invalid.parse().unwrap());
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(sent_headers(&res)["tracestate"], invalid);
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(span.trace_state, None);

    // Without `traceparent` there is no W3C context to go with.
    let mut req = request(None);
    req.headers_mut()
        .insert("b3", format!("{TRACE}-{CALLER}-1").parse().unwrap());
    req.headers_mut()
        .insert("tracestate", state.parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(sent_headers(&res)["tracestate"], state);
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(span.trace_state, None);
}

#[tokio::test(start_paused = true)]
async fn a_failing_body_names_its_error() {
    let (tracer, mut exporter) = tracer();
    let failing = service_fn(|_: Request<()>| async {
        let stream = futures_util::stream::iter([Err::<Frame<Bytes>, BoxError>("reset".into())]);
        Ok::<_, Infallible>(Response::new(StreamBody::new(stream)))
    });
    let svc = TraceLayer::outbound(Some(tracer)).layer(failing);
    let res = svc.oneshot(sampled()).await.unwrap();
    res.into_body().collect().await.unwrap_err();
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(attr(&span, "error.type"), Some(&Attr::Str("_OTHER".into())));
    assert_eq!(span.error.as_deref(), Some("reset"));
}

#[tokio::test(start_paused = true)]
async fn answers_without_a_body_end_with_their_head_though_theirs_is_never_read() {
    // A server sends no body to HEAD, nor with a 204 or 304, and drops the
    // one it was given unread: that is no cancellation.
    for (method, status) in [
        ("HEAD", StatusCode::OK),
        ("CONNECT", StatusCode::OK),
        ("GET", StatusCode::SWITCHING_PROTOCOLS),
        ("GET", StatusCode::NO_CONTENT),
        ("GET", StatusCode::NOT_MODIFIED),
    ] {
        let (tracer, mut exporter) = tracer();
        let unread = service_fn(move |_: Request<()>| async move {
            let mut res = Response::new(Full::new(Bytes::from_static(b"unsent")));
            *res.status_mut() = status;
            Ok::<_, Infallible>(res)
        });
        let svc = TraceLayer::inbound(Some(tracer)).layer(unread);
        let mut req = sampled();
        *req.method_mut() = method.parse().unwrap();
        let res = svc.oneshot(req).await.unwrap();
        let span = queued(&mut exporter).pop().unwrap();
        assert_eq!(attr(&span, "error.type"), None, "{method} {status}");
        drop(res);
        assert!(queued(&mut exporter).is_empty(), "{method} {status}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_dropped_once_its_length_was_sent_is_done_and_before_cancelled() {
    // A stream that does not know it has ended, under a `content-length`.
    for (length, error_type) in [("5", None), ("6", Some("cancel"))] {
        let (tracer, mut exporter) = tracer();
        let stream = service_fn(move |_: Request<()>| async move {
            let frames = [Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                b"hello",
            )))];
            let body = StreamBody::new(futures_util::stream::iter(frames));
            let res = Response::builder()
                .header("content-length", length)
                .body(body)
                .unwrap();
            Ok::<_, Infallible>(res)
        });
        let svc = TraceLayer::inbound(Some(tracer)).layer(stream);
        let mut body = svc.oneshot(sampled()).await.unwrap().into_body();
        body.frame().await.unwrap().unwrap();
        assert!(queued(&mut exporter).is_empty(), "{length}");
        drop(body);
        let span = queued(&mut exporter).pop().unwrap();
        let expected = error_type.map(|t| Attr::Str(t.into()));
        assert_eq!(attr(&span, "error.type"), expected.as_ref(), "{length}");
    }
}

/// `sampled()` made a gRPC call: `POST` to `path`, with gRPC's content type.
fn grpc_call(path: &str) -> Request<()> {
    let mut req = sampled();
    *req.method_mut() = Method::POST;
    *req.uri_mut() = path.parse().unwrap();
    req.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    req
}

#[tokio::test(start_paused = true)]
async fn a_grpc_span_is_named_after_the_method_it_calls() {
    let (tracer, mut exporter) = tracer();
    let ok: Fields = &[("content-type", "application/grpc"), ("grpc-status", "0")];
    let svc = TraceLayer::inbound(Some(tracer)).layer(app_with(ok, None));
    let call = grpc_call("/emoji.EmojiService/ListAll");
    read_to_end(svc.clone().oneshot(call).await.unwrap()).await;
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(span.name, "emoji.EmojiService/ListAll");
    let service = Attr::Str("emoji.EmojiService".into());
    assert_eq!(attr(&span, "rpc.service"), Some(&service));
    assert_eq!(
        attr(&span, "rpc.method"),
        Some(&Attr::Str("ListAll".into()))
    );

    // Not a gRPC method: named by the HTTP method, with no rpc.service.
    let mut get = grpc_call("/emoji.EmojiService/ListAll");
    *get.method_mut() = Method::GET;
    let mut plain = grpc_call("/emoji.EmojiService/ListAll");
    plain.headers_mut().remove("content-type");
    for (req, name) in [
        (get, "GET"),
        (grpc_call("/emoji.EmojiService/ListAll/more"), "POST"),
        (grpc_call("/emoji.EmojiService/"), "POST"),
        (plain, "POST"),
    ] {
        let path = req.uri().path().to_owned();
        read_to_end(svc.clone().oneshot(req).await.unwrap()).await;
        let span = queued(&mut exporter).pop().unwrap();
        assert_eq!(span.name, name, "{path}");
        assert_eq!(attr(&span, "rpc.service"), None, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_no_server_method_answered_is_named_by_its_http_method() {
    // The caller picks the path, so its method name is a closed set only
    // once the application has answered it as one of its methods: a
    // client spraying made-up methods at a server that refuses them, or
    // at the mesh that denies them, would otherwise make a span name (an
    // operation in a trace store) per request.
    let unimplemented: Fields = &[("content-type", "application/grpc"), ("grpc-status", "12")];
    let in_trailers: Fields = &[("grpc-status", "12")];
    let not_grpc: Fields = &[("content-type", "text/html")];
    for (app, trailers, what) in [
        (unimplemented, None, "a trailers-only UNIMPLEMENTED"),
        (GRPC, Some(in_trailers), "UNIMPLEMENTED in the trailers"),
        (not_grpc, None, "an answer that is not gRPC"),
    ] {
        let (tracer, mut exporter) = tracer();
        let svc = TraceLayer::inbound(Some(tracer)).layer(app_with(app, trailers));
        let call = grpc_call("/x.Made/Up");
        read_to_end(svc.oneshot(call).await.unwrap()).await;
        let span = queued(&mut exporter).pop().unwrap();
        assert_eq!(span.name, "POST", "{what}");
    }

    // The mesh's own answer (denied, no route) says nothing of the
    // application's methods either.
    let (tracer, mut exporter) = tracer();
    let denied = service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(ProxyErrorKind::Denied.response_for::<Body>(true))
    });
    let svc = TraceLayer::inbound(Some(tracer)).layer(denied);
    read_to_end(svc.oneshot(grpc_call("/x.Made/Up")).await.unwrap()).await;
    let span = queued(&mut exporter).pop().unwrap();
    assert_eq!(span.name, "POST", "denied by the mesh");
}
