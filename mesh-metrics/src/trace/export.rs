//! Sending spans to a collector: OTLP/HTTP, JSON-encoded, in batches.

use std::{fmt, future::Future, pin::pin, str::FromStr, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{sync::mpsc, time::Instant};

use super::{Counts, EXPORT_TIMEOUT, FLUSH_INTERVAL, MAX_BATCH, span::Span};

/// The collector's traces endpoint: `http://host:port/v1/traces`.
///
/// Parsed from a URL. One without a path, or with `/` alone, gets OTLP's
/// `/v1/traces`, so that `http://otel-collector:4318` names the usual
/// endpoint; any other path is used as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collector {
    uri: Uri,
}

impl Collector {
    /// The endpoint spans are posted to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

/// Why a collector URL was refused. It shows the URL less any
/// credentials it carried: the error goes to logs, and the password with
/// it would go to whoever reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorError {
    url: String,
    reason: &'static str,
}

impl fmt::Display for CollectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace collector `{}`: {}", self.url, self.reason)
    }
}

impl std::error::Error for CollectorError {}

impl FromStr for Collector {
    type Err = CollectorError;

    fn from_str(url: &str) -> Result<Self, CollectorError> {
        let error = |reason| CollectorError {
            url: without_credentials(url),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| error("not a URL, expected http://host:port[/path]"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(error(
                    "https is not supported; use a collector on the node or in the pod, over http",
                ));
            }
            _ => return Err(error("expected an http:// URL")),
        }
        let Some(authority) = uri.authority() else {
            return Err(error("has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(error("credentials in the URL are not supported"));
        }
        let path = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("" | "/") => "/v1/traces",
            Some(path) => path,
        };
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .map_err(|_| error("not a URL, expected http://host:port[/path]"))?;
        Ok(Self { uri })
    }
}

/// `url` with the userinfo of its authority (`user:password@`) written as
/// `***@`, whether or not the rest of it parses: the authority runs from
/// the scheme's `://` (or the start) to the first `/`, `?` or `#`, and its
/// userinfo to its last `@`.
fn without_credentials(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = url.get(start..).unwrap_or_default();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest.get(..end).and_then(|authority| authority.rfind('@')) {
        Some(at) => format!(
            "{}***{}",
            url.get(..start).unwrap_or_default(),
            rest.get(at..).unwrap_or_default()
        ),
        None => url.to_owned(),
    }
}

impl fmt::Display for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

/// Sends the spans of a [`Tracer`](super::Tracer) to its collector; run
/// [`SpanExporter::run`] once, as a task. See the [module docs](super).
pub struct SpanExporter {
    pub(super) spans: mpsc::Receiver<Span>,
    collector: Collector,
    resource: Vec<(String, String)>,
    counts: Counts,
}

impl fmt::Debug for SpanExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanExporter")
            .field("collector", &self.collector)
            .finish_non_exhaustive()
    }
}

impl SpanExporter {
    pub(super) fn new(
        spans: mpsc::Receiver<Span>,
        collector: Collector,
        resource: Vec<(String, String)>,
        counts: Counts,
    ) -> Self {
        Self {
            spans,
            collector,
            resource,
            counts,
        }
    }

