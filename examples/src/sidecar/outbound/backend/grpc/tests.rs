#![allow(clippy::unwrap_used)]

use std::io;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use prometheus_client::registry::Registry;
use tower::{Service, ServiceExt, service_fn};

use mesh_core::{
    BoxError,
    error::{ProxyErrorKind, UpstreamCause},
};

use super::super::{BackendMetrics, Counted};
use super::*;

type TestBody = BoxBody<Bytes, io::Error>;

/// A body of `frames`, then the end, or with `hang` no end at all.
fn body(frames: Vec<Result<Frame<Bytes>, io::Error>>, hang: bool) -> TestBody {
    let frames = stream::iter(frames);
    if hang {
        BodyExt::boxed(StreamBody::new(frames.chain(stream::pending())))
    } else {
        BodyExt::boxed(StreamBody::new(frames))
    }
}

fn data() -> Result<Frame<Bytes>, io::Error> {
    Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01x")))
}

fn trailers(status: &str) -> Result<Frame<Bytes>, io::Error> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", status.parse().unwrap());
    Ok(Frame::trailers(trailers))
}

/// A response of gRPC with `status` in its head, if any, over `body`.
fn grpc(status: Option<&str>, body: TestBody) -> Response<TestBody> {
    let mut res = Response::new(body);
    res.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    if let Some(status) = status {
        res.headers_mut()
            .insert("grpc-status", status.parse().unwrap());
    }
    res
}

/// A gRPC server, by path, as the mesh's backend sees one.
async fn server(req: Request<()>) -> Result<Response<TestBody>, BoxError> {
    Ok(match req.uri().path() {
        "/ok" => grpc(None, body(vec![data(), trailers("0")], false)),
        "/unavailable" => grpc(None, body(vec![data(), trailers("14")], false)),
        "/not-found" => grpc(Some("5"), body(vec![], false)),
        "/undefined" => grpc(None, body(vec![trailers("99")], false)),
        "/no-trailers" => grpc(None, body(vec![data()], false)),
        "/cut" => grpc(
            None,
            body(
                vec![data(), Err(io::ErrorKind::ConnectionReset.into())],
                false,
            ),
        ),
        "/stalled" => grpc(
            None,
            body(vec![data(), Err(io::ErrorKind::TimedOut.into())], false),
        ),
        "/hang" => grpc(None, body(vec![data()], true)),
        "/html" => Response::new(body(vec![data()], false)),
        "/mesh" => {
            let mut res = grpc(Some("14"), body(vec![], false));
            res.extensions_mut()
                .insert(ProxyErrorKind::UpstreamUnreachable);
            res
        }
        "/mesh-refused" => {
            let mut res = grpc(Some("14"), body(vec![], false));
            res.extensions_mut()
                .insert(ProxyErrorKind::UpstreamUnreachable);
            res.extensions_mut().insert(UpstreamCause::Refused);
            res
        }
        "/refused" => return Err(io::Error::from(io::ErrorKind::ConnectionRefused).into()),
        _ => Response::new(body(vec![data()], false)),
    })
}

fn call(path: &str) -> Request<()> {
    Request::post(path)
        .header("content-type", "application/grpc+proto")
        .body(())
        .unwrap()
}

/// The exposition's samples, sorted; of the duration histograms, only
/// their counts: each attempt's response is timed once.
fn exposition(registry: &Registry) -> Vec<String> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| !l.contains("_duration_seconds_bucket") && !l.contains("_duration_seconds_sum"))
        .map(str::to_owned)
        .collect();
    lines.sort_unstable();
    lines
}

const LABELS: &str = "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"ns\",parent_name=\"emoji\",parent_port=\"\",parent_section_name=\"\",route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",route_namespace=\"ns\",route_name=\"list\",backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"ns\",backend_name=\"emoji\",backend_port=\"\",backend_section_name=\"\"";

fn durations(protocol: &str, n: u64) -> String {
    format!("outbound_{protocol}_route_backend_response_duration_seconds_count{{{LABELS}}} {n}")
}

fn statuses(status: &str, error: &str, n: u64) -> String {
    format!(
        "outbound_grpc_route_backend_response_statuses_total{{{LABELS},grpc_status=\"{status}\",error=\"{error}\"}} {n}"
    )
}

