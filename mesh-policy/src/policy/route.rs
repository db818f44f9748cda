//! Route matches of a server, in the Gateway API's order of precedence.

use std::{cmp::Ordering, sync::Arc};

use http::{HeaderMap, HeaderValue, Method, Uri, header::HOST};
use mesh_core::route::{PathMatch, RouteFilters, RouteMatch};

/// One match of one route rule, with the route's hostnames and the rule's
/// filters.
#[derive(Debug)]
pub(crate) struct MatchEntry {
    /// The route, as an index into the server's routes.
    pub(crate) route: usize,
    pub(crate) hosts: Arc<[HostMatch]>,
    pub(crate) matcher: RouteMatch,
    /// The rule's filters, when it has any: what the request gets once it
    /// is allowed.
    pub(crate) filters: Option<Arc<RouteFilters>>,
    /// The route's rank for ties between equal matches: by age, then
    /// `{namespace}/{name}` (see `build::tie_ranks`).
    pub(crate) order: usize,
    /// For a `GRPCRoute`'s match, its `GRPCRoute` rank, which decides
    /// its precedence in place of the `HTTPRoute` match it was read as.
    grpc: Option<GrpcRank>,
    hint: Option<PathHint>,
}

/// The rank of a `GRPCRoute` match, least specific first: whether it names
/// a service, whether it names a method, its number of header matches
/// ([`GrpcRouteMatch::precedence`](mesh_core::resource::GrpcRouteMatch::precedence)).
pub(crate) type GrpcRank = (bool, bool, usize);

/// A cheap necessary condition on the path of an exact or prefix match.
///
/// Sibling routes share their leading segments (`/api/v1/books`,
/// `/api/v1/authors`) and differ near the end, so the length and the last
/// byte of the literal reject most paths that a full comparison would,
/// without one.
///
/// That holds only for a path spelt as the literal is. mesh-core compares
/// a path holding a `%` in its canonical spelling (`/%61dmin` is
/// `/admin`, `%c3` is `%C3`), which may be longer or end in another byte,
/// so such a path is always left to the full comparison.
#[derive(Clone, Copy, Debug)]
struct PathHint {
    len: usize,
    last: u8,
    exact: bool,
}

impl PathHint {
    fn new(path: Option<&PathMatch>) -> Option<Self> {
        let (literal, exact) = match path? {
            PathMatch::Exact(p) => (&**p, true),
            PathMatch::Prefix(p) => (p.trim_end_matches('/'), false),
            PathMatch::Regex(_) => return None,
        };
        Some(Self {
            len: literal.len(),
            last: *literal.as_bytes().last()?,
            exact,
        })
    }

    #[inline]
    fn may_match(self, path: &str) -> bool {
        let fits = if self.exact {
            path.len() == self.len
        } else {
            path.len() >= self.len
        };
        (fits && path.as_bytes().get(self.len.wrapping_sub(1)) == Some(&self.last))
            || path.contains('%')
    }
}

impl MatchEntry {
    pub(crate) fn new(
        route: usize,
        hosts: Arc<[HostMatch]>,
        matcher: RouteMatch,
        order: usize,
    ) -> Self {
        Self {
            route,
            hosts,
            hint: PathHint::new(matcher.path()),
            matcher,
            filters: None,
            order,
            grpc: None,
        }
    }

    /// The same match, for a `GRPCRoute`'s rule when `grpc` is the rank
    /// of the match there.
    pub(crate) fn with_grpc(mut self, grpc: Option<GrpcRank>) -> Self {
        self.grpc = grpc;
        self
    }

    /// The same match, for a rule with `filters`.
    pub(crate) fn with_filters(mut self, filters: Option<Arc<RouteFilters>>) -> Self {
        self.filters = filters;
        self
    }

    #[inline]
    pub(crate) fn matches(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        self.hint.is_none_or(|h| h.may_match(uri.path()))
            && (self.hosts.is_empty()
                || host_of(uri, headers).is_some_and(|h| self.hosts.iter().any(|m| m.matches(h))))
            && self.matcher.matches_head(method, uri, headers)
    }

    /// Whether the request matches, and if so how specifically the
    /// route's hostnames matched `host` (the request's, from
    /// [`host_of`]).
    pub(crate) fn ranked_match(
        &self,
        host: Option<&str>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<HostRank> {
        let rank = if self.hosts.is_empty() {
            HostRank::Any
        } else {
            let host = host?;
            self.hosts.iter().filter_map(|m| m.rank(host)).max()?
        };
        (self.hint.is_none_or(|h| h.may_match(uri.path()))
            && self.matcher.matches_head(method, uri, headers))
        .then_some(rank)
    }

    /// The Gateway API's precedence among a Server's matches, most
    /// specific first, as a total order (a sort may panic on a comparison
    /// that is not one).
    ///
    /// `GRPCRoute` matches rank by the `GRPCRouteRule` order ([`GrpcRank`]:
    /// a service named, then a method named, then more header matches),
    /// not by the `HTTPRoute` match each was read as, which would put a
    /// method alone (an expression over the path) before a service alone
    /// (a path prefix). `HTTPRoute` matches rank by mesh-core's
    /// [`MatchPrecedence`](mesh_core::route::MatchPrecedence) (with
    /// Linkerd's order of path kinds: an exact path before a regular
    /// expression before a prefix; a longer path first; a method before
    /// none; more header matches, then more query matches, first). The
    /// Gateway API never ranks the two kinds together, and a Server
    /// serves one kind only (its `GRPCRoute`s when its protocol is gRPC,
    /// else its `HTTPRoute`s, as Linkerd does); the order still puts a
    /// `GRPCRoute` match first, so that it is total. Then the route's rank
    /// for ties (the oldest by `creationTimestamp`, then the first by
    /// `{namespace}/{name}`). Sort with a stable sort, so that a route's
    /// matches keep the order of its rules.
    pub(crate) fn precedence(&self, other: &Self) -> Ordering {
        let kind = match (self.grpc, other.grpc) {
            (Some(a), Some(b)) => b.cmp(&a),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => other.matcher.precedence().cmp(&self.matcher.precedence()),
        };
        kind.then(self.order.cmp(&other.order))
    }
}

/// How specifically a route's hostnames matched a request; greater is
/// more specific. The Gateway API ranks routes by it before their matches:
/// a matching exact hostname, the longer the better, then a matching
/// wildcard, the longer the better, then a route without hostnames, which
/// matches any host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostRank {
    Any,
    Suffix(usize),
    Exact(usize),
}

