//! The inbound observability stack as the sidecar builds it (trace, then
//! access log, then tap, in front of the application), on a real socket:
//! what each of them tells of a request, over HTTP/1 and HTTP/2, when its
//! trace headers are those the W3C's and B3's specifications describe,
//! when its client sends hostile text, and when its client cancels it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{Server, ServerConfig, shutdown};
use mesh_metrics::{
    Direction,
    access_log::{AccessLog, AccessLogFormat, AccessLogLayer},
    tap::{Subscription, Tap, TapEventKind, TapFilter, TapLayer},
    trace::{TraceLayer, Tracer},
};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tower::{Layer, service_fn};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

type AppBody = UnsyncBoxBody<Bytes, Infallible>;

/// What the application saw of each request, by `x-case`: its headers in
/// the order they came, every value of a repeated one included.
type Seen = Arc<Mutex<HashMap<String, Vec<(String, String)>>>>;

/// Releases the answers of `/held` requests, one per send.
type Held = Arc<Mutex<Vec<oneshot::Sender<()>>>>;

/// The inbound stack on 127.0.0.1:0, with a collector for its spans and a
/// pipe for its access log.
struct Stack {
    addr: SocketAddr,
    tap: Tap,
    seen: Seen,
    /// The senders that answer the `/held` requests waiting so far.
    held: Held,
    lines: mpsc::UnboundedReceiver<String>,
    spans: mpsc::UnboundedReceiver<Value>,
    stop_export: Option<oneshot::Sender<()>>,
    export: Option<JoinHandle<()>>,
    _shutdown: shutdown::ShutdownTrigger,
}

/// The application: `/held` answers once the test says so, `/hang`
/// never, `/stream` sends its head, then a chunk, then waits for the test
/// before its last chunk; anything else answers `ok`. Each request's
/// headers are kept under its `x-case`.
fn app(
    seen: Seen,
    held: Held,
    stream_gate: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<AppBody>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send {
    service_fn(move |req: Request<Incoming>| {
        let seen = seen.clone();
        let held = held.clone();
        let stream_gate = stream_gate.clone();
        async move {
            let case = req
                .headers()
                .get("x-case")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (k.as_str().to_owned(), v)
                })
                .collect();
            seen.lock().unwrap().insert(case, headers);
            match req.uri().path() {
                "/hang" => std::future::pending::<()>().await,
                "/held" => {
                    let (release, released) = oneshot::channel();
                    held.lock().unwrap().push(release);
                    let _ = released.await;
                }
                "/stream" => {
                    let gate = stream_gate.lock().unwrap().take().unwrap();
                    // The last chunk waits for the gate.
                    let frames = futures_util::stream::iter([
                        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"first "))),
                        Ok(Frame::data(Bytes::from_static(b"last"))),
                    ]);
                    let gated = GatedStream {
                        inner: Box::pin(frames),
                        gate: Some(gate),
                        sent: 0,
                    };
                    let body = BodyExt::boxed_unsync(StreamBody::new(gated));
                    return Ok(Response::new(body));
                }
                _ => {}
            }
            Ok::<_, Infallible>(Response::new(BodyExt::boxed_unsync(Full::from("ok"))))
        }
    })
}

/// A stream that holds its second item until its gate opens.
struct GatedStream<S> {
    inner: std::pin::Pin<Box<S>>,
    gate: Option<oneshot::Receiver<()>>,
    sent: usize,
}

impl<S> futures_util::Stream for GatedStream<S>
where
    S: futures_util::Stream,
{
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        if self.sent == 1
            && let Some(gate) = self.gate.as_mut()
        {
            let _ = std::task::ready!(std::pin::Pin::new(gate).poll(cx));
            self.gate = None;
        }
        let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
        self.sent += 1;
        std::task::Poll::Ready(item)
    }
}

use std::future::Future as _;

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

impl Stack {
    async fn start(format: AccessLogFormat) -> (Self, oneshot::Sender<()>) {
        let (collector, spans) = collector().await;
        let (tracer, exporter) =
            Tracer::new(format!("http://{collector}").parse().unwrap(), Vec::new());
        let (stop_export, stopped) = oneshot::channel::<()>();
        let export = tokio::spawn(exporter.run_until(async move {
            let _ = stopped.await;
        }));

        let (log, writer) = AccessLog::new(format);
        let (sink, source) = tokio::io::duplex(1 << 16);
        tokio::spawn(writer.run(sink));
        let (line_tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut source = BufReader::new(source);
            let mut line = String::new();
            while source.read_line(&mut line).await.unwrap() > 0 {
                let _ = line_tx.send(std::mem::take(&mut line));
            }
        });

