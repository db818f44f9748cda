//! The layer that logs each request, and its response future.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::{Duration, SystemTime},
};

use http::{HeaderMap, HeaderName, Request, Response, Uri, Version, header};
use mesh_core::conn::{ConnectionInfo, Tls};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    AccessLog,
    format::{Entry, Text},
};

/// The headers a trace id is read from, in order: Zipkin's B3, the common
/// request id, and AWS's, as Linkerd reads them.
/// Names, not strings, so that no request parses them.
const TRACE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-b3-traceid"),
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("x-amzn-trace-id"),
];

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
pub(super) fn entry<B>(req: &Request<B>) -> Entry {
    let conn = req.extensions().get::<ConnectionInfo>();
    let headers = req.headers();
    let host = text(headers, &header::HOST);
    let user_agent = text(headers, &header::USER_AGENT);
    // The first of these present, as it is; not text, none.
    let trace_id = TRACE_HEADERS
        .iter()
        .find_map(|name| headers.get(name))
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let request_bytes = text(headers, &header::CONTENT_LENGTH);
    let uri = req.uri();
    // Room for every text, and for the response's `content-length`, so
    // that the buffer is allocated once.
    let uri_len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    let capacity =
        uri_len + host.len() + user_agent.len() + trace_id.len() + request_bytes.len() + 20;
    let mut entry = Entry::with_capacity(capacity);
    entry.client_addr = conn.map(|c| c.remote_addr);
    entry.client_id = conn.and_then(|c| match &c.tls {
        Tls::Mutual { peer } => Some(peer.clone()),
        _ => None,
    });
    entry.timestamp = Some(SystemTime::now());
    entry.method = req.method().clone();
    entry.version = version(req.version());
    entry.uri = push_uri(&mut entry, uri);
    entry.host = entry.push(host);
    entry.user_agent = entry.push(user_agent);
    entry.trace_id = entry.push(trace_id);
    entry.request_bytes = entry.push(request_bytes);
    entry
}

/// Copies `uri` as its `Display` writes it, without the formatting
/// machinery, and without userinfo: a client may write its credentials
/// into an absolute request target (`http://user:password@host/`, which
/// hyper takes), and the log is read by whoever reads the proxy's output.
fn push_uri(entry: &mut Entry, uri: &Uri) -> Text {
    let start = entry.push(uri.scheme_str().unwrap_or_default());
    if uri.scheme().is_some() {
        entry.push("://");
    }
    let authority = uri.authority().map_or("", |a| a.as_str());
    entry.push(
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host),
    );
    entry.push(uri.path());
    if let Some(query) = uri.query() {
        entry.push("?");
        entry.push(query);
    }
    start.through(entry)
}

fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
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

impl Pending {
    /// Writes the line: with the response head's status and length, or
    /// without a status when no response came.
    fn write<B>(mut self, res: Option<&Response<B>>, now: Instant) {
        let entry = &mut *self.entry;
        if let Some(res) = res {
            entry.status = Some(res.status().as_u16());
            // Linkerd records the field only from a header that is text.
            entry.response_bytes = res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .map(|length| entry.push(length));
        }
        entry.total = now.saturating_duration_since(self.start);
        entry.processing = self.processing;
        self.log.write(self.entry);
    }
}

pin_project! {
    /// Writes the request's line when its response head arrives, or
    /// without a status when the request fails or the client goes away
    /// first.
    #[derive(Debug)]
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for AccessLogFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.write::<()>(None, Instant::now());
            }
        }
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
        if let Some(pending) = this.pending.take() {
            pending.write(result.as_ref().ok(), now);
        }
        Poll::Ready(result)
    }
}
