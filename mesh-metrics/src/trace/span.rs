//! A finished span, and the OTLP/JSON a batch of them is sent as.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::context::{SpanId, TraceId, hex};

/// Who the proxy is in the exchange it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// Inbound: the proxy served a request for its workload.
    Server,
    /// Outbound: the proxy sent its workload's request on.
    Client,
}

impl SpanKind {
    /// OTLP's `SpanKind` number.
    fn otlp(self) -> u8 {
        match self {
            Self::Server => 2,
            Self::Client => 3,
        }
    }

    /// The `mesh.direction` attribute.
    pub(crate) fn direction(self) -> &'static str {
        match self {
            Self::Server => "inbound",
            Self::Client => "outbound",
        }
    }

    /// Whether a response with `status` failed, as OpenTelemetry's HTTP
    /// conventions have it: a client's 4xx is an error, a server's is the
    /// client's mistake, not its own.
    pub(crate) fn is_error(self, status: http::StatusCode) -> bool {
        match self {
            Self::Server => status.is_server_error(),
            Self::Client => status.is_client_error() || status.is_server_error(),
        }
    }
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    /// Borrowed when the value is one of a closed set, so that most of a
    /// span's strings cost no allocation.
    Str(Cow<'static, str>),
    Int(i64),
}

/// One proxy hop of a trace, ready to send.
#[derive(Clone, Debug)]
pub(crate) struct Span {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: SpanId,
    /// The method for HTTP; `package.Service/Method` for gRPC.
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: SpanKind,
    /// Nanoseconds since the Unix epoch.
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) attributes: Vec<(&'static str, Attr)>,
    /// The caller's W3C `tracestate`, bounded.
    pub(crate) trace_state: Option<String>,
    /// Set when the exchange failed, with a message when there is more to
    /// say than the attributes do.
    pub(crate) error: Option<Cow<'static, str>>,
}

impl Span {
    fn to_otlp(&self) -> Value {
        let mut span = json!({
            "traceId": hex(&self.trace_id.0),
            "spanId": hex(&self.span_id.0),
            "parentSpanId": hex(&self.parent.0),
            "name": &*self.name,
            "kind": self.kind.otlp(),
            // 64-bit integers are strings in OTLP/JSON.
            "startTimeUnixNano": self.start.to_string(),
            "endTimeUnixNano": self.end.to_string(),
            "attributes": self
                .attributes
                .iter()
                .map(|(key, value)| attribute(key, value))
                .collect::<Vec<_>>(),
        });
        if let Some(state) = &self.trace_state {
            span["traceState"] = json!(state);
        }
        if let Some(message) = &self.error {
            // STATUS_CODE_ERROR.
            span["status"] = json!({ "code": 2, "message": message });
        }
        span
    }
}

fn attribute(key: &str, value: &Attr) -> Value {
    let value = match value {
        Attr::Str(s) => json!({ "stringValue": s }),
        Attr::Int(i) => json!({ "intValue": i.to_string() }),
    };
    json!({ "key": key, "value": value })
}

/// An OTLP `ExportTraceServiceRequest` in JSON: `spans`, reported by the
/// resource `resource` describes.
pub(crate) fn export_request(resource: &[(String, String)], spans: &[Span]) -> Value {
    let resource: Vec<Value> = resource
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": { "stringValue": value } }))
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": resource },
            "scopeSpans": [{
                "scope": { "name": "mesh-metrics", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(Span::to_otlp).collect::<Vec<_>>(),
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_otlp_json_with_hex_ids_and_string_nanoseconds() {
        let span = Span {
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([1, 2, 3, 4, 5, 6, 7, 8]),
            parent: SpanId([0xff; 8]),
            name: Cow::Borrowed("GET"),
            kind: SpanKind::Server,
            start: 1_700_000_000_000_000_000,
            end: 1_700_000_000_002_500_000,
            attributes: vec![
                ("http.request.method", Attr::Str("GET".into())),
                ("http.response.status_code", Attr::Int(503)),
            ],
            trace_state: Some("congo=t61rcWkgMzE".to_owned()),
            error: Some(Cow::Borrowed("")),
        };
        let resource = [("service.name".to_owned(), "web".to_owned())];
        let body = export_request(&resource, &[span]);
        let expected = json!({
            "resourceSpans": [{
                "resource": { "attributes": [
                    { "key": "service.name", "value": { "stringValue": "web" } },
                ]},
                "scopeSpans": [{
                    "scope": { "name": "mesh-metrics", "version": env!("CARGO_PKG_VERSION") },
                    "spans": [{
                        "traceId": "abababababababababababababababab",
                        "spanId": "0102030405060708",
                        "parentSpanId": "ffffffffffffffff",
                        "name": "GET",
                        "kind": 2,
                        "startTimeUnixNano": "1700000000000000000",
                        "endTimeUnixNano": "1700000000002500000",
                        "attributes": [
                            { "key": "http.request.method", "value": { "stringValue": "GET" } },
                            { "key": "http.response.status_code", "value": { "intValue": "503" } },
                        ],
                        "traceState": "congo=t61rcWkgMzE",
                        "status": { "code": 2, "message": "" },
                    }],
                }],
            }],
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn a_client_errs_on_4xx_a_server_only_on_5xx() {
        use http::StatusCode;
        assert!(!SpanKind::Server.is_error(StatusCode::NOT_FOUND));
        assert!(SpanKind::Server.is_error(StatusCode::BAD_GATEWAY));
        assert!(SpanKind::Client.is_error(StatusCode::NOT_FOUND));
        assert!(!SpanKind::Client.is_error(StatusCode::OK));
    }
}