        let tap = Tap::new();
        let seen = Seen::default();
        let held = Held::default();
        let (open_stream, gate) = oneshot::channel();
        let app = app(seen.clone(), held.clone(), Arc::new(Mutex::new(Some(gate))));
        let stack = TapLayer::new(&tap, Direction::Inbound).layer(app);
        let stack = AccessLogLayer::new(Some(log)).layer(stack);
        let stack = TraceLayer::inbound(Some(tracer)).layer(stack);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, signal) = shutdown::channel();
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, signal));
        let stack = Self {
            addr,
            tap,
            seen,
            held,
            lines,
            spans,
            stop_export: Some(stop_export),
            export: Some(export),
            _shutdown: trigger,
        };
        (stack, open_stream)
    }

    /// Sends `GET path` over HTTP/1 with `headers`, and reads the answer.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> StatusCode {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::get(path).header("host", "web.emojivoto:8080");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        res.into_body().collect().await.unwrap();
        status
    }

    /// The headers the application saw of the request sent with
    /// `x-case: case`: every value of `name`, in order.
    fn seen(&self, case: &str, name: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen[case]
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stops the exporter, which sends what it holds, and returns every
    /// span the collector got.
    async fn spans(&mut self) -> Vec<Value> {
        drop(self.stop_export.take());
        self.export.take().unwrap().await.unwrap();
        let mut spans = Vec::new();
        while let Ok(span) = self.spans.try_recv() {
            spans.push(span);
        }
        spans
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// The span whose `url.path` is `path`, and the others.
fn span_at<'a>(spans: &'a [Value], case: &str) -> Option<&'a Value> {
    spans
        .iter()
        .find(|s| attr(s, "url.path").unwrap()["stringValue"] == format!("/{case}"))
}

