//! A route's `RequestRedirect` filter: answering a request with a redirect
//! instead of forwarding it.
//!
//! Moving a service, retiring an old path or sending plain-text clients to
//! TLS all leave callers that still ask for the old place. An `HTTPRoute`
//! rule with a `RequestRedirect` filter tells them where to go: the mesh
//! answers every request the rule matches with a `3xx` and a `Location`,
//! and the backend never sees it. [`Redirect`] is that filter, checked and
//! parsed once when the route is built ([`Redirect::new`]);
//! [`RedirectLayer`] answers with it.
//!
//! # The `Location`
//!
//! It is computed as the Gateway API's `HTTPRequestRedirectFilter` says,
//! from the request and the filter's fields:
//!
//! - **scheme**: `scheme`, else the request's (`https` when its URI says
//!   so, `http` otherwise).
//! - **host**: `hostname`, else the request's host (its `:authority`, else
//!   its `Host` header).
//! - **port**: `port`; else, when `scheme` is set, that scheme's port; else
//!   the port the request was addressed to. It is left out when it is the
//!   scheme's default (80 for `http`, 443 for `https`).
//! - **path**: `ReplaceFullPath` replaces it; `ReplacePrefixMatch`
//!   replaces the part the rule's `PathPrefix` matched, whole path
//!   elements only, as the table of the Gateway API's `HTTPPathModifier`
//!   shows: with prefix `/foo` and replacement `/xyz`, `/foo/bar` becomes
//!   `/xyz/bar` and `/foo/` becomes `/xyz/`; with an empty replacement or
//!   `/`, `/foo/bar` becomes `/bar` and `/foo` becomes `/`; `/foobar` is
//!   not under `/foo` and keeps its path. Without `path` the request's path
//!   is kept. A request target that has no path (`OPTIONS *`, a
//!   `CONNECT`'s `host:port`) addresses the server as a whole: its path is
//!   taken to be `/`.
//! - **query**: always kept. (linkerd2-proxy drops it on `ReplaceFullPath`;
//!   Envoy, and with it most Gateway API implementations, keeps it.)
//!
//! A request with no host at all (or a `Host` header that is not
//! `host[:port]`: a space, a `/`, userinfo), and a filter without
//! `hostname`, gets a relative `Location` (the path and query alone),
//! which RFC 9110 allows and a client resolves against the URI it asked
//! for, keeping that URI's scheme and port. So when the filter changes
//! the scheme or the port, such a `Location` would send the client back
//! where it was, to be redirected again without end: that request is
//! answered with `400 Bad Request` (`mesh-error: no host to redirect
//! to`), as RFC 9112 (section 3.2) answers an HTTP/1.1 request without a
//! valid `Host`. A path that starts
//! `//` (or `/\`) is written after `/.` there, as WHATWG's URL serializer
//! does: alone it would read as `//host/...` and send the client to
//! another host.
//!
//! # Status codes
//!
//! `statusCode` may be 301, 302, 303, 307 or 308; it is 302 when absent.
//! The Gateway API (`v1`, the newest version read here) makes 301 and 302
//! core and the other three extended, each with its own feature
//! (`HTTPRoute303RedirectStatusCode`...). Every one of them is a plain
//! status with a `Location`, so all five are supported; any other code is
//! a configuration error, as the API server's validation makes it.
//!
//! # What marks the answer
//!
//! The answer is the mesh's own, so it carries a [`Redirected`] response
//! extension. It carries neither a `mesh-error` header nor a
//! [`ProxyErrorKind`](crate::ProxyErrorKind): those mean the mesh failed
//! the request, and metrics and response classification count them as
//! failures. A redirect is an answer the operator configured, and a
//! success. Its body is empty (`content-length: 0`).
//!
//! ```
//! use mesh_core::resource::RequestRedirect;
//! use mesh_core::route::{Redirect, RedirectLayer, RouteMatch};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `requestRedirect: { scheme: https, statusCode: 301 }` on a rule
//! // matching every request.
//! let filter = RequestRedirect {
//!     scheme: Some("https".into()),
//!     status_code: Some(301),
//!     ..RequestRedirect::default()
//! };
//! let redirect = Redirect::new(&filter, &[RouteMatch::new()])?;
//! let app = service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("never")))
//! });
//! let svc = RedirectLayer::new(redirect).layer(app);
//!
//! let req = http::Request::get("/books?page=2").header("host", "web:80").body(())?;
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.status(), 301);
//! assert_eq!(res.headers()["location"], "https://web/books?page=2");
//! assert!(res.body().is_empty());
//! # Ok(()) }
//! ```