    /// Sends spans in batches until every [`Tracer`](super::Tracer) handle
    /// is gone, then sends what is left and returns. A process that keeps
    /// a handle for as long as it runs never sees that happen, and stops
    /// its exporter with [`SpanExporter::run_until`] instead.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await;
    }

    /// Like [`SpanExporter::run`], until `stop` resolves: then the queue
    /// closes (a span reported later is counted as dropped), what it holds
    /// is sent at once, without waiting for a batch to fill, within one
    /// [`EXPORT_TIMEOUT`] for all of it, and the exporter returns. A batch
    /// already on its way when `stop` resolves has its own
    /// [`EXPORT_TIMEOUT`] first, so stopping takes at most twice that.
    ///
    /// A server stops its exporter once it has drained, so that the spans
    /// of the last requests are sent, not lost with the runtime.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let mut stop = pin!(stop);
        // Set once `stop` has resolved: when the last batch must be sent.
        let mut deadline = None;
        let mut failing = false;
        let mut batch = Vec::new();
        loop {
            if deadline.is_none() {
                // `fill` keeps what it took in `batch` if `stop` wins.
                tokio::select! {
                    biased;
                    () = &mut stop => {
                        self.spans.close();
                        deadline = Some(Instant::now() + EXPORT_TIMEOUT);
                        continue;
                    }
                    () = fill(&mut self.spans, &mut batch) => {}
                }
            } else {
                // Closed: never waits.
                fill(&mut self.spans, &mut batch).await;
            }
            if batch.is_empty() {
                return;
            }
            let batch = std::mem::take(&mut batch);
            let n = batch.len() as u64;
            let send_by = deadline.unwrap_or_else(|| Instant::now() + EXPORT_TIMEOUT);
            let mut result = self.send(&client, &batch, send_by).await;
            if let Err(Refused {
                retry_after: Some(delay),
                ..
            }) = &result
                && deadline.is_none()
            {
                // The collector is overloaded and said when to come back:
                // the batch is sent once more then, or at once if the
                // exporter stops first. Meanwhile the queue fills, and
                // spans beyond it are dropped, not held.
                tokio::select! {
                    biased;
                    () = &mut stop => {
                        self.spans.close();
                        deadline = Some(Instant::now() + EXPORT_TIMEOUT);
                    }
                    () = tokio::time::sleep((*delay).min(MAX_RETRY_AFTER)) => {}
                }
                let send_by = deadline.unwrap_or_else(|| Instant::now() + EXPORT_TIMEOUT);
                result = self.send(&client, &batch, send_by).await;
            }
            match result {
                Ok(Accepted { rejected: 0, .. }) => {
                    self.counts.exported.inc_by(n);
                    if failing {
                        tracing::info!(collector = %self.collector, "trace collector accepts spans again");
                    }
                    failing = false;
                }
                Ok(Accepted { rejected, message }) => {
                    // Counted, and not a reason to say the collector is
                    // failing: it is up, and judged these spans.
                    let rejected = rejected.min(n);
                    self.counts.exported.inc_by(n - rejected);
                    self.counts.failed.inc_by(rejected);
                    tracing::debug!(collector = %self.collector, rejected, %message, "the collector rejected spans");
                }
                Err(Refused { error, .. }) => {
                    self.counts.failed.inc_by(n);
                    if failing {
                        tracing::debug!(collector = %self.collector, %error, spans = n, "spans not exported");
                    } else {
                        tracing::warn!(collector = %self.collector, %error, spans = n, "spans not exported");
                    }
                    failing = true;
                }
            }
        }
    }

    async fn send(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        batch: &[Span],
        send_by: Instant,
    ) -> Result<Accepted, Refused> {
        let body = super::span::export_request(&self.resource, batch).to_string();
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.collector.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Refused::other(e.to_string()))?;
        let exchange = async {
            let res = client.request(req).await.map_err(|e| e.to_string())?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .map(Duration::from_secs);
            // Read to its end, so that the connection is used again.
            let body = Limited::new(res.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, retry_after, body))
        };
        let (status, retry_after, body) = tokio::time::timeout_at(send_by, exchange)
            .await
            .map_err(|_| Refused::other(format!("no answer in {EXPORT_TIMEOUT:?}")))?
            .map_err(Refused::other)?;
        if status.is_success() {
            return Ok(Accepted::read(&body));
        }
        // OTLP/HTTP's retryable answers: the collector is overloaded or
        // behind a proxy that is, for now.
        let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
        Err(Refused {
            error: format!("the collector answered {status}"),
            retry_after: retryable.then(|| retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        })
    }
}

/// Why a batch was not exported, and when the collector asked for it
/// again if it did.
#[derive(Debug)]
struct Refused {
    error: String,
    retry_after: Option<Duration>,
}