/// The 16 hex digits of a span id that is not `caller` and not zero.
fn assert_new_span(id: &str, caller: &str) {
    assert_eq!(id.len(), 16, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(id, caller);
    assert_ne!(id, "0000000000000000");
}

#[tokio::test]
async fn traceparent_is_read_as_the_w3c_test_suite_reads_it_and_tracestate_passes_as_it_came() {
    let (mut stack, _) = Stack::start(AccessLogFormat::Json).await;
    let sampled = format!("00-{TRACE}-{CALLER}-01");
    let future = format!("cc-{TRACE}-{CALLER}-01-what-the-future-will-be-like");
    let future_no_dash = format!("cc-{TRACE}-{CALLER}-01.what-the-future-will-be-like");
    let ff = format!("ff-{TRACE}-{CALLER}-01");
    let zero_trace = format!("00-{}-{CALLER}-01", "0".repeat(32));
    let zero_parent = format!("00-{TRACE}-{}-01", "0".repeat(16));
    let upper = format!("00-{}-{CALLER}-01", TRACE.to_uppercase());
    let upper_parent = format!("00-{TRACE}-{}-01", "00F067AA0BA902B7");
    let unsampled = format!("00-{TRACE}-{CALLER}-00");
    let v00_longer = format!("00-{TRACE}-{CALLER}-01-");

    // (path, traceparent, joined: the proxy's span comes in as the parent)
    let cases = [
        ("sampled", sampled.as_str(), true),
        ("future", future.as_str(), true),
        ("future_no_dash", future_no_dash.as_str(), false),
        ("ff", ff.as_str(), false),
        ("zero_trace", zero_trace.as_str(), false),
        ("zero_parent", zero_parent.as_str(), false),
        ("upper", upper.as_str(), false),
        ("upper_parent", upper_parent.as_str(), false),
        ("unsampled", unsampled.as_str(), true),
        ("v00_longer", v00_longer.as_str(), false),
    ];
    let tracestate = ["congo=t61rcWkgMzE , rojo=00f067aa0ba902b7", "x@y=1,,"];
    for (case, traceparent, _) in cases {
        let status = stack
            .get(
                &format!("/{case}"),
                &[
                    ("x-case", case),
                    ("traceparent", traceparent),
                    ("tracestate", tracestate[0]),
                    ("tracestate", tracestate[1]),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let spans = stack.spans().await;
    for (case, traceparent, joined) in cases {
        let sent = stack.seen(case, "traceparent");
        assert_eq!(sent.len(), 1, "{case}: {sent:?}");
        // tracestate passes on untouched, whatever the proxy did.
        assert_eq!(stack.seen(case, "tracestate"), tracestate, "{case}");
        let span = span_at(&spans, case);
        if !joined {
            assert_eq!(sent[0], traceparent, "{case}: left alone");
            assert!(span.is_none(), "{case}: {span:?}");
            continue;
        }
        // Written as version 00, the flags as they came, the proxy's span
        // the parent of the next hop.
        let flags = &traceparent[53..55];
        let (head, rest) = sent[0].split_at(36);
        assert_eq!(head, format!("00-{TRACE}-"), "{case}");
        assert_eq!(rest.len(), 19, "{case}: {}", sent[0]);
        assert_eq!(&rest[16..], format!("-{flags}"), "{case}");
        let proxy_span = &rest[..16];
        assert_new_span(proxy_span, CALLER);
        if flags == "00" {
            assert!(span.is_none(), "{case}: not sampled, not reported");
            continue;
        }
        let span = span.unwrap_or_else(|| panic!("{case}: no span in {spans:?}"));
        assert_eq!(span["traceId"], TRACE, "{case}");
        assert_eq!(span["parentSpanId"], CALLER, "{case}");
        assert_eq!(span["spanId"], proxy_span, "{case}");
        assert_eq!(
            span["traceState"], "congo=t61rcWkgMzE , rojo=00f067aa0ba902b7,x@y=1,,",
            "{case}"
        );
    }
    assert_eq!(spans.len(), 2, "{spans:?}");
}

#[tokio::test]
async fn b3_single_and_multi_join_the_trace_with_a_new_span_and_their_sampling() {
    let (mut stack, _) = Stack::start(AccessLogFormat::Json).await;
    const NARROW: &str = "a3ce929d0e0e4736";
    const GRANDPARENT: &str = "05e3ac9a4f6e3b90";
    let single_64 = format!("{NARROW}-{CALLER}-1-{GRANDPARENT}");
    let single_128_debug = format!("{TRACE}-{CALLER}-d");
    let single_deferred = format!("{TRACE}-{CALLER}");
    let single_denied = format!("{TRACE}-{CALLER}-0");
    stack
        .get("/single_64", &[("x-case", "single_64"), ("b3", &single_64)])
        .await;
    stack
        .get(
            "/single_debug",
            &[("x-case", "single_debug"), ("b3", &single_128_debug)],
        )
        .await;
    stack
        .get(
            "/single_deferred",
            &[("x-case", "single_deferred"), ("b3", &single_deferred)],
        )
        .await;
    stack
        .get(
            "/single_denied",
            &[("x-case", "single_denied"), ("b3", &single_denied)],
        )
        .await;
    for (case, sampled, flags) in [
        ("multi_true", Some("true"), None),
        ("multi_1", Some("1"), None),
        ("multi_0", Some("0"), None),
        ("multi_flags", None, Some("1")),
        ("multi_flags_over_0", Some("0"), Some("1")),
    ] {
        let mut headers = vec![
            ("x-case", case),
            ("X-B3-TraceId", NARROW),
            ("X-B3-SpanId", CALLER),
            ("X-B3-ParentSpanId", GRANDPARENT),
        ];
        if let Some(sampled) = sampled {
            headers.push(("X-B3-Sampled", sampled));
        }
        if let Some(flags) = flags {
            headers.push(("X-B3-Flags", flags));
        }
        stack.get(&format!("/{case}"), &headers).await;
    }
    let spans = stack.spans().await;

    // B3 in one header: the trace id as wide as it came, the proxy's span,
    // the sampling state, the caller as the parent.
    let sent = &stack.seen("single_64", "b3")[0];
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(
        (parts[0], parts[2], parts[3]),
        (NARROW, "1", CALLER),
        "{sent}"
    );
    assert_new_span(parts[1], CALLER);
    let span = span_at(&spans, "single_64").unwrap();
    assert_eq!(span["traceId"], format!("{}{NARROW}", "0".repeat(16)));
    assert_eq!(span["parentSpanId"], CALLER);
    assert_eq!(span["spanId"], parts[1]);

    let sent = &stack.seen("single_debug", "b3")[0];
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (parts[0], parts[2], parts[3]),
        (TRACE, "d", CALLER),
        "{sent}"
    );
    assert!(
        span_at(&spans, "single_debug").is_some(),
        "debug is sampled"
    );

    // No sampling state: the decision is deferred, and no state or parent
    // is invented on the way out.
    let sent = &stack.seen("single_deferred", "b3")[0];
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 2, "{sent}");
    assert_eq!(parts[0], TRACE);
    assert_new_span(parts[1], CALLER);
    assert!(span_at(&spans, "single_deferred").is_none());
    assert!(span_at(&spans, "single_denied").is_none());

    // B3 in several headers: a new x-b3-spanid, the caller's as
    // x-b3-parentspanid, the trace id as it came, `true` as `1`.
    for (case, sampled, reported) in [
        ("multi_true", Some("1"), true),
        ("multi_1", Some("1"), true),
        ("multi_0", Some("0"), false),
        ("multi_flags", None, true),
        ("multi_flags_over_0", Some("0"), true),
    ] {
        assert_eq!(stack.seen(case, "x-b3-traceid"), [NARROW], "{case}");
        assert_eq!(stack.seen(case, "x-b3-parentspanid"), [CALLER], "{case}");
        let span_id = stack.seen(case, "x-b3-spanid");
        assert_eq!(span_id.len(), 1, "{case}");
        assert_new_span(&span_id[0], CALLER);
        let sent_sampled = stack.seen(case, "x-b3-sampled");
        assert_eq!(sent_sampled.first().map(String::as_str), sampled, "{case}");
        let span = span_at(&spans, case);
        assert_eq!(span.is_some(), reported, "{case}: {span:?}");
        if let Some(span) = span {
            assert_eq!(span["parentSpanId"], CALLER, "{case}");
            assert_eq!(span["spanId"], span_id[0].as_str(), "{case}");
        }
    }
}

/// The next tap event of `sub`, as its kind.
async fn next_kind(sub: &mut Subscription) -> TapEventKind {
    sub.next().await.unwrap().kind
}

#[tokio::test]
async fn a_request_its_http2_client_cancels_is_cancelled_in_the_tap_the_log_and_the_trace() {
    let (mut stack, _) = Stack::start(AccessLogFormat::Json).await;
    let mut sub = stack.tap.subscribe(TapFilter::default()).unwrap();
    let tcp = TcpStream::connect(stack.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/hang", stack.addr))
        .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let pending = tokio::spawn(sender.send_request(req));
    assert!(matches!(
        next_kind(&mut sub).await,
        TapEventKind::Req { .. }
    ));
    // The client gives up: RST_STREAM(CANCEL).
    pending.abort();
    let end = next_kind(&mut sub).await;
    assert!(
        matches!(&end, TapEventKind::End { error: Some(e), .. } if e == "cancel"),
        "no response event, an end with cancel: {end:?}"
    );

    let line: Value = serde_json::from_str(&stack.lines.recv().await.unwrap()).unwrap();
    assert_eq!(line["uri"], format!("http://{}/hang", stack.addr));
    assert_eq!(line["version"], "HTTP/2.0");
    assert!(line.get("status").is_none(), "{line}");

    let spans = stack.spans().await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(attr(span, "error.type").unwrap()["stringValue"], "cancel");
    assert!(attr(span, "http.response.status_code").is_none(), "{span}");
    assert_eq!(span["status"]["code"], 2);
}

/// `2022-08-23T20:28:20.071809491Z`, as the log writes it.
fn rfc3339(text: &str) -> SystemTime {
    let (date, rest) = text.strip_suffix('Z').unwrap().split_once('T').unwrap();
    let number = |s: &str| s.parse::<u32>().unwrap();
    let ymd: Vec<u32> = date.split('-').map(number).collect();
    let (hms, fraction) = rest.split_once('.').unwrap_or((rest, "0"));
    let hms: Vec<u32> = hms.split(':').map(number).collect();
    let nanos = number(&format!("{fraction:0<9}"));
    let month = time::Month::try_from(u8::try_from(ymd[1]).unwrap()).unwrap();
    let date = time::Date::from_calendar_date(i32::try_from(ymd[0]).unwrap(), month, ymd[2] as u8)
        .unwrap();
    let at = date
        .with_hms_nano(hms[0] as u8, hms[1] as u8, hms[2] as u8, nanos)
        .unwrap()
        .assume_utc();
    SystemTime::from(at)
}

/// A request head with `target` and `user_agent` as they are, over a
/// raw socket: hyper's client would refuse some of them.
async fn raw_get(addr: SocketAddr, target: &[u8], user_agent: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut head = b"GET ".to_vec();
    head.extend_from_slice(target);
    head.extend_from_slice(b" HTTP/1.1\r\nhost: web\r\nuser-agent: ");
    head.extend_from_slice(user_agent);
    head.extend_from_slice(b"\r\nx-case: hostile\r\nconnection: close\r\n\r\n");
    tcp.write_all(&head).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn what_a_client_writes_stays_inside_its_field_and_its_line_in_both_formats() {
    // A target with quotes, a backslash, a C1 control and bytes of
    // UTF-8 (hyper takes all of them), and a user agent with quotes and a
    // tab.
    let target = "/a\"b\\c/\u{9b}31m/\u{e9}\"%20200\"x".as_bytes();
    let user_agent = b"evil\" \t\"x\\";
    for format in [AccessLogFormat::Apache, AccessLogFormat::Json] {
        let (mut stack, _) = Stack::start(format).await;
        let answer = raw_get(stack.addr, target, user_agent).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let line = stack.lines.recv().await.unwrap();
        // One line, and no control character in it but its end.
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        assert!(
            !line.trim_end_matches('\n').chars().any(char::is_control),
            "{line:?}"
        );
        match format {
            AccessLogFormat::Apache => {
                // The request field is the one quoted field: its end is
                // the last quote of the line, before the status.
                let (before, status) = line.trim_end().rsplit_once("\" ").unwrap();
                assert_eq!(status, "200", "{line}");
                let request = before.split_once(" \"").unwrap().1;
                assert_eq!(
                    request, r#"GET /a\"b\\c/\xc2\x9b31m/é\"%20200\"x HTTP/1.1"#,
                    "{line}"
                );
            }
            AccessLogFormat::Json => {
                let entry: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(entry["uri"], std::str::from_utf8(target).unwrap());
                assert_eq!(
                    entry["user_agent"],
                    std::str::from_utf8(user_agent).unwrap()
                );
                assert_eq!(entry["status"], 200);
            }
        }
    }
}

#[tokio::test]
async fn a_line_has_the_time_its_request_came_and_is_written_at_the_head_of_a_streamed_body() {
    let (mut stack, open_stream) = Stack::start(AccessLogFormat::Json).await;
    let mut sub = stack.tap.subscribe(TapFilter::default()).unwrap();

    // Held: the request arrives, then the answer comes after `arrived`.
    let before = SystemTime::now();
    let addr = stack.addr;
    let held = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/held")
            .header("host", "web")
            .header("x-case", "held")
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(req).await.unwrap().status()
    });
    assert!(matches!(
        next_kind(&mut sub).await,
        TapEventKind::Req { .. }
    ));
    while stack.held.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let arrived = SystemTime::now();
    stack.held.lock().unwrap().pop().unwrap().send(()).unwrap();
    assert_eq!(held.await.unwrap(), StatusCode::OK);
    let line: Value = serde_json::from_str(&stack.lines.recv().await.unwrap()).unwrap();
    let at = rfc3339(line["timestamp"].as_str().unwrap());
    assert!(
        before <= at && at <= arrived,
        "the request's time, not its response's: {line}"
    );

    // Streamed: the line is written once the head is out, while the body
    // still waits; no length is declared, so none is written.
    let addr = stack.addr;
    let streamed = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/stream")
            .header("host", "web")
            .header("x-case", "stream")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        res.into_body().collect().await.unwrap().to_bytes()
    });
    let line: Value = serde_json::from_str(&stack.lines.recv().await.unwrap()).unwrap();
    assert_eq!(line["uri"], "/stream");
    assert_eq!(line["status"], 200);
    // Without a `content-length`, left out, as in Linkerd's lines.
    assert!(line.get("response_bytes").is_none(), "{line}");
    assert!(!streamed.is_finished());
    open_stream.send(()).unwrap();
    assert_eq!(streamed.await.unwrap(), "first last");
    // The tap, unlike the log, waits for the body: every byte.
    let mut end = None;
    while end.is_none() {
        if let TapEventKind::End {
            response_bytes,
            error,
            ..
        } = next_kind(&mut sub).await
            && response_bytes == 10
        {
            end = Some(error);
        }
    }
    assert_eq!(end, Some(None));
}
