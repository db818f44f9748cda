//! What the tests of a retry the service refuses share: the two retrying
//! layers, mesh-core's client behind a balancer whose readiness after the
//! first attempt is scripted, and a route's retry counters.
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
use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_core::{BoxError, body::BoxBody};
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
