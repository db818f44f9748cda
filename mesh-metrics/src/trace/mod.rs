//! Distributed tracing: the proxy as a span in its callers' traces.
//!
//! Metrics say that requests to a service got slow; a trace says where one
//! request spent its time, hop by hop. Applications start traces and pass
//! them on in headers; a proxy between two of them is a hop too, and
//! without a span of its own the time it took, and the time the network
//! took, would be charged to the application. Linkerd's proxy reports such
//! spans, and so does [`TraceLayer`]:
//!
//! - It joins a trace only when the request carries one, in W3C Trace
//!   Context (`traceparent`) or Zipkin's B3 (`b3`, `x-b3-*`); see
//!   [`context`] for the formats. It never starts a trace: sampling is the
//!   application's decision, and one that was not asked for is not made.
//! - It gives the request a new span id and writes it into the headers,
//!   so that the next hop's span is its child.
//! - When the caller's context is sampled, it reports the span when the
//!   response ends: at its trailers or last frame, since a response is
//!   not done at its head, and a gRPC call's outcome comes after it (with
//!   the head for answers HTTP gives no body, to `HEAD` or a 204; and a
//!   body dropped once it has sent its `content-length`, as hyper drops
//!   it, has ended too). A
//!   span is named by the request's method, as OpenTelemetry's HTTP
//!   conventions name spans without a route (never by the path, which
//!   would make a name per user id), with their attributes
//!   (`http.request.method`, `url.path`, `server.address`, `server.port`,
//!   `http.response.status_code`, `error.type`) and the mesh's own
//!   (`mesh.direction`, and inbound `client.address` and `mesh.client_id`).
//!   A gRPC call (a `POST` with gRPC's content type to
//!   `/package.Service/Method`) is named after the method it calls,
//!   `package.Service/Method`, with `rpc.service` and `rpc.method`, as
//!   OpenTelemetry's RPC conventions name RPC spans: its path is the
//!   method, a closed set the server defines, not data. The caller picks
//!   the path, though, so the span keeps that name only if the
//!   application answers the call as gRPC with a status other than
//!   `UNIMPLEMENTED`; a call the mesh answered itself, one answered
//!   otherwise, and one that ended before its status are named by their
//!   HTTP method (`POST`), with `rpc.service` and `rpc.method` still
//!   among their attributes.
//!   Inbound spans are of kind server, outbound of kind client. The span
//!   is an error on a 5xx inbound, a 4xx or 5xx outbound, or an answer
//!   the mesh gave itself (`error.type` names it: `503`, `denied`...).
//! - A gRPC response (`content-type: application/grpc`, `+proto` and the
//!   like; not gRPC-Web, whose trailers are in its body) is a 200 whose
//!   outcome is its `grpc-status`: in the trailers, or in the head of a
//!   trailers-only answer. Following OpenTelemetry's gRPC conventions
//!   (semantic-conventions, `docs/rpc/grpc.md`, "gRPC Status"), the span
//!   gets `rpc.system` `grpc` and `rpc.grpc.status_code`, the code as an
//!   integer, and is an error for a client on any code but `OK` (0), for
//!   a server only on `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
//!   `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS` (2, 4, 12, 13, 14, 15):
//!   the others are the caller's mistake, as a 4xx is. `error.type` is
//!   the code's name (`UNAVAILABLE`). A gRPC response that ends without a
//!   `grpc-status` has no code attribute, and its HTTP status alone
//!   decides.
//! - A caller that goes away first still has its span reported, with
//!   `error.type` `cancel` and the status Error: before the response head
//!   (no `http.response.status_code`), or after it, having abandoned the
//!   body (the status code, and no gRPC code: it was still to come). A
//!   body that fails ends the span with its error's kind, and one that
//!   ends short of its `content-length` with `reset`, whatever its status
//!   said: its client got an incomplete message, as `MetricsLayer`
//!   counts it.
//! - The caller's W3C `tracestate` goes with the span, as OTLP's
//!   `traceState`, when the context came from `traceparent` and the
//!   `tracestate` is valid (at most 32 members, each key once, keys and
//!   values of W3C Trace Context's grammar; otherwise it is discarded, as
//!   the W3C's test suite expects): cut to 512 bytes as W3C Trace Context
//!   allows (larger members first, then from the end). The header itself
//!   passes to the next hop unchanged.
//! - It leaves the query string out, since its parameters may be secrets
//!   the proxy cannot tell apart, and cuts the strings it keeps to 256
//!   bytes, so that the queue's memory is bounded.
//!
//! # Where the spans go
//!
//! A [`Tracer`] queues finished spans; a [`SpanExporter`], run once as a
//! task, sends them in batches to an OpenTelemetry collector with
//! OTLP/HTTP in its JSON encoding (`POST /v1/traces`, the collector's
//! port 4318), which every OpenTelemetry collector, Jaeger (since 1.35)
//! and Grafana Tempo accept. JSON keeps the proxy free of a Protocol
//! Buffers toolchain; Linkerd's proxy sends OTLP over gRPC instead.
//!
//! Reporting never slows a request: the queue holds [`QUEUE`] spans, and
//! a span that finds it full is dropped and counted. A batch is sent when
//! it holds [`MAX_BATCH`] spans or [`FLUSH_INTERVAL`] after its first
//! span, whichever is first; a batch the collector does not accept within
//! [`EXPORT_TIMEOUT`] with a 2xx is dropped and counted, so that a
//! collector that is down costs no memory beyond the queue and one batch.
//! Only an overloaded collector, which OTLP has answer 429, 502, 503 or
//! 504, gets the batch once more, after its `Retry-After` (1 s without
//! one, 30 s at most), before it is dropped. One
//! batch is in flight at a time: a slow collector fills the queue, and
//! spans are then dropped, not held. Spans a collector's 2xx says it
//! rejected (OTLP's `partialSuccess`) are counted as failed.
//!
//! A server stops its exporter with [`SpanExporter::run_until`] once it
//! has drained: the spans still queued are sent at once, within one
//! [`EXPORT_TIMEOUT`], rather than lost with the process.
//!
//! Once [registered](Tracer::register):
//!
//! - `trace_spans_exported_total`: spans the collector accepted;
//! - `trace_spans_dropped_total`: spans dropped because the queue was full
//!   (or the exporter had stopped);
//! - `trace_spans_failed_total`: spans in batches the collector refused
//!   or never answered, and spans it rejected.
//!
//! A process that does not trace gives the layer no tracer, and pays
//! nothing per request; nor does a request without trace headers: no
//! allocation, and its response body passes frames on untouched. A
//! sampled request allocates its span once, in `call`; the body that ends
//! it takes the same allocation over, gRPC or not, and only a
//! `tracestate` adds one, for the span's copy.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use http::{Request, Response};
//! use mesh_metrics::trace::{TraceLayer, Tracer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let collector = "http://127.0.0.1:4318".parse().unwrap();
//! let resource = vec![("service.name".to_owned(), "web".to_owned())];
//! let (tracer, exporter) = Tracer::new(collector, resource);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let export = tokio::spawn(exporter.run_until(async {
//!     let _ = stopped.await;
//! }));
//!
//! let app = service_fn(|_req: Request<()>| async {
//!     let body = http_body_util::Full::new(bytes::Bytes::from("ok"));
//!     Ok::<_, std::convert::Infallible>(Response::new(body))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(TraceLayer::inbound(Some(tracer)))
//!     .service(app);
//! let req = Request::get("/")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(())
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! // The span is reported when the response body ends.
//! http_body_util::BodyExt::collect(res.into_body()).await.unwrap();
//!
//! // Once the server has drained: send what is queued, then return.
//! drop(stop);
//! export.await.unwrap();
//! # }
//! ```

