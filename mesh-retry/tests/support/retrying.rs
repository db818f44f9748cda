//! What the tests of a retry the service refuses share: the two retrying
//! layers, mesh-core's client behind a balancer whose readiness after the
//! first attempt is scripted, or whose answers are, and a route's retry
//! counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fmt::Debug,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::{
    BoxError, ProxyErrorKind,
    body::{BoxBody, Proxied},
    classify::StatusRanges,
    proxy::queue::IN_FAILFAST,
};
use mesh_retry::{
    Budget, RetryLayer, RetryMetrics, RetryPolicy, RouteStackLayer, Timeouts,
    metrics::{RetryEvent, RetryObserver, RouteRetryMetrics},
    replay::ReplayBody,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::time::{Instant, sleep_until};
use tower::{Layer, Service, ServiceExt};

use super::Upstreams;

/// Which retrying layer is under test.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Layered {
    Retry,
    Stack,
}

pub(crate) const BOTH: [Layered; 2] = [Layered::Retry, Layered::Stack];

impl Layered {
    /// Sends `req` through this layer, with `policy`, `budget`, the default
    /// timeouts and `metrics` (if any), over `svc`: the response with its
    /// body read whole, or the error.
    pub(crate) async fn send<S, RB>(
        self,
        policy: RetryPolicy,
        budget: Arc<Budget>,
        metrics: Option<RouteRetryMetrics>,
        svc: S,
        req: Request<BoxBody>,
    ) -> Result<Response<Bytes>, BoxError>
    where
        S: Service<Request<ReplayBody<BoxBody>>, Response = Response<RB>> + Clone,
        S::Error: Into<BoxError>,
        RB: http_body::Body<Data = Bytes> + Default,
        RB::Error: Into<BoxError> + Debug,
    {
        match self {
            Self::Retry => {
                let mut layer = RetryLayer::new(policy, budget);
                if let Some(metrics) = metrics {
                    layer = layer.with_metrics(metrics);
                }
                read_whole(layer.layer(svc).oneshot(req).await).await
            }
            Self::Stack => {
                let mut layer = RouteStackLayer::new(policy, Timeouts::default(), budget);
                if let Some(metrics) = metrics {
                    layer = layer.with_metrics(metrics);
                }
                read_whole(layer.layer(svc).oneshot(req).await).await
            }
        }
    }
}

async fn read_whole<B>(res: Result<Response<B>, BoxError>) -> Result<Response<Bytes>, BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Debug,
{
    let (parts, body) = res?.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// What a balancer's readiness for an attempt after the first comes to.
pub(crate) type Readiness = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// The error of a balancer whose endpoints are gone.
pub(crate) fn no_endpoints() -> BoxError {
    io::Error::other("no endpoints").into()
}

/// mesh-core's client behind a balancer that gets ready for the first
/// attempt as the client does, and for each one after it only once the
/// readiness `after_first` makes has ended well. Clones share what they
/// have sent, and each waits on a readiness of its own.
pub(crate) struct Endpoints {
    client: Upstreams,
    sent: Arc<AtomicUsize>,
    after_first: Arc<dyn Fn() -> Readiness + Send + Sync>,
    wait: Option<Readiness>,
}

impl Endpoints {
    pub(crate) fn after_first(after_first: impl Fn() -> Readiness + Send + Sync + 'static) -> Self {
        Self {
            client: super::client(),
            sent: Arc::default(),
            after_first: Arc::new(after_first),
            wait: None,
        }
    }

    /// Fails to get ready for any attempt after the first: its endpoints
    /// are gone.
    pub(crate) fn gone() -> Self {
        Self::after_first(|| Box::pin(async { Err(no_endpoints()) }))
    }

    /// Gets ready again `after` from now.
    pub(crate) fn back_after(after: Duration) -> Self {
        let at = Instant::now() + after;
        Self::after_first(move || {
            Box::pin(async move {
                sleep_until(at).await;
                Ok(())
            })
        })
    }

    /// How many attempts it has sent.
    pub(crate) fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Clone for Endpoints {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            sent: self.sent.clone(),
            after_first: self.after_first.clone(),
            wait: None,
        }
    }
}

impl Service<Request<ReplayBody<BoxBody>>> for Endpoints {
    type Response = <Upstreams as Service<Request<ReplayBody<BoxBody>>>>::Response;
    type Error = BoxError;
    type Future = <Upstreams as Service<Request<ReplayBody<BoxBody>>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.sent() > 0 {
            let after_first = &self.after_first;
            let wait = self.wait.get_or_insert_with(|| after_first());
            let readiness = ready!(wait.as_mut().poll(cx));
            self.wait = None;
            readiness?;
        }
        self.client.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReplayBody<BoxBody>>) -> Self::Future {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.client.call(req)
    }
}

/// Every event a route's observer is told of.
#[derive(Debug, Default)]
pub(crate) struct Events(Mutex<Vec<RetryEvent>>);

