//! The access log's JSON lines have the fields of Linkerd's, of the same
//! JSON types, present when Linkerd's are: a pipeline built on Linkerd's
//! logs (with typed fields) reads ours. linkerd2-proxy records its span's
//! fields so that its JSON writes `status` as a number, `total_ns` and
//! `processing_ns` as strings (recorded with `field::display`), the
//! request's `content-length` as a string (empty without one), and the
//! response's as a string, or no field at all without one.
//! Served over a real connection on 127.0.0.1, by mesh-core's server.

use std::{collections::BTreeMap, convert::Infallible, future::Future, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::serve::{Server, ServerConfig, shutdown};
use mesh_metrics::access_log::{AccessLog, AccessLogFormat, AccessLogLayer};
use serde_json::Value;
use tower::service_fn;
use tower_layer::Layer;

/// Serves an app behind the access log on 127.0.0.1: `/sized` answers
/// with a `content-length`, anything else without one. Returns the
/// server's address, and the writer's run, which ends once `stop` fires
/// and returns every line written.
async fn serve(
    signal: shutdown::Shutdown,
    stop: impl Future<Output = ()> + Send + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let (log, writer) = AccessLog::new(AccessLogFormat::Json);
    let app = service_fn(|req: Request<Incoming>| async move {
        let mut res = Response::new(Full::new(Bytes::from_static(b"hello")));
        if req.uri().path() == "/sized" {
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, header::HeaderValue::from(5));
        }
        Ok::<_, Infallible>(res)
    });
    let svc = AccessLogLayer::new(Some(log)).layer(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));
    let lines = tokio::spawn(async move {
        let mut out = Vec::new();
        writer.run_until(&mut out, stop).await.unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    });
    (addr, lines)
}

/// Each field of `line` and the JSON type of its value.
fn types(line: &str) -> BTreeMap<String, &'static str> {
    let value: Value = serde_json::from_str(line).unwrap();
    let Value::Object(fields) = value else {
        panic!("not an object: {line}");
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let kind = match value {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            (name, kind)
        })
        .collect()
}

/// Linkerd's fields and types for a request answered with a status, with
/// the response's `content-length` field or without it.
fn linkerd(response_bytes: bool) -> BTreeMap<String, &'static str> {
    let mut fields: BTreeMap<String, &'static str> = [
        "client.addr",
        "client.id",
        "host",
        "method",
        "processing_ns",
        "request_bytes",
        "timestamp",
        "total_ns",
        "trace_id",
        "uri",
        "user_agent",
        "version",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), "string"))
    .collect();
    fields.insert("status".to_owned(), "number");
    if response_bytes {
        fields.insert("response_bytes".to_owned(), "string");
    }
    fields
}

#[tokio::test]
async fn json_fields_have_linkerds_names_types_and_presence() {
    let (trigger, signal) = shutdown::channel();
    let (stop_writer, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, lines) = serve(signal, async move {
        let _ = stopped.await;
    })
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let requests = [
        // A body, so a request `content-length`; a response with one.
        Request::post(format!("http://{addr}/sized"))
            .header(header::CONTENT_LENGTH, 3)
            .body(Full::new(Bytes::from_static(b"abc")))
            .unwrap(),
        // Neither has one.
        Request::get(format!("http://{addr}/unsized"))
            .body(Full::default())
            .unwrap(),
    ];
    for req in requests {
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.into_body().collect().await.unwrap();
    }
    // Each line was queued when its response head left the app, before
    // the client read it.
    stop_writer.send(()).unwrap();
    let lines = lines.await.unwrap();
    trigger.trigger();
    assert_eq!(lines.len(), 2, "{lines:?}");

    assert_eq!(types(&lines[0]), linkerd(true), "{}", lines[0]);
    assert_eq!(types(&lines[1]), linkerd(false), "{}", lines[1]);

    let sized: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(sized["status"], 200);
    assert_eq!(sized["request_bytes"], "3");
    assert_eq!(sized["response_bytes"], "5");
    for field in ["total_ns", "processing_ns"] {
        let text = sized[field].as_str().unwrap();
        assert!(text.parse::<u64>().is_ok(), "{field}: {text:?}");
    }
    let unsized_: Value = serde_json::from_str(&lines[1]).unwrap();
    // Unknown: empty, as Linkerd records the request's missing header.
    assert_eq!(unsized_["request_bytes"], "");
    assert!(unsized_.get("response_bytes").is_none(), "{unsized_}");
}
