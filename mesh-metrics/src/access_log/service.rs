//! The layer that logs each request, and its response future.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::{Duration, SystemTime},
};

use http::{HeaderMap, HeaderName, Request, Response, Version, header};
use mesh_core::conn::{ConnectionInfo, Tls};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::{AccessLog, format::Entry};

/// The headers a trace id is read from, in order: Zipkin's B3, the common
/// request id, and AWS's, as Linkerd reads them.
const TRACE_HEADERS: [&str; 3] = ["x-b3-traceid", "x-request-id", "x-amzn-trace-id"];

/// Writes a line to an [`AccessLog`] for every request through the
/// services it wraps; without a log, it does nothing. See the
/// [module docs](super).
#[derive(Clone, Debug, Default)]
pub struct AccessLogLayer {
    log: Option<AccessLog>,
}

impl AccessLogLayer {
    /// Logs every request to `log`, or none with `None`: a stack keeps one
    /// type whether its process logs or not.
    pub fn new(log: Option<AccessLog>) -> Self {
        Self { log }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> AccessLogService<S> {
        AccessLogService {
            inner,
            log: self.log.clone(),
        }
    }
}

/// A service whose requests are logged. See [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLogService<S> {
    inner: S,
    log: Option<AccessLog>,
}

impl<S, B, RB> Service<Request<B>> for AccessLogService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let pending = self.log.as_ref().map(|log| Pending {
            log: log.clone(),
            entry: Box::new(entry(&req)),
            start: Instant::now(),
            processing: Duration::ZERO,
        });
        AccessLogFuture {
            inner: self.inner.call(req),
            pending,
        }
    }
}

/// What a request's line says before its response.
fn entry<B>(req: &Request<B>) -> Entry {
    let conn = req.extensions().get::<ConnectionInfo>();
    let headers = req.headers();
    Entry {
        client_addr: conn.map_or_else(String::new, |c| c.remote_addr.to_string()),
        client_id: conn.and_then(|c| match &c.tls {
            Tls::Mutual { peer } => Some(peer.to_string()),
            _ => None,
        }),
        timestamp: Some(SystemTime::now()),
        method: req.method().as_str().to_owned(),
        uri: req.uri().to_string(),
        version: version(req.version()),
        host: text(headers, &header::HOST),
        user_agent: text(headers, &header::USER_AGENT),
        // The first of these present, as it is; not text, none.
        trace_id: TRACE_HEADERS
            .iter()
            .find_map(|name| headers.get(*name))
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        request_bytes: text(headers, &header::CONTENT_LENGTH),
        ..Entry::default()
    }
}

fn text(headers: &HeaderMap, name: &HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A request whose line waits for its response head.
#[derive(Debug)]
struct Pending {
    log: AccessLog,
    /// Boxed, so that the future of a process that does not log stays
    /// small.
    entry: Box<Entry>,
    start: Instant,
    /// The time spent in polls of the inner future so far.
    processing: Duration,
}

pin_project! {
    /// Writes the request's line when its response head arrives.
    #[derive(Debug)]
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, RB, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(pending) = this.pending.as_mut() else {
            return this.inner.poll(cx);
        };
        let poll_start = Instant::now();
        let polled = this.inner.poll(cx);
        let now = Instant::now();
        pending.processing += now.saturating_duration_since(poll_start);
        let result = ready!(polled);
        if let (Ok(res), Some(mut pending)) = (&result, this.pending.take()) {
            let entry = &mut *pending.entry;
            entry.status = res.status().as_u16();
            entry.response_bytes = text(res.headers(), &header::CONTENT_LENGTH);
            entry.total = now.saturating_duration_since(pending.start);
            entry.processing = pending.processing;
            pending.log.write(entry.render(pending.log.format));
        }
        Poll::Ready(result)
    }
}
