//! The two line formats, and the entry they are written from.

use std::{
    fmt::{self, Write as _},
    str::FromStr,
    time::{Duration, SystemTime},
};

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
                let mut out = String::with_capacity(512);
                out.push('{');
                let text = [
                    ("client.addr", self.client_addr.as_str()),
                    ("client.id", client_id),
                    ("host", &self.host),
                    ("method", &self.method),
                ];
                for (name, value) in text {
                    field(&mut out, name, value);
                }
                number(&mut out, "processing_ns", self.processing.as_nanos());
                field(&mut out, "request_bytes", &self.request_bytes);
                field(&mut out, "response_bytes", &self.response_bytes);
                number(&mut out, "status", self.status.into());
                field(&mut out, "timestamp", &timestamp);
                number(&mut out, "total_ns", self.total.as_nanos());
                let text = [
                    ("trace_id", self.trace_id.as_str()),
                    ("uri", &self.uri),
                    ("user_agent", &self.user_agent),
                    ("version", self.version),
                ];
                for (name, value) in text {
                    field(&mut out, name, value);
                }
                out.pop();
                out.push('}');
                out
            }
        }
    }
}

/// `"name":"value",`, the value escaped as a JSON string.
fn field(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "\"{name}\":\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push_str("\",");
}

/// `"name":value,`.
fn number(out: &mut String, name: &str, value: u128) {
    let _ = write!(out, "\"{name}\":{value},");
}

/// `at` in RFC 3339, UTC, to the nanosecond: `2022-08-23T20:28:20.071809491Z`.
/// A time before 1970 is written as 1970's first instant.
pub(super) fn rfc3339(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        since.subsec_nanos()
    )
}

/// The date `days` after 1970-01-01, by Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>), for days on
/// or after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_nanosecond() {
        let at = |secs: u64, nanos: u32| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        // `date -u -d @1661286500` prints Tue Aug 23 20:28:20 UTC 2022.
        assert_eq!(
            rfc3339(at(1_661_286_500, 71_809_491)),
            "2022-08-23T20:28:20.071809491Z"
        );
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000000000Z");
        // The day after a leap day, and the last second of a year.
        assert_eq!(
            rfc3339(at(951_868_800, 5)),
            "2000-03-01T00:00:00.000000005Z"
        );
        assert_eq!(
            rfc3339(at(1_735_689_599, 0)),
            "2024-12-31T23:59:59.000000000Z"
        );
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000000000Z");
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
