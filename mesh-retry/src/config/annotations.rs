//! Linkerd's retry and timeout annotations.

use std::{collections::BTreeMap, num::NonZeroU32, time::Duration};

use mesh_core::classify::{GrpcCode, GrpcCodes, StatusRanges};

use super::GoDuration;

/// The annotation prefixes this module reads; any other key under them is
/// reported as unknown.
const PREFIXES: [&str; 2] = ["retry.linkerd.io/", "timeout.linkerd.io/"];

/// The highest status `retry.linkerd.io/http` may name, as in Linkerd.
const MAX_STATUS: u16 = 599;

/// The highest `retry.linkerd.io/limit`: Linkerd's policy controller
/// reads it as a `u16`, as its proxy holds a route's `max_retries`.
const MAX_LIMIT: u32 = u16::MAX as u32;

/// Linkerd's per-route retry and timeout annotations, on an `HTTPRoute` or
/// a `GRPCRoute`:
///
/// | annotation | value | meaning |
/// |---|---|---|
/// | `retry.linkerd.io/http` | `5xx`, `gateway-error`, `500-504`, `503`, comma-separated, within 100 to 599 | HTTP statuses to retry; `HTTPRoute` only |
/// | `retry.linkerd.io/grpc` | `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`, ..., comma-separated, not `ok` | gRPC codes to retry; `GRPCRoute` only |
/// | `retry.linkerd.io/limit` | a number from 1 to 65535; default 1, as in Linkerd | retries per request (attempts − 1) |
/// | `retry.linkerd.io/timeout` | a duration; `0s` is none | the per-try timeout |
/// | `timeout.linkerd.io/request` | a duration | the request timeout |
/// | `timeout.linkerd.io/idle` | a duration | the response body idle timeout |
///
/// A duration is a Go duration (`300ms`, `1.5s`, `1m30s`) or a whole
/// number of days (`1d`): Linkerd's policy controller takes one whole
/// number with a unit of `ms`, `s`, `m`, `h` or `d` here (see
/// [`GoDuration`]), so every value it takes is read, and the Go notation
/// Linkerd's own ServiceProfiles use is read as well.
///
/// Linkerd's `timeout.linkerd.io/response` is not read: it is warned
/// about by name, with the timeouts to use instead.
///
/// Any `retry.linkerd.io/*` annotation turns retries on for the route,
/// but a `retry.linkerd.io/timeout` of zero, which Linkerd drops first.
/// On a `GRPCRoute` that marks the route's calls retryable, although they
/// are POSTs.
///
/// Linkerd reads `retry.linkerd.io/http` on an `HTTPRoute` only and
/// `retry.linkerd.io/grpc` on a `GRPCRoute` only: its retries reference
/// calls each "not valid" on the other kind, its policy controller parses
/// one or the other by the route's kind, and its proxy retries an
/// `HTTPRoute`'s requests on HTTP statuses alone and a `GRPCRoute`'s calls
/// on gRPC codes alone. The route reader ([`load`](super::load)) does the
/// same: the other kind's annotation is left unread, not even checked,
/// and named in a [`ConfigWarning`](super::ConfigWarning) that says which
/// annotation the route's kind reads. [`parse`](Self::parse) itself reads
/// both.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkerdAnnotations {
    /// `retry.linkerd.io/http`.
    pub http: Option<StatusRanges>,
    /// `retry.linkerd.io/grpc`.
    pub grpc: Option<GrpcCodes>,
    /// `retry.linkerd.io/limit`: retries, not attempts.
    pub limit: Option<NonZeroU32>,
    /// `retry.linkerd.io/timeout`, unless zero.
    pub per_try: Option<Duration>,
    /// `timeout.linkerd.io/request`.
    pub request: Option<Duration>,
    /// `timeout.linkerd.io/idle`.
    pub idle: Option<Duration>,
    /// Keys under `retry.linkerd.io/` or `timeout.linkerd.io/` that are not
    /// read, to warn about.
    pub unknown: Vec<String>,
}

