//! Which requests a tap sees, and how many a second: the query of
//! `/tap`.

use std::{fmt, time::Duration};

use http::{Method, Request};
use mesh_core::route::normalize_path;
use tokio::time::Instant;

use crate::labels::Direction;

/// The rate a tap sees requests at when it does not say: Linkerd's
/// `--max-rps` default.
pub const DEFAULT_MAX_RPS: u32 = 100;

/// The highest `max_rps` a tap may ask for. Every tapped request costs the
/// proxy a few allocations and three events; this keeps a tap from
/// costing more than a share of the proxy it watches.
pub const MAX_MAX_RPS: u32 = 10_000;

/// Which requests a tap sees: each field set must match, and at most
/// `max_rps` of those a second are shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapFilter {
    /// Only requests on this side of the proxy.
    pub direction: Option<Direction>,
    /// Only requests with this method.
    pub method: Option<Method>,
    /// Only requests for this authority (`host` or `host:port`, compared
    /// without case), as the request's URI or `host` header gives it.
    pub authority: Option<String>,
    /// Only requests whose path (without its query) starts with this, in
    /// the normal form the mesh serves it to the application in
    /// (mesh-core's `normalize_path`: `//admin`, `/%61dmin` and
    /// `/public/../admin` are all `/admin`), so that a request cannot slip
    /// past a tap by spelling its path another way. A path that has no
    /// normal form (a broken `%` escape) is compared as it was sent.
    /// [`from_query`](Self::from_query) refuses a prefix in another
    /// spelling, which no path in normal form starts with.
    pub path: Option<String>,
    /// At most this many requests a second, from 1 to [`MAX_MAX_RPS`].
    pub max_rps: u32,
}

impl Default for TapFilter {
    /// Every request, at most [`DEFAULT_MAX_RPS`] a second.
    fn default() -> Self {
        Self {
            direction: None,
            method: None,
            authority: None,
            path: None,
            max_rps: DEFAULT_MAX_RPS,
        }
    }
}

/// A `/tap` query that does not read, naming the parameter at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTapQuery {
    /// The parameter, such as `max_rps`.
    pub parameter: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidTapQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tap query parameter `{}`: {}",
            self.parameter, self.reason
        )
    }
}

impl std::error::Error for InvalidTapQuery {}