#[tokio::test]
async fn each_grpc_attempt_counts_once_by_the_status_its_client_reads() {
    let mut registry = Registry::default();
    let metrics = BackendMetrics::register(&mut registry);
    let counted = Counted::new(
        service_fn(server),
        metrics.backend_for_test("emoji", "list", "emoji"),
    );

    // The status in the trailers is not known at the head: nothing is
    // counted until the body ends.
    let res = counted.clone().oneshot(call("/unavailable")).await.unwrap();
    assert!(
        !exposition(&registry)
            .iter()
            .any(|l| l.starts_with("outbound_grpc_route_backend_response_statuses_total")),
        "{:#?}",
        exposition(&registry)
    );
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "14");

    for path in [
        "/ok",
        "/ok",
        "/not-found",
        "/undefined",
        "/no-trailers",
        "/html",
        "/mesh",
        "/mesh-refused",
    ] {
        let res = counted.clone().oneshot(call(path)).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
    }
    let res = counted.clone().oneshot(call("/cut")).await.unwrap();
    assert!(res.into_body().collect().await.is_err());
    let res = counted.clone().oneshot(call("/stalled")).await.unwrap();
    assert!(res.into_body().collect().await.is_err());
    assert!(counted.clone().oneshot(call("/refused")).await.is_err());
    // Dropped after its first frame: the caller went away.
    let res = counted.clone().oneshot(call("/hang")).await.unwrap();
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    drop(body);

    let expected = [
        // Resolved when the route is built, and counting none of these.
        format!("outbound_http_route_backend_requests_total{{{LABELS}}} 0"),
        format!("outbound_grpc_route_backend_requests_total{{{LABELS}}} 13"),
        durations("http", 0),
        // Each attempt timed once: when its body ended, its error came,
        // or its body was dropped.
        durations("grpc", 13),
        statuses("OK", "", 2),
        statuses("UNAVAILABLE", "", 1),
        statuses("NOT_FOUND", "", 1),
        // A number gRPC does not define, no trailers, and a response that
        // is not gRPC all read as UNKNOWN.
        statuses("UNKNOWN", "", 3),
        statuses("UNAVAILABLE", "UNKNOWN", 1),
        // The mesh's answer for a stream the upstream refused.
        statuses("UNAVAILABLE", "REFUSED", 1),
        // A body cut by a connection reset: an I/O error.
        statuses("UNKNOWN", "IO", 1),
        // A timeout while the body streamed, after the head.
        statuses("UNKNOWN", "RESPONSE_STREAM_TIMEOUT", 1),
        statuses("UNKNOWN", "UNKNOWN", 1),
        statuses("UNKNOWN", "CANCEL", 1),
    ];
    let mut expected: Vec<String> = expected.into_iter().collect();
    expected.sort_unstable();
    assert_eq!(exposition(&registry), expected);
}

#[tokio::test]
async fn only_grpc_calls_count_in_the_grpc_families() {
    let mut registry = Registry::default();
    let metrics = BackendMetrics::register(&mut registry);
    let mut counted = Counted::new(
        service_fn(server),
        metrics.backend_for_test("emoji", "list", "emoji"),
    );
    // A GET is no gRPC call, whatever its content type, and neither is a
    // POST of another content type.
    let get = Request::get("/ok")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let post = Request::post("/ok")
        .header("content-type", "application/grpc-web")
        .body(())
        .unwrap();
    for req in [get, post] {
        let res = counted.ready().await.unwrap().call(req).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
    }
    let http = format!(
        "outbound_http_route_backend_response_statuses_total{{{LABELS},http_status=\"200\",error=\"\"}} 2"
    );
    assert_eq!(
        exposition(&registry),
        [
            format!("outbound_http_route_backend_requests_total{{{LABELS}}} 2"),
            durations("http", 2),
            http
        ]
    );
}

#[tokio::test]
async fn a_grpc_attempt_given_up_before_its_head_is_cancelled() {
    let mut registry = Registry::default();
    let metrics = BackendMetrics::register(&mut registry);
    let never =
        service_fn(|_: Request<()>| std::future::pending::<Result<Response<TestBody>, BoxError>>());
    let mut counted = Counted::new(never, metrics.backend_for_test("emoji", "list", "emoji"));
    let call = counted.call(call("/ok"));
    let mut call = Box::pin(call);
    assert!(futures_util::FutureExt::now_or_never(&mut call).is_none());
    drop(call);
    assert_eq!(
        exposition(&registry),
        [
            format!("outbound_grpc_route_backend_requests_total{{{LABELS}}} 1"),
            statuses("UNKNOWN", "CANCEL", 1),
            format!("outbound_http_route_backend_requests_total{{{LABELS}}} 0"),
            // No response, nothing timed.
            durations("http", 0),
        ]
    );
}