/// An annotation whose value is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidAnnotation {
    /// The annotation's key.
    pub key: String,
    /// What is wrong, with what is allowed.
    pub message: String,
}

impl LinkerdAnnotations {
    /// The retries per request of a route whose annotations turn retries
    /// on without `retry.linkerd.io/limit`: one, Linkerd's default (the
    /// [`RetryPolicy`](crate::RetryPolicy) default is two).
    pub const DEFAULT_LIMIT: NonZeroU32 = NonZeroU32::MIN;

    /// Reads the annotations this module knows from `annotations`.
    ///
    /// # Errors
    ///
    /// The first annotation whose value is wrong: statuses or codes that do
    /// not parse, a limit that is zero, above 65535 or not a number, a
    /// duration that does
    /// not parse.
    pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Self, InvalidAnnotation> {
        let mut parsed = Self::default();
        for (key, value) in annotations {
            if !PREFIXES.iter().any(|p| key.starts_with(p)) {
                continue;
            }
            let invalid = |message: String| InvalidAnnotation {
                key: key.clone(),
                message,
            };
            let duration = || {
                GoDuration::parse_annotation(value.trim())
                    .map(GoDuration::get)
                    .map_err(|e| invalid(e.to_string()))
            };
            match key.as_str() {
                "retry.linkerd.io/http" => {
                    let statuses: StatusRanges = value
                        .parse()
                        .map_err(|e| invalid(format!("invalid http statuses {value:?}: {e}")))?;
                    // Linkerd reads statuses up to 599 only.
                    if let Some(status) = statuses
                        .ranges()
                        .find(|r| *r.end() > MAX_STATUS)
                        .map(|r| (*r.start()).max(MAX_STATUS + 1))
                    {
                        return Err(invalid(format!(
                            "invalid http statuses {value:?}: http status {status} is outside \
                             the allowed range 100 to {MAX_STATUS}"
                        )));
                    }
                    parsed.http = Some(statuses);
                }
                "retry.linkerd.io/grpc" => {
                    let codes: GrpcCodes = value
                        .parse()
                        .map_err(|e| invalid(format!("invalid grpc codes {value:?}: {e}")))?;
                    // A call answered OK succeeded; retrying on it would
                    // send every successful call again. Linkerd's policy
                    // controller takes only failure codes here.
                    if codes.contains(GrpcCode::OK) {
                        return Err(invalid(format!(
                            "invalid grpc codes {value:?}: ok (0) is a successful call, which \
                             is never retried"
                        )));
                    }
                    parsed.grpc = Some(codes);
                }
                "retry.linkerd.io/limit" => {
                    let limit = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .and_then(NonZeroU32::new)
                        .ok_or_else(|| {
                            invalid(format!(
                                "retry limit {value:?} must be a whole number of retries, at least 1"
                            ))
                        })?;
                    // Linkerd reads the limit as a 16-bit number, and
                    // refuses the route for a larger one.
                    if limit.get() > MAX_LIMIT {
                        return Err(invalid(format!(
                            "retry limit {value:?} is above {MAX_LIMIT}, the most Linkerd takes"
                        )));
                    }
                    parsed.limit = Some(limit);
                }
                // Zero is no per-try timeout, and, as Linkerd drops it
                // before deciding whether the route retries, turns
                // nothing on.
                "retry.linkerd.io/timeout" => {
                    parsed.per_try = Some(duration()?).filter(|d| !d.is_zero());
                }
                "timeout.linkerd.io/request" => parsed.request = Some(duration()?),
                "timeout.linkerd.io/idle" => parsed.idle = Some(duration()?),
                _ => parsed.unknown.push(key.clone()),
            }
        }
        Ok(parsed)
    }