mod body;
pub mod context;
mod export;
mod grpc;
mod layer;
mod open;
mod span;
mod tracestate;

use std::{fmt, time::Duration};

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::sync::mpsc;

use self::span::Span;
pub use self::{
    body::TraceBody,
    export::{Collector, CollectorError, SpanExporter},
    layer::{TraceFuture, TraceLayer, TraceService},
    span::SpanKind,
};

/// The finished spans queued for the exporter before further ones are
/// dropped.
pub const QUEUE: usize = 2048;
/// The most spans sent in one request to the collector.
pub const MAX_BATCH: usize = 512;
/// How long the first span of a batch waits for others to join it.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the collector has to accept a batch.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a layer's spans go: a handle on the queue to the
/// [`SpanExporter`]. Cloning shares it.
#[derive(Clone)]
pub struct Tracer {
    spans: mpsc::Sender<Span>,
    counts: Counts,
}

/// The counters a tracer and its exporter share.
#[derive(Clone, Debug, Default)]
struct Counts {
    exported: Counter,
    dropped: Counter,
    failed: Counter,
}

impl Tracer {
    /// A tracer whose spans its exporter sends to `collector`, as reported
    /// by the resource `resource` describes: OpenTelemetry resource
    /// attributes, such as `service.name`, in the order given.
    pub fn new(collector: Collector, resource: Vec<(String, String)>) -> (Self, SpanExporter) {
        let (spans, receiver) = mpsc::channel(QUEUE);
        let counts = Counts::default();
        let exporter = SpanExporter::new(receiver, collector, resource, counts.clone());
        (Self { spans, counts }, exporter)
    }

    /// Registers `trace_spans_exported_total`, `trace_spans_dropped_total`
    /// and `trace_spans_failed_total` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let c = &self.counts;
        registry.register(
            "trace_spans_exported",
            "Spans the trace collector accepted",
            c.exported.clone(),
        );
        registry.register(
            "trace_spans_dropped",
            "Spans dropped because the queue to the exporter was full",
            c.dropped.clone(),
        );
        registry.register(
            "trace_spans_failed",
            "Spans in batches the trace collector refused or did not answer in time",
            c.failed.clone(),
        );
    }

    /// Spans the collector accepted so far.
    pub fn exported(&self) -> u64 {
        self.counts.exported.get()
    }

    /// Spans dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.get()
    }

    /// Spans in batches the collector refused or did not answer.
    pub fn failed(&self) -> u64 {
        self.counts.failed.get()
    }

    fn report(&self, span: Span) {
        if self.spans.try_send(span).is_err() {
            self.counts.dropped.inc();
        }
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("queued", &(QUEUE - self.spans.capacity()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
