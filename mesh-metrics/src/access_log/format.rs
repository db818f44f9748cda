//! The two line formats, and the entry they are written from.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime},
};

use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// How an access log line is written: Linkerd's two formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessLogFormat {
    /// The Apache Common Log Format: `client id - [time] "request" status`.
    Apache,
    /// One JSON object per line, with every field.
    Json,
}

/// An access log format that is neither `apache` nor `json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidAccessLogFormat(pub String);

impl fmt::Display for InvalidAccessLogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown access log format {:?}: expected apache or json",
            self.0
        )
    }
}

impl std::error::Error for InvalidAccessLogFormat {}

impl FromStr for AccessLogFormat {
    type Err = InvalidAccessLogFormat;

    /// `apache` or `json`, as Linkerd's annotation takes them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "apache" => Ok(Self::Apache),
            "json" => Ok(Self::Json),
            other => Err(InvalidAccessLogFormat(other.to_owned())),
        }
    }
}

/// Everything one line says.
#[derive(Debug, Default)]
pub(super) struct Entry {
    pub(super) client_addr: String,
    /// The client's mesh identity; `None` without mutual TLS.
    pub(super) client_id: Option<String>,
    pub(super) timestamp: Option<SystemTime>,
    pub(super) method: String,
    pub(super) uri: String,
    pub(super) version: &'static str,
    pub(super) host: String,
    pub(super) user_agent: String,
    pub(super) trace_id: String,
    pub(super) request_bytes: String,
    pub(super) status: u16,
    pub(super) response_bytes: String,
    pub(super) total: Duration,
    pub(super) processing: Duration,
}

impl Entry {
    pub(super) fn render(&self, format: AccessLogFormat) -> String {
        let timestamp = self.timestamp.map(rfc3339).unwrap_or_default();
        let client_id = self.client_id.as_deref().unwrap_or("-");
        match format {
            AccessLogFormat::Apache => format!(
                "{} {client_id} - [{timestamp}] \"{} {} {}\" {}",
                self.client_addr, self.method, self.uri, self.version, self.status
            ),
            AccessLogFormat::Json => {
                let line = JsonLine {
                    client_addr: &self.client_addr,
                    client_id,
                    host: &self.host,
                    method: &self.method,
                    processing_ns: self.processing.as_nanos(),
                    request_bytes: &self.request_bytes,
                    response_bytes: &self.response_bytes,
                    status: self.status,
                    timestamp: &timestamp,
                    total_ns: self.total.as_nanos(),
                    trace_id: &self.trace_id,
                    uri: &self.uri,
                    user_agent: &self.user_agent,
                    version: self.version,
                };
                // Strings and numbers only: encoding cannot fail, but an
                // empty object would still be a line that parses.
                serde_json::to_string(&line).unwrap_or_else(|_| String::from("{}"))
            }
        }
    }
}

/// A JSON line's fields, named as Linkerd names them, in its order.
#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(rename = "client.addr")]
    client_addr: &'a str,
    #[serde(rename = "client.id")]
    client_id: &'a str,
    host: &'a str,
    method: &'a str,
    processing_ns: u128,
    request_bytes: &'a str,
    response_bytes: &'a str,
    status: u16,
    timestamp: &'a str,
    total_ns: u128,
    trace_id: &'a str,
    uri: &'a str,
    user_agent: &'a str,
    version: &'a str,
}

/// `at` in RFC 3339, UTC, with as many digits of the second as it needs:
/// `2022-08-23T20:28:20.071809491Z`, as Linkerd writes it. A time before
/// 1970 is written as 1970's first instant, and one past year 9999, which
/// RFC 3339 cannot write, as nothing.
pub(super) fn rfc3339(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    i128::try_from(since.as_nanos())
        .ok()
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_the_digits_they_need() {
        let at = |secs: u64, nanos: u32| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        // `date -u -d @1661286500` prints Tue Aug 23 20:28:20 UTC 2022.
        assert_eq!(
            rfc3339(at(1_661_286_500, 71_809_491)),
            "2022-08-23T20:28:20.071809491Z"
        );
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00Z");
        // The day after a leap day, and the last second of a year; the
        // fraction has the digits it needs.
        assert_eq!(
            rfc3339(at(951_868_800, 5)),
            "2000-03-01T00:00:00.000000005Z"
        );
        assert_eq!(
            rfc3339(at(1_735_689_599, 500_000_000)),
            "2024-12-31T23:59:59.5Z"
        );
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn formats_read_as_linkerds_annotation_values() {
        assert_eq!("apache".parse(), Ok(AccessLogFormat::Apache));
        assert_eq!("json".parse(), Ok(AccessLogFormat::Json));
        let error = "yaml".parse::<AccessLogFormat>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown access log format \"yaml\": expected apache or json"
        );
    }
}
