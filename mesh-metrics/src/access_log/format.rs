//! The two line formats, and the entry they are written from.

use std::{
    fmt,
    io::Write as _,
    net::SocketAddr,
    ops::Range,
    str::FromStr,
    time::{Duration, SystemTime},
};

use http::Method;
use mesh_core::Identity;
use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339 as Rfc3339Format};

use crate::printable::{escape_json_controls, is_unprintable};

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

/// Everything one line says, as the request path collects it: values that
/// are cheap to keep as they are (addresses, the identity's shared text,
/// the method), and the request's and response's texts copied into one
/// buffer of their own, so that an entry waiting in the queue holds no
/// connection's read buffer. The line itself is written by the writer
/// task ([`Entry::render`]), off the request path.
#[derive(Debug, Default)]
pub(super) struct Entry {
    pub(super) client_addr: Option<SocketAddr>,
    /// The client's mesh identity; `None` without mutual TLS.
    pub(super) client_id: Option<Identity>,
    pub(super) timestamp: Option<SystemTime>,
    pub(super) method: Method,
    pub(super) version: &'static str,
    /// `None` when no response came: the client went away first, or the
    /// request failed.
    pub(super) status: Option<u16>,
    pub(super) total: Duration,
    pub(super) processing: Duration,
    pub(super) uri: Text,
    pub(super) host: Text,
    pub(super) user_agent: Text,
    pub(super) trace_id: Text,
    /// The request's `content-length`; empty without one.
    pub(super) request_bytes: Text,
    /// The response's `content-length`; `None` without one, or without a
    /// response.
    pub(super) response_bytes: Option<Text>,
    /// The texts above point into this.
    texts: String,
}

/// Where one of an [`Entry`]'s texts is in its buffer; empty by default.
#[derive(Clone, Debug, Default)]
pub(super) struct Text(Range<usize>);

impl Text {
    /// From this text's start to the end of what `entry` holds: the texts
    /// pushed since, as one.
    pub(super) fn through(self, entry: &Entry) -> Self {
        Self(self.0.start..entry.texts.len())
    }
}

impl Entry {
    /// An entry whose texts take up to `capacity` bytes without growing
    /// their buffer.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            texts: String::with_capacity(capacity),
            ..Self::default()
        }
    }

    /// Copies `text` into the entry's buffer.
    pub(super) fn push(&mut self, text: &str) -> Text {
        let start = self.texts.len();
        self.texts.push_str(text);
        Text(start..self.texts.len())
    }

    /// The bytes the entry holds while it waits for the writer.
    pub(super) fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.texts.capacity()
    }

    /// How many bytes of texts the entry holds without growing.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.texts.capacity()
    }

    fn text(&self, text: &Text) -> &str {
        self.texts.get(text.0.clone()).unwrap_or_default()
    }

    /// Appends the line, without its newline, to `out`.
    pub(super) fn render(&self, format: AccessLogFormat, out: &mut Vec<u8>) {
        let timestamp = Rfc3339(self.timestamp);
        let client_addr = Shown(self.client_addr);
        let client_id = self.client_id.as_ref().map_or("-", Identity::as_str);
        match format {
            AccessLogFormat::Apache => {
                // Writing to a `Vec` cannot fail. Apache writes `-` for a
                // field it does not know: an empty address would start the
                // line with a blank.
                let _ = match self.client_addr {
                    Some(addr) => write!(out, "{addr}"),
                    None => write!(out, "-"),
                };
                let _ = write!(out, " {client_id} - [{timestamp}] \"{} ", self.method,);
                apache_escape(self.text(&self.uri), out);
                let _ = match self.status {
                    Some(status) => write!(out, " {}\" {status}", self.version),
                    None => write!(out, " {}\" -", self.version),
                };
            }
            AccessLogFormat::Json => {
                let line = JsonLine {
                    client_addr: Displayed(client_addr),
                    client_id,
                    host: self.text(&self.host),
                    method: self.method.as_str(),
                    processing_ns: Displayed(self.processing.as_nanos()),
                    request_bytes: self.text(&self.request_bytes),
                    response_bytes: self.response_bytes.as_ref().map(|t| self.text(t)),
                    status: self.status,
                    timestamp: Displayed(timestamp),
                    total_ns: Displayed(self.total.as_nanos()),
                    trace_id: self.text(&self.trace_id),
                    uri: self.text(&self.uri),
                    user_agent: self.text(&self.user_agent),
                    version: self.version,
                };
                // Strings and numbers only: encoding cannot fail, but an
                // empty object would still be a line that parses.
                let len = out.len();
                if serde_json::to_writer(&mut *out, &line).is_err() {
                    out.truncate(len);
                    out.extend_from_slice(b"{}");
                }
                // JSON escapes C0 only; a terminal reads C1 too.
                escape_json_controls(out, len);
            }
        }
    }
}