    /// Whether any `retry.linkerd.io/*` annotation is set.
    pub fn retries(&self) -> bool {
        self.http.is_some() || self.grpc.is_some() || self.limit.is_some() || self.per_try.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_annotation_is_read() {
        let parsed = LinkerdAnnotations::parse(&annotations(&[
            ("retry.linkerd.io/http", "5xx,429"),
            ("retry.linkerd.io/grpc", "unavailable,internal"),
            ("retry.linkerd.io/limit", "2"),
            ("retry.linkerd.io/timeout", "300ms"),
            ("timeout.linkerd.io/request", "10s"),
            ("timeout.linkerd.io/idle", "1m"),
            ("retry.linkerd.io/bogus", "x"),
            ("unrelated.example.com/key", "y"),
        ]))
        .unwrap();
        assert_eq!(parsed.http, Some("5xx,429".parse().unwrap()));
        assert_eq!(parsed.grpc, Some("unavailable,internal".parse().unwrap()));
        assert_eq!(parsed.limit, NonZeroU32::new(2));
        assert_eq!(parsed.per_try, Some(Duration::from_millis(300)));
        assert_eq!(parsed.request, Some(Duration::from_secs(10)));
        assert_eq!(parsed.idle, Some(Duration::from_secs(60)));
        assert_eq!(parsed.unknown, ["retry.linkerd.io/bogus"]);
        assert!(parsed.retries());
    }

    #[test]
    fn wrong_values_name_their_annotation() {
        for (key, value, message) in [
            (
                "retry.linkerd.io/limit",
                "0",
                "retry limit \"0\" must be a whole number of retries, at least 1",
            ),
            (
                "retry.linkerd.io/limit",
                "65536",
                "retry limit \"65536\" is above 65535, the most Linkerd takes",
            ),
            (
                "retry.linkerd.io/limit",
                "many",
                "retry limit \"many\" must be a whole number of retries, at least 1",
            ),
            (
                "retry.linkerd.io/timeout",
                "5 seconds",
                "invalid duration \"5 seconds\": expected numbers with units ns, us, ms, s, m or h, such as 300ms, 1.5s or 1h30m, or whole days, such as 1d",
            ),
            (
                "timeout.linkerd.io/request",
                "soon",
                "invalid duration \"soon\": expected numbers with units ns, us, ms, s, m or h, such as 300ms, 1.5s or 1h30m, or whole days, such as 1d",
            ),
            (
                "retry.linkerd.io/http",
                "6xy",
                "invalid http statuses \"6xy\": expected an http status, a range such as `500-504`, a class such as `5xx`, or `gateway-error`",
            ),
            (
                "retry.linkerd.io/http",
                "5xx,700",
                "invalid http statuses \"5xx,700\": http status 700 is outside the allowed range 100 to 599",
            ),
            (
                "retry.linkerd.io/http",
                "6xx",
                "invalid http statuses \"6xx\": http status 600 is outside the allowed range 100 to 599",
            ),
            (
                "retry.linkerd.io/http",
                "500-650",
                "invalid http statuses \"500-650\": http status 600 is outside the allowed range 100 to 599",
            ),
            (
                "retry.linkerd.io/grpc",
                "flaky",
                "invalid grpc codes \"flaky\": unknown grpc status code",
            ),
            // A call answered OK succeeded: retrying it would send every
            // successful call again. Linkerd refuses the value too.
            (
                "retry.linkerd.io/grpc",
                "unavailable,ok",
                "invalid grpc codes \"unavailable,ok\": ok (0) is a successful call, which is \
                 never retried",
            ),
            (
                "retry.linkerd.io/grpc",
                "0",
                "invalid grpc codes \"0\": ok (0) is a successful call, which is never retried",
            ),
        ] {
            let err = LinkerdAnnotations::parse(&annotations(&[(key, value)])).unwrap_err();
            assert_eq!(err.key, key);
            assert_eq!(err.message, message);
        }
    }
}
