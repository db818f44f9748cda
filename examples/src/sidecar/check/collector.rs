//! The trace collector is there: a sidecar whose collector does not
//! accept connections starts and serves anyway, but every span it reports
//! is lost (and counted in `trace_spans_failed_total`).

use std::time::Duration;

use tokio::net::TcpStream;

use super::Check;
use super::time::Span;
use crate::sidecar::config::SidecarConfig;

/// Nothing without a `tracing` section. With one, the collector's address
/// accepts a TCP connection within `timeout`; a warning when it does not,
/// since tracing is never worth refusing traffic for.
pub(super) async fn check(config: &SidecarConfig, timeout: Duration) -> Vec<Check> {
    let Some(tracing) = &config.tracing else {
        return Vec::new();
    };
    let uri = tracing.collector.uri();
    let Some(authority) = uri.authority() else {
        return Vec::new();
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let title = format!("trace collector {authority} accepts connections");
    let problem = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => return vec![Check::pass(title).with_detail(format!("spans go to {uri}"))],
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {}", Span(timeout)),
    };
    vec![Check::warn(
        title,
        format!(
            "{problem}\nthe sidecar serves anyway; the spans it reports are lost and counted \
             in trace_spans_failed_total until the collector is up"
        ),
    )]
}
