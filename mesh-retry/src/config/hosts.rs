//! A route's `hostnames`, matched against each request's host.
//!
//! Why: an `HTTPRoute` (or `GRPCRoute`) that names hostnames applies only
//! to requests for them. Two routes attached to one service may split its
//! traffic by the name clients call it by, and a route written for
//! `books.shop.example` must not catch requests for another name.
//! Linkerd's proxy sends the hostnames of each outbound route and skips a
//! route whose hostnames do not match the request's host; among the
//! routes that do match, one whose hostname matches outranks one that
//! names none, whatever their rules' matches, as the Gateway API asks of
//! routes whose hostnames overlap (the `hostnames` field of
//! `HTTPRouteSpec`: the most characters in a matching exact hostname
//! first, then the most in a matching hostname of either kind).
//!
//! How: a hostname is exact (`books.shop.example`) or a wildcard
//! (`*.shop.example`, which matches any name with at least one more label
//! in front, `a.shop.example` and `a.b.shop.example`, but not
//! `shop.example`). Both compare without regard to case, as DNS names do.
//! The request's host is its URI's (HTTP/2's `:authority`, or an absolute
//! HTTP/1 target), else its `Host` header's, without the port and
//! without a final dot. A request that names no host matches no route
//! with hostnames.

use std::sync::Arc;

use http::{HeaderMap, Request, Uri, header::HOST};

/// How specifically a route's hostnames matched a request's host; greater
/// is more specific. A route without hostnames matches any host, least
/// specifically; then a matching wildcard, the longer the better; then a
/// matching exact hostname, the longer the better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostRank {
    /// The route names no hostnames.
    Any,
    /// A wildcard matched; the length of its suffix, with the dot
    /// (`.shop.example`).
    Suffix(usize),
    /// An exact hostname matched; its length.
    Exact(usize),
}

/// The `hostnames` of a route, ready to match requests: empty, the
/// default, for a route that names none (or a ServiceProfile route), which
/// takes requests for any host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteHosts(Arc<[HostPattern]>);

/// One hostname, lowercased.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(Box<str>),
    /// `.suffix` of `*.suffix`, with its dot.
    Suffix(Box<str>),
}

impl RouteHosts {
    /// The hostnames as a route writes them. The reader of routes has
    /// already refused any that is not a Gateway API hostname.
    pub fn new<S: AsRef<str>>(hostnames: &[S]) -> Self {
        Self(
            hostnames
                .iter()
                .map(|h| {
                    let h = h.as_ref().trim_end_matches('.').to_ascii_lowercase();
                    match h.strip_prefix('*') {
                        Some(suffix) => HostPattern::Suffix(suffix.into()),
                        None => HostPattern::Exact(h.into()),
                    }
                })
                .collect(),
        )
    }

    /// Whether the route names no hostnames, and so takes any host.
    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    /// How specifically the hostnames match `req`'s host
    /// ([`request_host`]), or `None` when they do not.
    pub fn rank<B>(&self, req: &Request<B>) -> Option<HostRank> {
        if self.is_any() {
            return Some(HostRank::Any);
        }
        self.rank_host(request_host(req.uri(), req.headers()))
    }

    /// How specifically the hostnames match `host` (a request's, as
    /// [`request_host`] gives it), or `None` when they do not: a request
    /// without a host matches only a route without hostnames.
    pub fn rank_host(&self, host: Option<&str>) -> Option<HostRank> {
        if self.is_any() {
            return Some(HostRank::Any);
        }
        let host = host?.trim_end_matches('.');
        self.0
            .iter()
            .filter_map(|pattern| match pattern {
                HostPattern::Exact(name) => host
                    .eq_ignore_ascii_case(name)
                    .then_some(HostRank::Exact(name.len())),
                HostPattern::Suffix(suffix) => {
                    let head = host.len().checked_sub(suffix.len()).filter(|&n| n > 0)?;
                    host.get(head..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
                        .then_some(HostRank::Suffix(suffix.len()))
                }
            })
            .max()
    }
}

/// The host a request names, without its port: its URI's, else its
/// (first) `Host` header's; `None` when it names none.
pub fn request_host<'r>(uri: &'r Uri, headers: &'r HeaderMap) -> Option<&'r str> {
    if let Some(host) = uri.host() {
        return Some(host);
    }
    let value = headers.get(HOST)?.to_str().ok()?;
    let host = match value.strip_prefix('[') {
        // An IPv6 literal, which no hostname matches.
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => value.rsplit_once(':').map_or(value, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_order_as_the_gateway_api_asks() {
        let hosts = RouteHosts::new(&["*.example.com", "*.books.example.com", "books.example.com"]);
        assert_eq!(
            hosts.rank_host(Some("books.example.com")),
            Some(HostRank::Exact(17))
        );
        assert_eq!(
            hosts.rank_host(Some("v1.books.example.com")),
            Some(HostRank::Suffix(18))
        );
        assert_eq!(
            hosts.rank_host(Some("authors.example.com")),
            Some(HostRank::Suffix(12))
        );
        assert_eq!(hosts.rank_host(Some("example.com")), None);
        assert_eq!(hosts.rank_host(None), None);
        assert_eq!(RouteHosts::default().rank_host(None), Some(HostRank::Any));
        assert!(HostRank::Exact(1) > HostRank::Suffix(100));
        assert!(HostRank::Suffix(1) > HostRank::Any);
    }

    #[test]
    fn the_host_header_names_the_host_without_its_port() {
        let headers = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(HOST, http::HeaderValue::from_static(value));
            map
        };
        let origin: Uri = "/list".parse().unwrap_or_default();
        assert_eq!(request_host(&origin, &headers("books:8080")), Some("books"));
        assert_eq!(request_host(&origin, &headers("books")), Some("books"));
        assert_eq!(request_host(&origin, &headers("[::1]:80")), Some("::1"));
        assert_eq!(request_host(&origin, &headers("")), None);
        assert_eq!(request_host(&origin, &HeaderMap::new()), None);
        let absolute: Uri = "http://books.shop:80/".parse().unwrap_or_default();
        assert_eq!(
            request_host(&absolute, &headers("other")),
            Some("books.shop")
        );
    }
}
