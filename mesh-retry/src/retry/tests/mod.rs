//! Tests of the retry layer against in-process upstreams.

pub(super) use std::{
    io,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

pub(super) use bytes::Bytes;
pub(super) use http::{HeaderMap, Method, Request, Response, StatusCode};
pub(super) use http_body_util::BodyExt;
pub(super) use mesh_core::{
    BoxError, ProxyErrorKind,
    body::{BoxBody, full},
    classify::StatusRanges,
};
pub(super) use prometheus_client::{encoding::text::encode, registry::Registry};
pub(super) use tokio::time::Instant;
pub(super) use tower::{Service, ServiceExt, service_fn, util::BoxCloneService};

pub(super) use super::*;
pub(super) use crate::{BudgetConfig, Deadline, replay::ReplayBody};

/// One attempt as the upstream saw it.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

pub(super) type Upstream =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<BoxBody>, BoxError>;

type Script = dyn Fn(usize) -> Result<Response<BoxBody>, BoxError> + Send + Sync;

/// An in-process upstream: records each attempt, answers from `script`
/// (called with the attempt's index, from 0).
pub(super) fn upstream(
    script: impl Fn(usize) -> Result<Response<BoxBody>, BoxError> + Send + Sync + 'static,
) -> (Upstream, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let log = seen.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let (log, script) = (log.clone(), script.clone());
        async move {
            let (parts, body) = req.into_parts();
            let collected = collect(body).await?;
            let trailers = collected.trailers().cloned();
            let index = {
                let mut log = log.lock().unwrap();
                log.push(Seen {
                    method: parts.method,
                    headers: parts.headers,
                    body: collected.to_bytes(),
                    trailers,
                });
                log.len() - 1
            };
            script(index)
        }
    });
    (BoxCloneService::new(svc), seen)
}

/// Collects a body in a boxed future: holding the `Collect` itself across an
/// await makes rustc's `Send` check for the async block fail (rust#102211).
pub(super) fn collect(
    body: ReplayBody<BoxBody>,
) -> std::pin::Pin<
    Box<dyn Future<Output = Result<http_body_util::Collected<Bytes>, BoxError>> + Send>,
> {
    Box::pin(body.collect())
}

pub(super) fn status(code: u16) -> Result<Response<BoxBody>, BoxError> {
    let mut res = Response::new(full(format!("status {code}")));
    *res.status_mut() = StatusCode::from_u16(code).unwrap();
    Ok(res)
}

pub(super) fn grpc(code: &str) -> Result<Response<BoxBody>, BoxError> {
    Ok(Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code)
        .body(mesh_core::body::empty())
        .unwrap())
}

pub(super) fn get(path: &str) -> Request<BoxBody> {
    Request::get(path).body(mesh_core::body::empty()).unwrap()
}

pub(super) fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ))
}

pub(super) fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

pub(super) struct Harness {
    registry: Registry,
    metrics: RetryMetrics,
}

impl Harness {
    pub(super) fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        Self { registry, metrics }
    }

    pub(super) fn layer(&self, policy: RetryPolicy, budget: Arc<Budget>) -> RetryLayer {
        RetryLayer::new(policy, budget).with_metrics(self.metrics.route("svc", "route"))
    }

    pub(super) fn text(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text
    }

    pub(super) fn count(&self, metric: &str) -> u64 {
        counter(
            &self.text(),
            &format!("{metric}{{service=\"svc\",route=\"route\"}}"),
        )
    }

    pub(super) fn not_retryable(&self, reason: &str) -> u64 {
        counter(
            &self.text(),
            &format!(
                "retry_not_retryable_total{{service=\"svc\",route=\"route\",reason=\"{reason}\"}}"
            ),
        )
    }
}

pub(super) async fn send<S>(
    layer: &RetryLayer,
    svc: S,
    req: Request<BoxBody>,
) -> Result<Response<BoxBody>, BoxError>
where
    S: Service<Request<ReplayBody<BoxBody>>, Response = Response<BoxBody>, Error = BoxError>
        + Clone,
{
    tower::Layer::layer(layer, svc).oneshot(req).await
}

mod conditions;
mod deadlines;
mod limits;
mod refunds;
mod unprocessed;