impl Refused {
    fn other(error: String) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// How long a batch waits to be sent again after a retryable answer
/// without `Retry-After` (or with an HTTP date, which is not read).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest a batch waits to be sent again, whatever `Retry-After`
/// says: spans older than that are of little use, and the queue has been
/// dropping the newer ones meanwhile.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The most of a collector's answer that is read: an
/// `ExportTraceServiceResponse` is a count and a message.
const MAX_RESPONSE: usize = 64 * 1024;

/// Adds the spans queued to `batch` until it holds [`MAX_BATCH`], or
/// [`FLUSH_INTERVAL`] after its first, or the queue is closed and empty.
/// Leaves `batch` empty only when the queue is closed and empty.
async fn fill(spans: &mut mpsc::Receiver<Span>, batch: &mut Vec<Span>) {
    if batch.is_empty() {
        match spans.recv().await {
            Some(span) => batch.push(span),
            None => return,
        }
    }
    let flush_at = Instant::now() + FLUSH_INTERVAL;
    while batch.len() < MAX_BATCH {
        match tokio::time::timeout_at(flush_at, spans.recv()).await {
            Ok(Some(span)) => batch.push(span),
            Ok(None) | Err(_) => break,
        }
    }
}

/// A collector's 2xx answer: OTLP's `partialSuccess`, when it rejected
/// some of the spans it was sent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Accepted {
    rejected: u64,
    message: String,
}

impl Accepted {
    /// Reads an `ExportTraceServiceResponse` in JSON. An empty body, or
    /// one that is not that, accepted every span: OTLP has a collector
    /// that accepts everything answer with no `partialSuccess`.
    fn read(body: &[u8]) -> Self {
        let Ok(response) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let partial = &response["partialSuccess"];
        // An int64: a string in OTLP/JSON, though parsers take numbers too.
        let rejected = match &partial["rejectedSpans"] {
            serde_json::Value::String(text) => text.parse().unwrap_or(0),
            value => value.as_u64().unwrap_or(0),
        };
        let message = partial["errorMessage"].as_str().unwrap_or_default();
        Self {
            rejected,
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_urls_get_otlp_path_when_they_have_none() {
        let c: Collector = "http://otel-collector:4318".parse().unwrap();
        assert_eq!(c.uri(), "http://otel-collector:4318/v1/traces");
        let c: Collector = "http://127.0.0.1:4318/".parse().unwrap();
        assert_eq!(c.to_string(), "http://127.0.0.1:4318/v1/traces");
        let c: Collector = "http://tempo:4318/otlp/v1/traces".parse().unwrap();
        assert_eq!(c.uri(), "http://tempo:4318/otlp/v1/traces");
    }

    #[test]
    fn bad_collector_urls_say_what_is_wrong() {
        let err = |url: &str| url.parse::<Collector>().unwrap_err().to_string();
        assert_eq!(
            err("https://collector:4318"),
            "trace collector `https://collector:4318`: https is not supported; use a collector on the node or in the pod, over http"
        );
        assert_eq!(
            err("collector:4318"),
            "trace collector `collector:4318`: expected an http:// URL"
        );
        assert_eq!(
            err("http://"),
            "trace collector `http://`: not a URL, expected http://host:port[/path]"
        );
        assert_eq!(
            err("http://u:hunter2@collector:4318/v1/traces"),
            "trace collector `http://***@collector:4318/v1/traces`: credentials in the URL are not supported"
        );
    }

    #[test]
    fn a_refused_url_never_shows_its_credentials() {
        // The error goes to logs and to whoever reads the sidecar's
        // output: the password a URL carried must not go with it, whatever
        // else is wrong with the URL.
        for url in [
            "https://user:hunter2@collector:4318",
            "http://user:hunter2@coll ector:4318",
            "ftp://hunter2@collector/x@y",
            "user:hunter2@collector:4318",
            "http://us@er:hunter2@collector:4318",
        ] {
            let error = url.parse::<Collector>().unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("***@"), "{error}");
        }
        // Nothing to hide: the URL is shown as it was.
        assert_eq!(
            "http://coll ector:4318"
                .parse::<Collector>()
                .unwrap_err()
                .to_string(),
            "trace collector `http://coll ector:4318`: not a URL, expected http://host:port[/path]"
        );
    }
}