impl TapFilter {
    /// Reads a `/tap` query: `direction` (`inbound` or `outbound`),
    /// `method`, `authority`, `path` (a prefix) and `max_rps`, each at most
    /// once, percent-encoded as in a URL.
    ///
    /// # Errors
    ///
    /// An unknown or repeated parameter, a value that does not read, or a
    /// path prefix not in normal form (the error names the one to use).
    pub fn from_query(query: &str) -> Result<Self, InvalidTapQuery> {
        let mut filter = Self::default();
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let invalid = |reason: &str| InvalidTapQuery {
                parameter: name.to_owned(),
                reason: reason.to_owned(),
            };
            if seen.iter().any(|s| s == name) {
                return Err(invalid("given more than once"));
            }
            seen.push(name.to_owned());
            let value = percent_decode(value).ok_or_else(|| invalid("bad percent-encoding"))?;
            if value.is_empty() {
                return Err(invalid("empty"));
            }
            match name {
                "direction" => {
                    filter.direction = Some(match value.as_str() {
                        "inbound" | "in" => Direction::Inbound,
                        "outbound" | "out" => Direction::Outbound,
                        _ => return Err(invalid("expected `inbound` or `outbound`")),
                    });
                }
                "method" => {
                    filter.method = Some(
                        Method::from_bytes(value.as_bytes())
                            .map_err(|_| invalid("not an HTTP method"))?,
                    );
                }
                "authority" => filter.authority = Some(value),
                "path" if !value.starts_with('/') => {
                    return Err(invalid("a path prefix starts with `/`"));
                }
                // A request's path ends where its query starts: a prefix
                // with one would match nothing, and show an empty tap.
                "path" if value.contains(['?', '#']) => {
                    let prefix = value.split(['?', '#']).next().unwrap_or("/");
                    return Err(invalid(&format!(
                        "a path prefix has no query (`?`) or fragment (`#`); use `{prefix}`"
                    )));
                }
                "path" => {
                    // Paths are matched in normal form, and none starts
                    // with a prefix in another spelling (such as one
                    // copied from a tap's line, which shows the path as
                    // sent): the tap would stay empty. A prefix with no
                    // normal form is compared as paths with none are.
                    if let Ok(normal) = normalize_path(&value)
                        && normal != value.as_str()
                    {
                        return Err(invalid(&format!(
                            "requests are matched by their path in normal form; use `{normal}`"
                        )));
                    }
                    filter.path = Some(value);
                }
                "max_rps" => {
                    filter.max_rps = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_MAX_RPS).contains(n))
                        .ok_or_else(|| {
                            invalid(&format!("expected a whole number from 1 to {MAX_MAX_RPS}"))
                        })?;
                }
                _ => {
                    return Err(invalid(
                        "unknown; expected direction, method, authority, path or max_rps",
                    ));
                }
            }
        }
        Ok(filter)
    }

    /// The query [`from_query`](Self::from_query) reads back as this
    /// filter.
    pub fn to_query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(direction) = self.direction {
            pairs.push(format!("direction={}", direction.as_label()));
        }
        if let Some(method) = &self.method {
            pairs.push(format!("method={}", percent_encode(method.as_str())));
        }
        if let Some(authority) = &self.authority {
            pairs.push(format!("authority={}", percent_encode(authority)));
        }
        if let Some(path) = &self.path {
            pairs.push(format!("path={}", percent_encode(path)));
        }
        pairs.push(format!("max_rps={}", self.max_rps));
        pairs.join("&")
    }

    /// Whether a request on `direction` matches the filter (the rate
    /// aside).
    pub(super) fn matches<B>(&self, direction: Direction, req: &Request<B>) -> bool {
        self.direction.is_none_or(|d| d == direction)
            && self.method.as_ref().is_none_or(|m| m == req.method())
            && self.path.as_deref().is_none_or(|p| {
                let path = req.uri().path();
                // Borrowed, with no allocation, when already normal.
                normalize_path(path)
                    .map_or_else(|_| path.starts_with(p), |normal| normal.starts_with(p))
            })
            && self
                .authority
                .as_deref()
                .is_none_or(|a| authority(req).is_some_and(|got| got.eq_ignore_ascii_case(a)))
    }
}

/// The request's authority: its URI's, else its `host` header, without
/// userinfo. A client may write its credentials into an absolute request
/// target (`http://user:password@host/`, which hyper takes); they say
/// nothing of where the request went, and a tap must not show them.
pub(super) fn authority<B>(req: &Request<B>) -> Option<&str> {
    let authority = req
        .uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| req.headers().get(http::header::HOST)?.to_str().ok())?;
    Some(
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host),
    )
}

/// Lets through at most `per_second` requests a second, in bursts of at
/// most that many: a token bucket.
#[derive(Debug)]
pub(super) struct RateGate {
    per_second: u32,
    tokens: f64,
    at: Instant,
}

impl RateGate {
    pub(super) fn new(per_second: u32, now: Instant) -> Self {
        Self {
            per_second,
            tokens: f64::from(per_second),
            at: now,
        }
    }

