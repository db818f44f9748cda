//! Assembling a redirect's `Location` from a request.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderValue, Uri, header};

use super::{PathRewrite, Redirect, Scheme};
use crate::route::path::strip_prefix;

/// What comes before the path in a `Location`.
enum Origin<'a> {
    /// Settled when the redirect was built.
    Fixed(&'a str),
    /// `scheme://host[:port]`.
    Parts {
        scheme: Scheme,
        host: &'a str,
        port: Option<u16>,
    },
    /// Nothing: a relative reference.
    None,
}

impl Origin<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Fixed(origin) => origin.len(),
            Self::Parts { scheme, host, port } => {
                scheme.as_str().len() + "://".len() + host.len() + port.map_or(0, |p| 1 + digits(p))
            }
            Self::None => 0,
        }
    }

    fn write(&self, location: &mut String) {
        match self {
            Self::Fixed(origin) => location.push_str(origin),
            Self::Parts { scheme, host, port } => {
                location.push_str(scheme.as_str());
                location.push_str("://");
                location.push_str(host);
                if let Some(port) = port {
                    // Writing into a String cannot fail.
                    let _ = write!(location, ":{port}");
                }
            }
            Self::None => {}
        }
    }
}

impl Redirect {
    /// The `Location` for a request with `uri` and `headers`: see the
    /// [module docs](super) for how each part is chosen. For a request
    /// without a host and a filter that changes the scheme or the port,
    /// this is the relative reference that cannot say so;
    /// [`response`](Self::response) answers such a request with 400.
    ///
    /// Everything that does not depend on the request was settled by
    /// [`Redirect::new`]; this picks the request's parts and writes them
    /// into one string of exactly their length, which becomes the header
    /// value without a copy: one allocation.
    pub fn location(&self, uri: &Uri, headers: &HeaderMap) -> HeaderValue {
        let origin = match &self.origin {
            Some(origin) => Origin::Fixed(origin),
            None => self.origin_of(uri, headers),
        };
        // `OPTIONS *` and `CONNECT host:port` name no path: what they
        // address is the server as a whole, its root. Written as is, the
        // `*` would follow the host (`https://web*`) and name another one.
        let request_path = match uri.path() {
            path if path.starts_with('/') => path,
            _ => "/",
        };
        let (path, rest) = self.path_of(request_path);
        // Without an origin, a path that starts `//` would be read as a
        // network-path reference naming another host (`//evil.example/`),
        // an open redirect; browsers read `/\` the same way. Written after
        // `/.`, as WHATWG's URL serializer writes such a path, it resolves
        // to the same path on the client's own origin.
        let dot = matches!(origin, Origin::None) && names_a_host(path, rest);
        let query = uri.query();
        let len = origin.len()
            + usize::from(dot) * "/.".len()
            + path.len()
            + rest.len()
            + query.map_or(0, |q| q.len() + 1);
        let mut location = String::with_capacity(len);
        origin.write(&mut location);
        if dot {
            location.push_str("/.");
        }
        location.push_str(path);
        location.push_str(rest);
        if let Some(query) = query {
            location.push('?');
            location.push_str(query);
        }
        // Every part is visible ASCII: a URI's path and query, a host read
        // as a string, a checked hostname and path. So this cannot fail;
        // were it to, the root is still a place to send the client.
        HeaderValue::try_from(location).unwrap_or_else(|_| HeaderValue::from_static("/"))
    }

    /// Whether the `Location` for this request can say what the filter
    /// asks: not when the filter changes the scheme or the port but names
    /// no host, and the request names none either. A relative reference
    /// keeps the client's scheme and port, so it would send the client
    /// back where it was.
    pub(super) fn can_redirect(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        self.origin.is_some()
            || self.hostname.is_some()
            || (self.scheme.is_none() && self.port.is_none())
            || request_authority(uri, headers)
                .and_then(|a| split_authority(a).0)
                .is_some()
    }

    fn origin_of<'a>(&'a self, uri: &'a Uri, headers: &'a HeaderMap) -> Origin<'a> {
        let authority = request_authority(uri, headers);
        let (request_host, request_port) = authority.map_or((None, None), split_authority);
        let Some(host) = self.hostname.as_deref().or(request_host) else {
            // Nowhere to point but the request's own origin: a relative
            // reference.
            return Origin::None;
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
        Origin::Parts { scheme, host, port }
    }

    /// The new path, in two pieces written one after the other.
    fn path_of<'a>(&'a self, path: &'a str) -> (&'a str, &'a str) {
        match &self.path {
            None => (path, ""),
            Some(PathRewrite::Full(full)) => (full, ""),
            Some(PathRewrite::Prefix {
                matched,
                replacement,
            }) => match strip_prefix(path, matched) {
                Some("") if replacement.is_empty() => ("/", ""),
                Some(rest) => (replacement, rest),
                // The request did not come by the prefix (only a caller
                // that skipped the rule's match can send one): the path
                // stays.
                None => (path, ""),
            },
        }
    }
}

/// The authority the request was addressed to: its URI's, else its `Host`
/// header's when that is `host[:port]`.
fn request_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| is_host_and_port(h))
    })
}

/// Whether a path written in two pieces starts with `//` or `/\`.
fn names_a_host(path: &str, rest: &str) -> bool {
    let mut bytes = path.bytes().chain(rest.bytes());
    bytes.next() == Some(b'/') && matches!(bytes.next(), Some(b'/' | b'\\'))
}

/// How many decimal digits `n` takes.
fn digits(n: u16) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    }
}

/// Whether a `Host` header's value is `host[:port]` (RFC 9110, section
/// 7.2), which a `Location` can carry as its authority. The header is
/// read as the client sent it: a space, a `/`, a second `:` or a `@`
/// (userinfo, which `Host` never has) would make an authority that means
/// something else, or nothing. Checked byte by byte, since the
/// `Location` is a redirect's one allocation.
fn is_host_and_port(value: &str) -> bool {
    let port = match value.strip_prefix('[') {
        // An IP literal: an IPv6 address, kept simple.
        Some(rest) => match rest.split_once(']') {
            Some((ip, port))
                if !ip.is_empty()
                    && ip
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')) =>
            {
                port
            }
            _ => return false,
        },
        // A name or an IPv4 address: RFC 3986's `reg-name`, without
        // escapes.
        None => {
            let (name, port) = value.find(':').map_or((value, ""), |i| value.split_at(i));
            let name_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
            if name.is_empty() || !name.bytes().all(name_byte) {
                return false;
            }
            port
        }
    };
    match port.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    }
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