mod error;
mod layer;
mod location;
#[cfg(test)]
mod tests;

use http::{HeaderValue, Request, Response, StatusCode, header};

pub use self::{
    error::{InvalidRedirect, InvalidRedirectKind},
    layer::{RedirectFuture, RedirectLayer, Redirecting},
};
use super::{PathMatch, RouteMatch};
use crate::resource::{PathModifierType, RequestRedirect};

/// A `RequestRedirect` filter, checked and parsed: what a redirect's
/// `Location` and status are made of. Build it once per route with
/// [`Redirect::new`]; [`location`](Self::location) and
/// [`response`](Self::response) then only assemble the request's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    scheme: Option<Scheme>,
    hostname: Option<Box<str>>,
    port: Option<u16>,
    /// `scheme://hostname[:port]`, when the filter fixes all of it.
    origin: Option<Box<str>>,
    path: Option<PathRewrite>,
    status: StatusCode,
}

/// A response extension on every redirect the mesh answers with.
///
/// It tells an in-process reader that the mesh, not the application, sent
/// the response, without counting it as a failure the way a
/// [`ProxyErrorKind`](crate::ProxyErrorKind) would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Redirected;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PathRewrite {
    /// `ReplaceFullPath`.
    Full(Box<str>),
    /// `ReplacePrefixMatch`: the matched prefix and its replacement, both
    /// without a trailing `/` (so the root prefix and a `/` replacement are
    /// empty).
    Prefix {
        matched: Box<str>,
        replacement: Box<str>,
    },
}

/// The status codes the Gateway API allows a redirect.
const STATUS_CODES: [u16; 5] = [301, 302, 303, 307, 308];

impl Redirect {
    /// Checks and parses `filter`, a rule's `requestRedirect`, for the rule
    /// whose matches are `matches` (as [`HttpRouteRule::route_matches`]
    /// gives them: one match without conditions for a rule without
    /// matches).
    ///
    /// [`HttpRouteRule::route_matches`]: crate::resource::HttpRouteRule::route_matches
    ///
    /// # Errors
    ///
    /// A `scheme` other than `http` or `https`; a `hostname` that is not a
    /// DNS name (the Gateway API's `PreciseHostname`); port 0; a
    /// `statusCode` other than 301, 302, 303, 307 or 308; a path that is
    /// missing, does not start with `/` or holds a `?`, `#` or a byte a URI
    /// cannot carry; a path modifier that also holds the other type's
    /// path; or a `ReplacePrefixMatch` on a rule without exactly
    /// one match whose path is a `PathPrefix` (the Gateway API's own
    /// validation rule). The error names the field, relative to
    /// `requestRedirect`.
    pub fn new(filter: &RequestRedirect, matches: &[RouteMatch]) -> Result<Self, InvalidRedirect> {
        use InvalidRedirectKind as Kind;
        let scheme = match filter.scheme.as_deref() {
            None => None,
            Some("http") => Some(Scheme::Http),
            Some("https") => Some(Scheme::Https),
            Some(other) => return Err(InvalidRedirect::new("scheme", Kind::Scheme, other)),
        };
        let hostname = match filter.hostname.as_deref() {
            None => None,
            Some(name) if is_precise_hostname(name) => Some(Box::from(name)),
            Some(name) => return Err(InvalidRedirect::new("hostname", Kind::Hostname, name)),
        };
        let port = match filter.port {
            Some(0) => return Err(InvalidRedirect::new("port", Kind::Port, "0")),
            port => port,
        };
        let status = match filter.status_code {
            None => StatusCode::FOUND,
            Some(code) => STATUS_CODES
                .contains(&code)
                .then(|| StatusCode::from_u16(code).ok())
                .flatten()
                .ok_or_else(|| {
                    InvalidRedirect::new("statusCode", Kind::StatusCode, &code.to_string())
                })?,
        };
        let path = filter
            .path
            .as_ref()
            .map(|modifier| match modifier.kind {
                PathModifierType::ReplaceFullPath => {
                    let field = "path.replaceFullPath";
                    let path = modifier
                        .replace_full_path
                        .as_deref()
                        .ok_or_else(|| InvalidRedirect::new(field, Kind::Missing, ""))?;
                    if modifier.replace_prefix_match.is_some() {
                        return Err(InvalidRedirect::new(
                            "path.replacePrefixMatch",
                            Kind::OtherType,
                            "ReplaceFullPath",
                        ));
                    }
                    check_path(field, path, false)?;
                    Ok(PathRewrite::Full(path.into()))
                }
                PathModifierType::ReplacePrefixMatch => {
                    let field = "path.replacePrefixMatch";
                    let replacement = modifier
                        .replace_prefix_match
                        .as_deref()
                        .ok_or_else(|| InvalidRedirect::new(field, Kind::Missing, ""))?;
                    if modifier.replace_full_path.is_some() {
                        return Err(InvalidRedirect::new(
                            "path.replaceFullPath",
                            Kind::OtherType,
                            "ReplacePrefixMatch",
                        ));
                    }
                    check_path(field, replacement, true)?;
                    let matched = match matches {
                        [only] => match only.path() {
                            None => Some(""),
                            Some(PathMatch::Prefix(prefix)) => Some(prefix.trim_end_matches('/')),
                            Some(_) => None,
                        },
                        _ => None,
                    }
                    .ok_or_else(|| {
                        InvalidRedirect::new("path", Kind::PrefixWithoutPrefixMatch, "")
                    })?;
                    Ok(PathRewrite::Prefix {
                        matched: matched.into(),
                        replacement: replacement.trim_end_matches('/').into(),
                    })
                }
            })
            .transpose()?;
        let origin = match (scheme, &hostname) {
            (Some(scheme), Some(host)) => {
                let port = port.filter(|&p| p != scheme.default_port());
                Some(match port {
                    Some(port) => format!("{}://{host}:{port}", scheme.as_str()),
                    None => format!("{}://{host}", scheme.as_str()),
                })
            }
            _ => None,
        };
        Ok(Self {
            scheme,
            hostname,
            port,
            origin: origin.map(String::into_boxed_str),
            path,
            status,
        })
    }