/// A route hostname: exact, or `*.suffix` for any name under the suffix.
#[derive(Debug)]
pub(crate) enum HostMatch {
    Exact(Box<str>),
    /// `.suffix`, with the dot.
    Suffix(Box<str>),
}

impl HostMatch {
    pub(crate) fn new(hostname: &str) -> Self {
        match hostname.strip_prefix('*') {
            Some(suffix) => Self::Suffix(suffix.to_ascii_lowercase().into()),
            None => Self::Exact(hostname.to_ascii_lowercase().into()),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => host.eq_ignore_ascii_case(h),
            Self::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
        }
    }

    fn rank(&self, host: &str) -> Option<HostRank> {
        self.matches(host).then_some(match self {
            Self::Exact(h) => HostRank::Exact(h.len()),
            Self::Suffix(s) => HostRank::Suffix(s.len()),
        })
    }
}

/// The request's host, without a port: from the URI (HTTP/2's
/// `:authority`) or the `Host` header.
pub(crate) fn host_of<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let host = match uri.host() {
        Some(h) => h,
        None => return header_host(headers),
    };
    Some(host.trim_end_matches('.'))
}

/// The host of the (first) `Host` header, without a port or a trailing
/// dot.
fn header_host(headers: &HeaderMap) -> Option<&str> {
    host_in(headers.get(HOST)?)
}

/// The host a `Host` header value names, without a port or a trailing
/// dot; `None` when it is not text.
pub(crate) fn host_in(value: &HeaderValue) -> Option<&str> {
    let raw = value.to_str().ok()?;
    // `[::1]:80` or `name:80`.
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h);
    }
    Some(
        raw.rsplit_once(':')
            .map_or(raw, |(h, _)| h)
            .trim_end_matches('.'),
    )
}

/// Whether the request names more than one host: one in its URI and
/// another in a `Host` header, or two in two `Host` headers. Routes match
/// the URI's, or else the first header's, as HTTP says a server must;
/// but an application may route by a header, and frameworks differ on
/// which of several they read.
pub(crate) fn hosts_differ(uri: &Uri, headers: &HeaderMap) -> bool {
    let in_uri = uri.host();
    // Nearly every request in origin form has no header twice, which two
    // lengths tell at once, before any lookup.
    if in_uri.is_none() && headers.len() == headers.keys_len() {
        return false;
    }
    let mut in_headers = headers.get_all(HOST).iter();
    let first = match in_uri {
        Some(in_uri) => Some(
            in_uri
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches('.'),
        ),
        None => match in_headers.next() {
            Some(value) => host_in(value),
            None => return false,
        },
    };
    in_headers.any(|value| match (first, host_in(value)) {
        (Some(a), Some(b)) => !a.eq_ignore_ascii_case(b),
        _ => true,
    })
}

/// `uri` without its scheme and authority, so that the `Host` header
/// names its host ([`host_of`]).
pub(crate) fn without_authority(uri: &Uri) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = uri.path_and_query().cloned();
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Paths spelling an exact or prefix match's literal with escapes:
    /// mesh-core matches them as the canonical spelling, whatever their
    /// length or last byte, so the hint must let them through.
    #[test]
    fn the_path_hint_lets_escaped_spellings_through_to_the_match() {
        let cases = [
            (PathMatch::exact("/admin").unwrap(), "/%61dmin"),
            (PathMatch::exact("/admin").unwrap(), "/admi%6E"),
            (PathMatch::exact("/%E2%82%AC").unwrap(), "/%e2%82%ac"),
            (PathMatch::prefix("/old").unwrap(), "/%6Fld/x"),
            (PathMatch::prefix("/old").unwrap(), "/ol%64"),
        ];
        for (pattern, path) in cases {
            assert!(pattern.matches(path), "{pattern:?} on {path}");
            let entry = MatchEntry::new(
                0,
                Vec::new().into(),
                RouteMatch::new().with_path(pattern.clone()),
                0,
            );
            let uri: Uri = path.parse().unwrap();
            assert!(
                entry.matches(&Method::GET, &uri, &HeaderMap::new()),
                "{pattern:?} on {path}"
            );
            assert!(
                entry
                    .ranked_match(None, &Method::GET, &uri, &HeaderMap::new())
                    .is_some(),
                "{pattern:?} on {path}"
            );
        }
    }
}
