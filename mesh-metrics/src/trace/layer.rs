//! The layer that joins requests' traces, and its response future.

use std::{
    borrow::Cow,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::{SystemTime, UNIX_EPOCH},
};

use http::{Method, Request, Response, header};
use mesh_core::{
    classify::ErrorKind,
    conn::{ConnectionInfo, Tls},
    error::{BoxError, ProxyErrorKind},
};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    Tracer,
    context::{Carried, SpanId, TraceContext, TraceId},
    span::{Attr, Span, SpanKind},
};

/// Joins the traces requests carry, and reports the proxy's spans to a
/// [`Tracer`]; without one, does nothing. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct TraceLayer {
    tracer: Option<Tracer>,
    kind: SpanKind,
}

impl TraceLayer {
    /// For the server side: spans of kind server, with the client's
    /// address and mesh identity. `None` traces nothing, so that a stack
    /// keeps one type whether its process traces or not.
    pub fn inbound(tracer: Option<Tracer>) -> Self {
        Self {
            tracer,
            kind: SpanKind::Server,
        }
    }

    /// For the client side: spans of kind client.
    pub fn outbound(tracer: Option<Tracer>) -> Self {
        Self {
            tracer,
            kind: SpanKind::Client,
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService {
            inner,
            tracer: self.tracer.clone(),
            kind: self.kind,
        }
    }
}

/// A service whose requests join their traces. See [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
    tracer: Option<Tracer>,
    kind: SpanKind,
}

impl<S, B, RB> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let open = self.tracer.as_ref().and_then(|tracer| {
            let carried = Carried::read(req.headers())?;
            let context = carried.context;
            let span_id = new_span_id();
            carried.write(req.headers_mut(), span_id);
            context
                .sampled
                .then(|| Box::new(Open::new(tracer, &context, span_id, self.kind, &req)))
        });
        TraceFuture {
            inner: self.inner.call(req),
            open,
        }
    }
}

/// A random span id; never zero, which means none.
fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return SpanId(id.to_be_bytes());
        }
    }
}

/// A sampled span waiting for its response.
#[derive(Debug)]
struct Open {
    tracer: Tracer,
    trace_id: TraceId,
    span_id: SpanId,
    parent: SpanId,
    kind: SpanKind,
    name: &'static str,
    /// Wall-clock nanoseconds at the start, which the span reports; its
    /// end is that plus the time the (pausable) runtime clock measured.
    start_unix: u64,
    start: Instant,
    attributes: Vec<(&'static str, Attr)>,
}

impl Open {
    fn new<B>(
        tracer: &Tracer,
        context: &TraceContext,
        span_id: SpanId,
        kind: SpanKind,
        req: &Request<B>,
    ) -> Self {
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            tracer: tracer.clone(),
            trace_id: context.trace_id,
            span_id,
            parent: context.parent,
            kind,
            name: span_name(req.method()),
            start_unix,
            start: Instant::now(),
            attributes: request_attributes(req, kind),
        }
    }

    /// Reports the span, ended now, with `more` attributes and `error`.
    fn finish(
        mut self,
        more: impl IntoIterator<Item = (&'static str, Attr)>,
        error: Option<String>,
    ) {
        let took = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.attributes.extend(more);
        let span = Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent,
            name: self.name,
            kind: self.kind,
            start: self.start_unix,
            end: self.start_unix.saturating_add(took),
            attributes: self.attributes,
            error,
        };
        self.tracer.report(span);
    }
}

/// The longest string attribute a span keeps, in bytes: a request's path
/// may be as long as its server allows, and 2,048 queued spans of such
/// paths would hold megabytes.
pub(crate) const MAX_ATTRIBUTE: usize = 256;

/// The methods OpenTelemetry's HTTP conventions know; any other is
/// reported as `_OTHER`, so that names and attributes stay a closed set.
const KNOWN_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// OpenTelemetry's HTTP span name: the method, as the proxy knows no
/// route; `HTTP` for a method outside the known set. Never the path: the
/// conventions forbid it, since paths carry ids (one name per user
/// floods a trace store's operation lists) and sometimes secrets.
fn span_name(method: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| *known == method)
        .map_or("HTTP", Method::as_str)
}

