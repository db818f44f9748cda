//! Assembling a redirect's `Location` from a request.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderValue, Uri, header};

use super::{PathRewrite, Redirect, Scheme};

impl Redirect {
    /// The `Location` for a request with `uri` and `headers`: see the
    /// [module docs](super) for how each part is chosen.
    ///
    /// Everything that does not depend on the request was settled by
    /// [`Redirect::new`]; this picks the request's parts and writes them
    /// into one string, the only allocation.
    pub fn location(&self, uri: &Uri, headers: &HeaderMap) -> HeaderValue {
        let (path, query) = (uri.path(), uri.query());
        let mut location = String::with_capacity(self.capacity(path, query));
        match &self.origin {
            Some(origin) => location.push_str(origin),
            None => self.write_origin(&mut location, uri, headers),
        }
        self.write_path(&mut location, path);
        if let Some(query) = query {
            location.push('?');
            location.push_str(query);
        }
        // Every part is visible ASCII: a URI's path and query, a host read
        // as a string, a checked hostname and path. So this cannot fail;
        // were it to, the root is still a place to send the client.
        HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/"))
    }

    /// Room for the longest `Location` this request can get.
    fn capacity(&self, path: &str, query: Option<&str>) -> usize {
        let origin = match &self.origin {
            Some(origin) => origin.len(),
            // `https://`, a host of up to 253 bytes, `:65535`.
            None => 8 + self.hostname.as_ref().map_or(64, |h| h.len()) + 6,
        };
        let path = match &self.path {
            Some(PathRewrite::Full(full)) => full.len(),
            Some(PathRewrite::Prefix { replacement, .. }) => replacement.len() + path.len(),
            None => path.len(),
        };
        origin + path + query.map_or(0, |q| q.len() + 1)
    }

    fn write_origin(&self, location: &mut String, uri: &Uri, headers: &HeaderMap) {
        let authority = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
        let (request_host, request_port) = authority.map_or((None, None), split_authority);
        let Some(host) = self.hostname.as_deref().or(request_host) else {
            // Nowhere to point but the request's own origin: a relative
            // reference.
            return;
        };
        let request_scheme = if uri.scheme_str() == Some("https") {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let scheme = self.scheme.unwrap_or(request_scheme);
        let port = match (self.port, self.scheme) {
            (Some(port), _) => Some(port),
            // A new scheme brings its own well-known port.
            (None, Some(_)) => None,
            (None, None) => request_port,
        }
        .filter(|&port| port != scheme.default_port());
        location.push_str(scheme.as_str());
        location.push_str("://");
        location.push_str(host);
        if let Some(port) = port {
            // Writing into a String cannot fail.
            let _ = write!(location, ":{port}");
        }
    }

    fn write_path(&self, location: &mut String, path: &str) {
        match &self.path {
            None => location.push_str(path),
            Some(PathRewrite::Full(full)) => location.push_str(full),
            Some(PathRewrite::Prefix {
                matched,
                replacement,
            }) => match strip_prefix(path, matched) {
                Some(rest) if replacement.is_empty() && rest.is_empty() => location.push('/'),
                Some(rest) => {
                    location.push_str(replacement);
                    location.push_str(rest);
                }
                // The request did not come by the prefix (only a caller
                // that skipped the rule's match can send one): the path
                // stays.
                None => location.push_str(path),
            },
        }
    }
}

/// What is left of `path` after the path elements of `prefix` (which has
/// no trailing `/`): empty, or starting with `/`.
fn strip_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    path.strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The host (IPv6 brackets kept) and port of an authority, without
/// userinfo. A port that is not a number is dropped.
fn split_authority(authority: &str) -> (Option<&str>, Option<u16>) {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host = (!host.is_empty()).then_some(host);
    (host, port.and_then(|p| p.parse().ok()))
}