impl RetryObserver for Events {
    fn observe(&self, event: RetryEvent, _: bool) {
        self.0.lock().unwrap().push(event);
    }
}

/// The retry metrics of the route `svc`/`route`, and what they count.
pub(crate) struct Counted {
    pub(crate) metrics: RouteRetryMetrics,
    registry: Registry,
    events: Arc<Events>,
}

impl Counted {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry).route("svc", "route");
        Self {
            metrics,
            registry,
            events: Arc::default(),
        }
    }

    /// With an observer, which [`Counted::events`] reads.
    pub(crate) fn observed() -> Self {
        let counted = Self::new();
        let metrics = counted
            .metrics
            .clone()
            .with_observer(counted.events.clone());
        Self { metrics, ..counted }
    }

    /// The route's series of `name` (with its labels after the route's).
    pub(crate) fn count(&self, name: &str, labels: &str) -> u64 {
        count(&self.registry, name, labels)
    }

    /// Every retry series of the route that is not zero, as
    /// `name{labels} value`, without the route's labels.
    pub(crate) fn nonzero(&self) -> Vec<String> {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
            .map(|l| {
                l.replace("service=\"svc\",route=\"route\"", "")
                    .replace("{,", "{")
            })
            .collect()
    }

    /// What the observer of [`Counted::observed`] was told, in order.
    pub(crate) fn events(&self) -> Vec<RetryEvent> {
        self.events.0.lock().unwrap().clone()
    }
}

/// The value of the series of `name` for the route `svc`/`route`, with
/// `labels` after the route's.
pub(crate) fn count(registry: &Registry, name: &str, labels: &str) -> u64 {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    let prefix = format!("{name}_total{{service=\"svc\",route=\"route\"{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.parse().unwrap())
}

/// How a scripted balancer answers an attempt.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    /// Shed by its queue: `503`, `service unavailable` (as a gRPC answer
    /// when the call is one).
    Shed,
    /// Failed fast: `503`, `service in fail-fast`, the same.
    FailedFast,
    /// Another answer of the same kind: `503` with a reason of its own.
    Elsewhere,
    /// Sent to the upstream.
    Sent,
}

/// A balancer that answers its attempts as `script` says, one answer an
/// attempt (the last one for any attempt past its end), dropping the
/// request unread when it answers itself, as the queue does, and sending
/// it with mesh-core's client when the script says [`Answer::Sent`].
#[derive(Clone)]
struct Scripted {
    client: Upstreams,
    script: &'static [Answer],
    grpc: bool,
    attempts: Arc<AtomicUsize>,
}

type Attempt = Pin<Box<dyn Future<Output = Result<Response<Proxied<Incoming>>, BoxError>> + Send>>;

impl Service<Request<ReplayBody<BoxBody>>> for Scripted {
    type Response = Response<Proxied<Incoming>>;
    type Error = BoxError;
    type Future = Attempt;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReplayBody<BoxBody>>) -> Attempt {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        let res = match self.script[n.min(self.script.len() - 1)] {
            Answer::Shed => ProxyErrorKind::Unavailable.response_for(self.grpc),
            Answer::FailedFast => {
                ProxyErrorKind::Unavailable.response_with_reason(self.grpc, IN_FAILFAST)
            }
            Answer::Elsewhere => {
                ProxyErrorKind::Unavailable.response_with_reason(self.grpc, "no backend today")
            }
            Answer::Sent => return Box::pin(self.client.call(req)),
        };
        Box::pin(async move { Ok(res) })
    }
}

/// What a request sent over a scripted balancer came to.
pub(crate) struct ScriptedOutcome {
    /// The response, its body read whole.
    pub(crate) res: Response<Bytes>,
    /// What the balancer was asked to send.
    pub(crate) attempts: usize,
    /// The route's retry series that are not zero.
    pub(crate) counted: Vec<String>,
}

/// Sends `req` through `layered` with `policy` and a default budget, over
/// a balancer that answers as `script` says (as a gRPC answer when `req`
/// is a gRPC call) and sends the rest on to its upstream.
pub(crate) async fn send_scripted(
    layered: Layered,
    policy: RetryPolicy,
    script: &'static [Answer],
    req: Request<BoxBody>,
) -> ScriptedOutcome {
    let counted = Counted::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let balancer = Scripted {
        client: super::client(),
        script,
        grpc: mesh_core::error::is_grpc(req.headers()),
        attempts: attempts.clone(),
    };
    let budget = Arc::new(Budget::default());
    let res = layered
        .send(policy, budget, Some(counted.metrics.clone()), balancer, req)
        .await
        .unwrap();
    ScriptedOutcome {
        res,
        attempts: attempts.load(Ordering::SeqCst),
        counted: counted.nonzero(),
    }
}

/// A policy that retries 500 and 502 only: not the 503s.
pub(crate) fn not_503() -> RetryPolicy {
    RetryPolicy::default().with_http_statuses(
        StatusRanges::empty()
            .with_status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_status(StatusCode::BAD_GATEWAY),
    )
}