    /// Whether one more request may pass at `now`.
    pub(super) fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.at)
            .min(Duration::from_secs(1));
        let rate = f64::from(self.per_second);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `%XX` sequences decoded, `+` read as a space, as browsers and `curl
/// --data-urlencode` write query values. `None` for a broken escape or
/// bytes that are not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                // Two hex digits: `from_str_radix` would also take a sign.
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Every byte but RFC 3986's unreserved characters and `/` escaped.
fn percent_encode(value: &str) -> String {
    use fmt::Write as _;

    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_query_reads_back_as_the_filter_it_came_from() {
        let filter = TapFilter {
            direction: Some(Direction::Outbound),
            method: Some(Method::POST),
            authority: Some("emoji.emojivoto:8080".into()),
            path: Some("/api/a b&c=d".into()),
            max_rps: 7,
        };
        let query = filter.to_query();
        assert_eq!(
            query,
            "direction=outbound&method=POST&authority=emoji.emojivoto%3A8080\
             &path=/api/a%20b%26c%3Dd&max_rps=7"
        );
        assert_eq!(TapFilter::from_query(&query), Ok(filter));
        assert_eq!(TapFilter::from_query(""), Ok(TapFilter::default()));
        assert_eq!(
            TapFilter::from_query("path=/a+b").unwrap().path.as_deref(),
            Some("/a b")
        );
    }

    #[test]
    fn a_bad_query_names_its_parameter() {
        for (query, parameter, reason) in [
            ("max_rps=0", "max_rps", "from 1 to 10000"),
            ("max_rps=10001", "max_rps", "from 1 to 10000"),
            ("direction=sideways", "direction", "`inbound` or `outbound`"),
            ("path=api", "path", "starts with `/`"),
            // A path has no query: such a prefix would match nothing.
            ("path=/api%3Fx=1", "path", "no query"),
            ("path=/api%23top", "path", "no query"),
            ("path=/api/vote%3Fchoice=x", "path", "; use `/api/vote`"),
            ("path=/a%zz", "path", "percent-encoding"),
            // `from_str_radix` takes a sign: `%+1` is no escape of 0x01.
            ("path=/a%+1", "path", "percent-encoding"),
            ("authority=web%-1", "authority", "percent-encoding"),
            ("colour=blue", "colour", "unknown"),
            ("method=GET&method=PUT", "method", "more than once"),
            ("method=G%20T", "method", "not an HTTP method"),
            ("authority=", "authority", "empty"),
        ] {
            let error = TapFilter::from_query(query).unwrap_err();
            assert_eq!(error.parameter, parameter, "{query}");
            assert!(error.reason.contains(reason), "{query}: {error}");
            assert!(error.to_string().contains(&format!("`{parameter}`")));
        }
    }

    #[test]
    fn each_field_set_must_match() {
        let req = Request::post("/api/vote?x=1")
            .header("host", "Web:80")
            .body(())
            .unwrap();
        let with = |query: &str| TapFilter::from_query(query).unwrap();
        let inbound = Direction::Inbound;
        assert!(with("").matches(inbound, &req));
        assert!(
            with("direction=inbound&method=POST&authority=web:80&path=/api").matches(inbound, &req)
        );
        assert!(!with("direction=outbound").matches(inbound, &req));
        assert!(!with("method=GET").matches(inbound, &req));
        assert!(!with("authority=web").matches(inbound, &req));
        assert!(!with("path=/apix").matches(inbound, &req));
        let absolute = Request::get("http://emoji:8080/list").body(()).unwrap();
        assert!(with("authority=emoji:8080").matches(inbound, &absolute));
    }

    #[test]
    fn a_path_prefix_matches_every_spelling_of_the_path_the_app_is_served() {
        // The mesh serves `//admin`, `/%61dmin` and `/public/../admin` to
        // the application as `/admin`: a tap watching `/admin` sees them.
        let admin = TapFilter::from_query("path=/admin").unwrap();
        for path in [
            "/admin",
            "/admin/users",
            "//admin",
            "/%61dmin/users",
            "/public/../admin",
            "/./admin",
            "/adm%69n",
        ] {
            let req = Request::get(path).body(()).unwrap();
            assert!(admin.matches(Direction::Inbound, &req), "{path}");
        }
        // An escaped `/` is no separator, and stays escaped.
        for path in ["/public", "/%2Fadmin", "/adm%69"] {
            let req = Request::get(path).body(()).unwrap();
            assert!(!admin.matches(Direction::Inbound, &req), "{path}");
        }
        // A path the mesh refuses to read is matched as it was sent.
        let broken = Request::get("/admin%zz").body(()).unwrap();
        assert!(admin.matches(Direction::Inbound, &broken));
    }

    #[test]
    fn the_gate_lets_through_its_rate_and_no_more() {
        let start = Instant::now();
        let mut gate = RateGate::new(10, start);
        let passed = (0..50).filter(|_| gate.admit(start)).count();
        assert_eq!(passed, 10, "a burst of at most one second's worth");
        // A tenth of a second later, one more.
        let later = start + Duration::from_millis(100);
        assert!(gate.admit(later));
        assert!(!gate.admit(later));
        // A long pause refills the bucket, but no further than full.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..50).filter(|_| gate.admit(much_later)).count(), 10);
    }
}
