//! A sampled span between its request and the end of its response, and
//! the attributes it collects on the way.

use std::{
    borrow::Cow,
    time::{SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, Method, Request, Response, header};
use http_body::Body;
use mesh_core::{
    classify::ErrorKind,
    conn::{ConnectionInfo, Tls},
    error::ProxyErrorKind,
};
use tokio::time::Instant;

use crate::body_rule::{BodyRule, CUT_SHORT, Remaining};

use super::{
    Tracer,
    context::{SpanId, TraceContext, TraceId},
    grpc::{self, GrpcStatus},
    span::{Attr, Span, SpanKind},
};

/// A sampled span waiting for its response to end.
#[derive(Debug)]
pub(super) struct Open {
    tracer: Tracer,
    trace_id: TraceId,
    span_id: SpanId,
    parent: SpanId,
    kind: SpanKind,
    name: Cow<'static, str>,
    /// While the span is named after a gRPC method the application has
    /// not yet answered as one of its own, the name it ends with unless
    /// the application does: the HTTP method's (see
    /// [`Open::prove_call`]).
    unproven_call: Option<&'static str>,
    trace_state: Option<String>,
    /// Wall-clock nanoseconds at the start, which the span reports; its
    /// end is that plus the time the (pausable) runtime clock measured.
    start_unix: u64,
    start: Instant,
    attributes: Vec<(&'static str, Attr)>,
    /// Why the exchange failed, once it is known to have: `error.type`.
    error_type: Option<Cow<'static, str>>,
    /// The response is gRPC's, whose status is still to come.
    awaits_grpc_status: bool,
    /// What the request's method says of the response body.
    body_rule: BodyRule,
    /// What is left of the body's declared length: a server drops a body
    /// that has sent it all without reading its end, which is no
    /// cancellation; a stream that ends before was cut short.
    remaining: Remaining,
}

/// The message of a span whose body ended short of its declared length.
const CUT_SHORT_MESSAGE: &str = "the response body ended short of its content-length";

/// Room for every attribute a span can have, so that its list is
/// allocated once: direction, method (and its original), path, scheme,
/// host, port, client address and identity, `rpc.service` and
/// `rpc.method`, status code, `rpc.system`, `rpc.grpc.status_code` and
/// `error.type`.
const ATTRIBUTES: usize = 16;

impl Open {
    pub(super) fn new<B>(
        tracer: &Tracer,
        context: &TraceContext,
        span_id: SpanId,
        kind: SpanKind,
        req: &Request<B>,
        trace_state: Option<String>,
    ) -> Self {
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let call = grpc_method(req);
        Self {
            tracer: tracer.clone(),
            trace_id: context.trace_id,
            span_id,
            parent: context.parent,
            kind,
            name: span_name(req.method(), call),
            unproven_call: call.map(|_| method_name(req.method())),
            trace_state,
            start_unix,
            start: Instant::now(),
            attributes: request_attributes(req, kind, call),
            error_type: None,
            awaits_grpc_status: false,
            body_rule: BodyRule::of(req.method()),
            remaining: Remaining::NONE,
        }
    }

    /// The response head arrived: its status, whether the mesh answered
    /// itself, and for gRPC, the status of a trailers-only response.
    /// Whether the span ends with it: when nothing follows the head, as
    /// HTTP says of some answers (to `HEAD`; 1xx, 204, 304), or as the
    /// body says (a trailers-only gRPC answer, an empty body). A server
    /// sends such a response without reading its body's end.
    pub(super) fn on_head<B: Body>(&mut self, res: &Response<B>) -> bool {
        let status = res.status();
        let code = Attr::Int(i64::from(status.as_u16()));
        self.attributes.push(("http.response.status_code", code));
        let mesh_answered = res.extensions().get::<ProxyErrorKind>();
        if let Some(kind) = mesh_answered {
            self.error_type = Some(Cow::Borrowed(kind.as_label()));
        } else if self.kind.is_error(status) {
            self.error_type = Some(Cow::Owned(status.as_str().to_owned()));
        }
        if mesh_answered.is_some() {
            // The mesh's own answer, gRPC or not, says nothing of the
            // application's methods.
            self.disprove_call();
        }
        if grpc::is_grpc(res.headers()) {
            self.attributes
                .push(("rpc.system", Attr::Str(Cow::Borrowed("grpc"))));
            self.awaits_grpc_status = true;
            self.on_trailers(res.headers());
        }
        if !self.body_rule.has_body(status) || res.body().is_end_stream() {
            return true;
        }
        self.remaining = Remaining::of(res);
        self.remaining.is_sent()
    }

    /// The application answered the gRPC method the span is named after
    /// with a status of its own: the name stays.
    ///
    /// The caller picks the path, so a method name is one of a closed set
    /// (the application's methods) only once the application has answered
    /// it as gRPC with anything but `UNIMPLEMENTED`. Until then the span
    /// would end named by its HTTP method: a client spraying made-up
    /// methods, or cancelling its calls before an answer, would otherwise
    /// make a span name (an operation in a trace store's lists) per
    /// request.
    fn prove_call(&mut self) {
        self.unproven_call = None;
    }

    /// The method the span is named after is not the application's: the
    /// span is named by its HTTP method from now on.
    fn disprove_call(&mut self) {
        if let Some(name) = self.unproven_call.take() {
            self.name = Cow::Borrowed(name);
        }
    }

    /// `n` bytes of the body went by.
    pub(super) fn on_data(&mut self, n: u64) {
        self.remaining.sent(n);
    }

    /// Whether the body has sent the whole of its known length.
    pub(super) fn sent_its_length(&self) -> bool {
        self.remaining.is_sent()
    }

    /// Trailers arrived (or a trailers-only head): for gRPC, the first
    /// `grpc-status` they carry is the call's.
    pub(super) fn on_trailers(&mut self, trailers: &HeaderMap) {
        if !self.awaits_grpc_status {
            return;
        }
        let Some(status) = GrpcStatus::read(trailers) else {
            return;
        };
        self.awaits_grpc_status = false;
        if status.0 == grpc::UNIMPLEMENTED {
            self.disprove_call();
        } else {
            self.prove_call();
        }
        let code = Attr::Int(i64::from(status.0));
        self.attributes.push(("rpc.grpc.status_code", code));
        if self.error_type.is_none() && status.is_error(self.kind) {
            self.error_type = Some(Cow::Borrowed(status.name()));
        }
    }

    /// The response ended: reports the span, an error if its head or its
    /// gRPC status said so, or if its body ended short of its declared
    /// length: its client got an incomplete message, whatever the head
    /// said, as metrics count it ([`CUT_SHORT`]).
    pub(super) fn end(mut self) {
        if self.remaining.ends_short() {
            let kind = Cow::Borrowed(CUT_SHORT.as_label());
            return self.finish(Some(kind), Some(Cow::Borrowed(CUT_SHORT_MESSAGE)));
        }
        match self.error_type.take() {
            Some(kind) => self.finish(Some(kind), Some(Cow::Borrowed(""))),
            None => self.finish(None, None),
        }
    }

    /// The request, or its response body, failed with `error`.
    pub(super) fn fail(self, error: &(dyn std::error::Error + 'static)) {
        // OpenTelemetry's fallback for an error it has no name for is
        // `_OTHER`.
        let kind = match ErrorKind::of(error) {
            ErrorKind::Other => "_OTHER",
            kind => kind.as_label(),
        };
        let message = bounded_string(&error.to_string());
        self.finish(Some(Cow::Borrowed(kind)), Some(Cow::Owned(message)));
    }

    /// The caller went away before the response ended: `error.type` is
    /// `cancel`, and `message` says when.
    pub(super) fn cancel(self, message: &'static str) {
        self.finish(Some(Cow::Borrowed("cancel")), Some(Cow::Borrowed(message)));
    }

    fn finish(mut self, error_type: Option<Cow<'static, str>>, error: Option<Cow<'static, str>>) {
        self.disprove_call();
        let took = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(kind) = error_type {
            self.attributes.push(("error.type", Attr::Str(kind)));
        }
        let span = Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent,
            name: self.name,
            kind: self.kind,
            start: self.start_unix,
            end: self.start_unix.saturating_add(took),
            attributes: self.attributes,
            trace_state: self.trace_state,
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
fn method_name(method: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| *known == method)
        .map_or("HTTP", Method::as_str)
}

/// The span's name: for a gRPC call, its full method name,
/// `package.Service/Method`, as OpenTelemetry's RPC conventions name RPC
/// spans (a gRPC path is the method it calls, not data); for anything
/// else, [`method_name`].
fn span_name(method: &Method, call: Option<(&str, &str)>) -> Cow<'static, str> {
    match call {
        Some((service, method)) if service.len() + 1 + method.len() <= MAX_ATTRIBUTE => {
            let mut name = String::with_capacity(service.len() + 1 + method.len());
            name.push_str(service);
            name.push('/');
            name.push_str(method);
            Cow::Owned(name)
        }
        Some((service, _)) => Cow::Owned(bounded_string(service)),
        None => Cow::Borrowed(method_name(method)),
    }
}

/// The service and method a gRPC request calls: a `POST` whose
/// content type is gRPC's, to `/<service>/<method>` with neither empty
/// (gRPC over HTTP/2, "Requests": `:path` is `/` Service-Name `/`
/// method name).
fn grpc_method<B>(req: &Request<B>) -> Option<(&str, &str)> {
    if req.method() != Method::POST || !grpc::is_grpc(req.headers()) {
        return None;
    }
    let (service, method) = req.uri().path().strip_prefix('/')?.split_once('/')?;
    let well_formed = !service.is_empty() && !method.is_empty() && !method.contains('/');
    well_formed.then_some((service, method))
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
fn request_attributes<B>(
    req: &Request<B>,
    kind: SpanKind,
    call: Option<(&str, &str)>,
) -> Vec<(&'static str, Attr)> {
    let text = |s: &'static str| Attr::Str(Cow::Borrowed(s));
    let uri = req.uri();
    let mut attrs = Vec::with_capacity(ATTRIBUTES);
    attrs.push(("mesh.direction", text(kind.direction())));
    match method_name(req.method()) {
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
    if let Some((service, method)) = call {
        attrs.push(("rpc.service", bounded(service)));
        attrs.push(("rpc.method", bounded(method)));
    }
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