/// Appends `text` as Apache's `%r` writes it: `"` and `\` escaped with a
/// backslash, control characters (C1 included) as `\xhh` per byte. A
/// request target may hold `"` and `\` (hyper takes them, as browsers
/// send them), and unescaped one would end the quoted field and forge the
/// rest of the line.
fn apache_escape(text: &str, out: &mut Vec<u8>) {
    if !text.contains(|c: char| c == '"' || c == '\\' || is_unprintable(c)) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if is_unprintable(c) => {
                let mut utf8 = [0; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    // Writing to a `Vec` cannot fail.
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
}

/// A JSON line's fields, named as Linkerd names them, in its order, and
/// of the JSON types its lines give them, so that what reads Linkerd's
/// lines with typed fields reads these. linkerd2-proxy records its access
/// log span's fields and writes them with tracing-subscriber's JSON
/// formatter: a number recorded as one stays a number (`status`), and
/// what it records as text or with `field::display` becomes a string
/// (`total_ns` and `processing_ns` among them); a field it never records
/// is left out.
#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(rename = "client.addr")]
    client_addr: Displayed<Shown<SocketAddr>>,
    #[serde(rename = "client.id")]
    client_id: &'a str,
    host: &'a str,
    method: &'a str,
    /// Nanoseconds, as a string: Linkerd records it with `Display`.
    processing_ns: Displayed<u128>,
    /// Empty when the request has no `content-length`: Linkerd records
    /// the header's value, or an empty one.
    request_bytes: &'a str,
    /// Left out when the response has no `content-length` (or there is no
    /// response): Linkerd records it only from the header.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_bytes: Option<&'a str>,
    /// Left out when no response came, as Linkerd leaves out a field it
    /// never recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    timestamp: Displayed<Rfc3339>,
    /// Nanoseconds, as a string, as `processing_ns`.
    total_ns: Displayed<u128>,
    trace_id: &'a str,
    uri: &'a str,
    user_agent: &'a str,
    version: &'a str,
}

/// A value, or nothing when there is none.
struct Shown<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}

/// A JSON string written straight from a value's `Display`.
struct Displayed<T>(T);

impl<T: fmt::Display> Serialize for Displayed<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A time in RFC 3339, UTC, with as many digits of the second as it needs:
/// `2022-08-23T20:28:20.071809491Z`, as Linkerd writes it. A time before
/// 1970 is written as 1970's first instant, and one past year 9999, which
/// RFC 3339 cannot write, as nothing; so is no time.
struct Rfc3339(Option<SystemTime>);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The longest, `9999-12-31T23:59:59.999999999Z`, is 30 bytes.
        let mut buf = [0_u8; 32];
        let mut cursor = &mut buf[..];
        let formatted = self
            .0
            .map(|at| {
                at.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
            })
            .and_then(|since| i128::try_from(since.as_nanos()).ok())
            .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
            .is_some_and(|at| at.format_into(&mut cursor, &Rfc3339Format).is_ok());
        // What the cursor moved past is what was written.
        let written = if formatted { 32 - cursor.len() } else { 0 };
        let text = buf.get(..written).unwrap_or_default();
        f.write_str(std::str::from_utf8(text).unwrap_or_default())
    }
}

/// `at` as [`Rfc3339`] writes it.
#[cfg(test)]
pub(super) fn rfc3339(at: SystemTime) -> String {
    Rfc3339(Some(at)).to_string()
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
