//! Every request through `MetricsLayer` is counted once in each HTTP family,
//! whatever way its exchange ends: a body read to its end, an empty body,
//! a response HTTP gives no body, an error of the service or of the body, a
//! gRPC status in the headers or in the trailers, a caller that goes away
//! before the head or in the middle of the body, and a body polled again
//! after its end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, io};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use mesh_core::BoxError;
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, Service, ServiceExt, service_fn};

type Body = BoxBody<Bytes, BoxError>;

pub(crate) fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// The sum of the samples of the lines that start with `prefix`.
pub(crate) fn total(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Requests, responses and latency observations counted so far.
fn counts(registry: &Registry) -> [u64; 3] {
    let text = scrape(registry);
    [
        total(&text, "request_total{"),
        total(&text, "response_total{"),
        total(&text, "response_latency_ms_count{"),
    ]
}

fn grpc_head(res: &mut Response<Body>) {
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
}

fn with_trailers(status: &'static str) -> Body {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    Full::new(Bytes::from_static(b"\0\0\0\0\0"))
        .with_trailers(async move { Some(Ok(trailers)) })
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn stream(frames: Vec<Result<http_body::Frame<Bytes>, BoxError>>, then_wait: bool) -> Body {
    let frames = futures_util::stream::iter(frames);
    if then_wait {
        BodyExt::boxed(StreamBody::new(
            frames.chain(futures_util::stream::pending()),
        ))
    } else {
        BodyExt::boxed(StreamBody::new(frames))
    }
}

/// Answers each path as its name says.
async fn app(req: Request<()>) -> Result<Response<Body>, BoxError> {
    let full = || {
        Full::new(Bytes::from_static(b"hello"))
            .map_err(|e: Infallible| match e {})
            .boxed()
    };
    let data = || Ok(http_body::Frame::data(Bytes::from_static(b"partial")));
    let reset = || Err(io::Error::from(io::ErrorKind::ConnectionReset).into());
    let mut res = Response::new(match req.uri().path() {
        "/empty" => Empty::new().map_err(|e: Infallible| match e {}).boxed(),
        "/service-error" => return Err(io::Error::from(io::ErrorKind::TimedOut).into()),
        "/pending" => return std::future::pending().await,
        "/error-first" => stream(vec![reset()], false),
        "/error-after-data" => stream(vec![data(), reset()], false),
        "/mid-stream" => stream(vec![data()], true),
        "/grpc-trailers-ok" => with_trailers("0"),
        "/grpc-trailers-fail" => with_trailers("14"),
        "/grpc-no-trailers" => stream(vec![data()], false),
        "/grpc-only" => Empty::new().map_err(|e: Infallible| match e {}).boxed(),
        _ => full(),
    });
    match req.uri().path() {
        "/204" => *res.status_mut() = StatusCode::NO_CONTENT,
        "/304" => *res.status_mut() = StatusCode::NOT_MODIFIED,
        "/grpc-trailers-ok" | "/grpc-trailers-fail" | "/grpc-no-trailers" => grpc_head(&mut res),
        "/grpc-only" => {
            grpc_head(&mut res);
            res.headers_mut()
                .insert("grpc-status", HeaderValue::from_static("14"));
        }
        _ => {}
    }
    Ok(res)
}

/// How the caller treats the response.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// Reads the body to its end, then polls it twice more.
    ReadsAll,
    /// Drops the response unread.
    DropsBody,
    /// Reads one frame, then drops the body.
    ReadsOne,
    /// Drops the response future before it is ready.
    DropsFuture,
}

#[tokio::test]
async fn every_exchange_is_counted_once_in_each_family_however_it_ends() {
    use Caller::*;
    let cases: &[(Method, &str, Caller, u64, &str)] = &[
        // method, path, caller, latency observations, the response series
        (
            Method::GET,
            "/",
            ReadsAll,
            1,
            r#"status_code="200",classification="success"}"#,
        ),
        (
            Method::GET,
            "/",
            DropsBody,
            1,
            r#"status_code="200",classification="failure",error="cancel"}"#,
        ),
        (
            Method::GET,
            "/empty",
            DropsBody,
            1,
            r#"status_code="200",classification="success"}"#,
        ),
        (
            Method::HEAD,
            "/",
            DropsBody,
            1,
            r#"status_code="200",classification="success"}"#,
        ),
        (
            Method::GET,
            "/204",
            ReadsAll,
            1,
            r#"status_code="204",classification="success"}"#,
        ),
        (
            Method::GET,
            "/304",
            DropsBody,
            1,
            r#"status_code="304",classification="success"}"#,
        ),
        (
            Method::GET,
            "/service-error",
            ReadsAll,
            0,
            r#"classification="failure",error="timeout"}"#,
        ),
        (
            Method::GET,
            "/pending",
            DropsFuture,
            0,
            r#"{direction="inbound",classification="failure",error="cancel"}"#,
        ),
        (
            Method::GET,
            "/error-first",
            ReadsAll,
            1,
            r#"status_code="200",classification="failure",error="reset"}"#,
        ),
        (
            Method::GET,
            "/error-after-data",
            ReadsAll,
            1,
            r#"status_code="200",classification="failure",error="reset"}"#,
        ),
        (
            Method::GET,
            "/mid-stream",
            ReadsOne,
            1,
            r#"status_code="200",classification="failure",error="cancel"}"#,
        ),
        (
            Method::POST,
            "/grpc-trailers-ok",
            ReadsAll,
            1,
            r#"status_code="200",grpc_status="0",classification="success"}"#,
        ),
        (
            Method::POST,
            "/grpc-trailers-fail",
            ReadsAll,
            1,
            r#"status_code="200",grpc_status="14",classification="failure"}"#,
        ),
        (
            Method::POST,
            "/grpc-trailers-ok",
            ReadsOne,
            1,
            r#"status_code="200",classification="failure",error="cancel"}"#,
        ),
        (
            Method::POST,
            "/grpc-no-trailers",
            ReadsAll,
            1,
            r#"status_code="200",classification="failure"}"#,
        ),
        (
            Method::POST,
            "/grpc-only",
            DropsBody,
            1,
            r#"status_code="200",grpc_status="14",classification="failure"}"#,
        ),
    ];
    for &(ref method, path, caller, latency, series) in cases {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let mut svc = MetricsLayer::inbound(&metrics).layer(service_fn(app));
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        let fut = svc.ready().await.unwrap().call(req);
        match caller {
            DropsFuture => drop(fut),
            DropsBody => drop(fut.await.unwrap()),
            ReadsOne => {
                let mut body = fut.await.unwrap().into_body();
                body.frame().await.unwrap().unwrap();
                drop(body);
            }
            ReadsAll => match fut.await {
                Err(_) => {}
                Ok(res) => {
                    let mut body = res.into_body();
                    while let Some(frame) = body.frame().await {
                        if frame.is_err() {
                            break;
                        }
                    }
                    // Polled again after its end, it counts nothing more.
                    assert!(body.frame().await.is_none());
                    assert!(body.frame().await.is_none());
                    drop(body);
                }
            },
        }
        let text = scrape(&registry);
        assert_eq!(
            counts(&registry),
            [1, 1, latency],
            "{method} {path} {caller:?}\n{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("response_total{"))
            .unwrap();
        assert!(
            line.ends_with(&format!("{series} 1")),
            "{method} {path} {caller:?}: {line}"
        );
    }
}
