//! Sending spans to a collector: OTLP/HTTP, JSON-encoded, in batches.

use std::{fmt, str::FromStr};

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::Full;
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

/// Why a collector URL was refused.
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
            url: url.to_owned(),
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
    /// is gone, then sends what is left and returns.
    pub async fn run(mut self) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let mut failing = false;
        while let Some(first) = self.spans.recv().await {
            let flush_at = Instant::now() + FLUSH_INTERVAL;
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(flush_at, self.spans.recv()).await {
                    Ok(Some(span)) => batch.push(span),
                    Ok(None) | Err(_) => break,
                }
            }
            let n = batch.len() as u64;
            match self.send(&client, &batch).await {
                Ok(()) => {
                    self.counts.exported.inc_by(n);
                    if failing {
                        tracing::info!(collector = %self.collector, "trace collector accepts spans again");
                    }
                    failing = false;
                }
                Err(error) => {
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
    ) -> Result<(), String> {
        let body = super::span::export_request(&self.resource, batch).to_string();
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.collector.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(EXPORT_TIMEOUT, client.request(req))
            .await
            .map_err(|_| format!("no answer in {EXPORT_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {}", res.status()))
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
            err("http://u:p@collector:4318"),
            "trace collector `http://u:p@collector:4318`: credentials in the URL are not supported"
        );
    }
}