/// `text`, cut to [`MAX_ATTRIBUTE`] bytes at a character boundary.
fn bounded(text: &str) -> Attr {
    Attr::Str(Cow::Owned(bounded_string(text)))
}

fn bounded_string(text: &str) -> String {
    let mut end = text.len().min(MAX_ATTRIBUTE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// OpenTelemetry's HTTP request attributes, and the mesh's.
///
/// The query string is left out: its parameters are the application's,
/// and the proxy cannot tell a page number from an access token.
fn request_attributes<B>(req: &Request<B>, kind: SpanKind) -> Vec<(&'static str, Attr)> {
    let text = |s: &'static str| Attr::Str(Cow::Borrowed(s));
    let uri = req.uri();
    // Room for every attribute a span can have, so that it never grows.
    let mut attrs = Vec::with_capacity(12);
    attrs.push(("mesh.direction", text(kind.direction())));
    match span_name(req.method()) {
        "HTTP" => attrs.extend([
            ("http.request.method", text("_OTHER")),
            (
                "http.request.method_original",
                bounded(req.method().as_str()),
            ),
        ]),
        known => attrs.push(("http.request.method", text(known))),
    }
    attrs.push(("url.path", bounded(uri.path())));
    if let Some(scheme) = uri.scheme_str() {
        attrs.push(("url.scheme", bounded(scheme)));
    }
    // The host the client asked for: the URI's authority when it has one
    // (HTTP/2, absolute form), else `Host`.
    let host = uri.authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    if let Some(authority) = host.and_then(|h| h.parse::<http::uri::Authority>().ok()) {
        attrs.push(("server.address", bounded(authority.host())));
        if let Some(port) = authority.port_u16() {
            attrs.push(("server.port", Attr::Int(i64::from(port))));
        }
    }
    if kind == SpanKind::Server
        && let Some(conn) = req.extensions().get::<ConnectionInfo>()
    {
        attrs.push((
            "client.address",
            Attr::Str(conn.remote_addr.ip().to_string().into()),
        ));
        if let Tls::Mutual { peer } = &conn.tls {
            attrs.push(("mesh.client_id", bounded(peer.as_ref())));
        }
    }
    attrs
}

pin_project! {
    /// Reports the request's span when its response head arrives, the
    /// request fails, or the future is dropped first.
    #[derive(Debug)]
    pub struct TraceFuture<F> {
        #[pin]
        inner: F,
        open: Option<Box<Open>>,
    }

    impl<F> PinnedDrop for TraceFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(open) = this.project().open.take() {
                let cancelled = [("error.type", Attr::Str("cancel".into()))];
                open.finish(cancelled, Some("the caller went away before the response".into()));
            }
        }
    }
}

impl<F, RB, E> Future for TraceFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        if let Some(open) = this.open.take() {
            match &result {
                Ok(res) => {
                    let status = res.status();
                    let code = Attr::Int(i64::from(status.as_u16()));
                    let mesh_error = res.extensions().get::<ProxyErrorKind>();
                    let failed = open.kind.is_error(status) || mesh_error.is_some();
                    let error_type = failed.then(|| {
                        let kind = mesh_error.map_or_else(
                            || Cow::Owned(status.as_str().to_owned()),
                            |kind| Cow::Borrowed(kind.as_label()),
                        );
                        ("error.type", Attr::Str(kind))
                    });
                    let more = std::iter::once(("http.response.status_code", code));
                    open.finish(more.chain(error_type), failed.then(String::new));
                }
                Err(error) => {
                    // OpenTelemetry's fallback for an error it has no name
                    // for is `_OTHER`.
                    let kind = match ErrorKind::of(&**error) {
                        ErrorKind::Other => "_OTHER",
                        kind => kind.as_label(),
                    };
                    let message = bounded_string(&error.to_string());
                    open.finish([("error.type", Attr::Str(kind.into()))], Some(message));
                }
            }
        }
        Poll::Ready(result)
    }
}