    /// The status the redirect answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The redirect's answer to `req`: its status, the `Location` for the
    /// request, an empty body (`B::default()`), and the [`Redirected`]
    /// extension.
    ///
    /// A filter that changes the scheme or the port without naming a
    /// host needs the request's host to say so; a request without one (or
    /// with a `Host` that is not `host[:port]`) is answered with
    /// `400 Bad Request` (`mesh-error: no host to redirect to`, and a
    /// [`ProxyErrorKind::InvalidRequest`](crate::ProxyErrorKind)
    /// extension) instead of a redirect to itself.
    pub fn response<B: Default>(&self, req: &Request<impl Sized>) -> Response<B> {
        if !self.can_redirect(req.uri(), req.headers()) {
            tracing::debug!("a redirect to another scheme or port for a request without a host");
            return crate::ProxyErrorKind::InvalidRequest.response_with_reason(
                crate::error::is_grpc(req.headers()),
                "no host to redirect to",
            );
        }
        let mut res = Response::new(B::default());
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(header::LOCATION, self.location(req.uri(), req.headers()));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        res.extensions_mut().insert(Redirected);
        res
    }
}

/// Whether `name` is a DNS name as the Gateway API's `PreciseHostname`
/// allows: lowercase labels of letters, digits and inner hyphens, joined
/// by dots, at most 253 bytes. A wildcard, a name with a port or with
/// capitals is not one.
fn is_precise_hostname(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label)
}

/// A path a `Location` can carry: absolute (a prefix replacement may also
/// be empty), without a query or fragment, and of URI characters only.
fn check_path(field: &'static str, path: &str, may_be_empty: bool) -> Result<(), InvalidRedirect> {
    use InvalidRedirectKind as Kind;
    if path.is_empty() && may_be_empty {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(InvalidRedirect::new(field, Kind::PathNotAbsolute, path));
    }
    if path.contains(['?', '#']) || http::uri::PathAndQuery::try_from(path).is_err() {
        return Err(InvalidRedirect::new(field, Kind::Path, path));
    }
    Ok(())
}
