//! Request paths in one spelling before anything matches them.
//!
//! # Why
//!
//! Route rules, and the authorization attached to them, compare the path a
//! request names with the paths the rules name. Applications read paths
//! leniently: `/%61dmin`, `/./admin`, `/public/../admin` and `//admin` all
//! reach `/admin` in many servers and frameworks. A rule that treats
//! `/admin` apart from the rest (a stricter `AuthorizationPolicy` on an
//! `Exact /admin` route beside an open `PathPrefix /`) is then walked
//! around by any of those spellings: the class of Envoy's CVE-2019-9901,
//! which Istio answers by normalizing paths by default. Linkerd's proxy
//! matches the raw path.
//!
//! [`NormalizePathLayer`] rewrites each request's path to its normal form
//! before the layers inside it see the request, and sends that form on, so
//! that the application serves exactly the path that was matched:
//!
//! - an escape of a character that needs none (`%61`, `%7E`) is decoded,
//!   and the others get uppercase hex digits (`%2f` becomes `%2F`): RFC
//!   3986, sections 6.2.2.1 and 6.2.2.2. An escaped `/` stays escaped;
//! - `.` and `..` segments are removed (RFC 3986, section 5.2.4);
//! - runs of `/` become one.
//!
//! The query is left as it is. A path with a `%` not followed by two hex
//! digits, or with a raw `\` (which `http` lets through, and which WHATWG
//! URL parsers, those of browsers and Node's `URL`, read as `/`: so
//! `/public/..\admin` is their `/admin`), is answered with
//! `400 Bad Request` (`mesh-error: invalid path`), since servers disagree
//! on what it means. An escaped one, `%5C`, is a character like any
//! other. A path already in normal form, nearly every one, is only
//! scanned.

use std::{
    borrow::Cow,
    fmt,
    future::{Ready, ready},
    task::{Context, Poll},
};

use futures_util::future::Either;
use http::{Request, Response, Uri, uri::PathAndQuery};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ProxyErrorKind, is_grpc};

/// A path that cannot be put in normal form, because servers read it
/// differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidPath {
    /// A `%` not followed by two hex digits.
    BrokenEscape,
    /// A `\`: a separator to WHATWG URL parsers, a character to others.
    Backslash,
}

impl fmt::Display for InvalidPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BrokenEscape => "a `%` in the path is not followed by two hex digits",
            Self::Backslash => "the path holds a `\\`, which some servers read as `/`",
        })
    }
}

impl std::error::Error for InvalidPath {}

/// `path` in normal form (see the [module docs](self)); borrowed when it
/// already is.
///
/// # Errors
///
/// [`InvalidPath`] for a `%` not followed by two hex digits, or a `\`.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, InvalidPath> {
    if is_normal(path.as_bytes())? {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut out = String::with_capacity(decoded.len());
    for segment in decoded.split('/') {
        match segment {
            // Empty segments (runs of `/`) and `.` add nothing.
            "" | "." => {}
            ".." => {
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
            }
            segment => {
                out.push('/');
                out.push_str(segment);
            }
        }
    }
    // A path that named a directory keeps its trailing slash; one that
    // ended in `.` or `..` names the directory it resolved to.
    let directory = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    if out.is_empty() || (directory && !out.ends_with('/')) {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether `path` is already in normal form, after checking its escapes.
fn is_normal(path: &[u8]) -> Result<bool, InvalidPath> {
    let mut normal = true;
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        match b {
            b'%' => {
                let (hi, lo) = match (path.get(i + 1), path.get(i + 2)) {
                    (Some(&hi), Some(&lo)) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                        (hi, lo)
                    }
                    _ => return Err(InvalidPath::BrokenEscape),
                };
                if hi.is_ascii_lowercase() || lo.is_ascii_lowercase() || is_unreserved(hex(hi, lo))
                {
                    normal = false;
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(InvalidPath::Backslash),
            b'/' => {
                let rest = &path[i + 1..];
                if rest.starts_with(b"/")
                    || rest == b"."
                    || rest == b".."
                    || rest.starts_with(b"./")
                    || rest.starts_with(b"../")
                {
                    normal = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    // A path that does not start with `/` (`*`, or an authority-form
    // target) is not a hierarchical path to normalize.
    Ok(normal || !path.starts_with(b"/"))
}

/// `path` with its unreserved escapes decoded and the others in uppercase.
pub(super) fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, InvalidPath> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            // Escapes are ASCII, so `i` is on a character boundary here.
            let end = bytes[i..]
                .iter()
                .position(|&c| c == b'%')
                .map_or(bytes.len(), |n| i + n);
            out.push_str(path.get(i..end).ok_or(InvalidPath::BrokenEscape)?);
            i = end;
            continue;
        }
        let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
            return Err(InvalidPath::BrokenEscape);
        };
        if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
            return Err(InvalidPath::BrokenEscape);
        }
        let byte = hex(hi, lo);
        if is_unreserved(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(hi.to_ascii_uppercase()));
            out.push(char::from(lo.to_ascii_uppercase()));
        }
        i += 3;
    }
    Ok(Cow::Owned(out))
}

/// The bytes of a path with its escapes written as [`normalize_path`]
/// writes them: an escape of an unreserved character decoded, the others
/// in uppercase. Its dot segments and runs of `/` stay, and a `%` not
/// followed by two hex digits is a byte like any other. It compares a
/// path as sent with one in normal form, without allocating.
pub(super) struct CanonicalBytes<'a> {
    rest: &'a [u8],
    /// The hex digits of an escape whose `%` was given last.
    digits: [u8; 2],
    /// How many of `digits` were given: 2 when none is waiting.
    given: usize,
}

impl<'a> CanonicalBytes<'a> {
    pub(super) fn new(path: &'a str) -> Self {
        Self {
            rest: path.as_bytes(),
            digits: [0; 2],
            given: 2,
        }
    }

    /// The part of the path not given yet, as written; `None` in the
    /// middle of an escape or of a character.
    pub(super) fn rest(&self) -> Option<&'a str> {
        if self.given < self.digits.len() {
            return None;
        }
        std::str::from_utf8(self.rest).ok()
    }
}

impl Iterator for CanonicalBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if let Some(&digit) = self.digits.get(self.given) {
            self.given += 1;
            return Some(digit);
        }
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        if b == b'%'
            && let [hi, lo, tail @ ..] = self.rest
            && hi.is_ascii_hexdigit()
            && lo.is_ascii_hexdigit()
        {
            let byte = hex(*hi, *lo);
            self.rest = tail;
            if is_unreserved(byte) {
                return Some(byte);
            }
            self.digits = [hi.to_ascii_uppercase(), lo.to_ascii_uppercase()];
            self.given = 0;
        }
        Some(b)
    }
}

/// RFC 3986's unreserved characters, which never need escaping.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(hi: u8, lo: u8) -> u8 {
    let digit = |d: u8| match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    };
    (digit(hi) << 4) | digit(lo)
}

/// Puts every request's path in normal form. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct NormalizePathLayer;

impl<S> Layer<S> for NormalizePathLayer {
    type Service = NormalizePath<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NormalizePath { inner }
    }
}

/// The service [`NormalizePathLayer`] makes.
#[derive(Clone, Debug)]
pub struct NormalizePath<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for NormalizePath<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let normal = match normalize_path(req.uri().path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(path)) => Some(path),
            Err(_) => return Either::Right(ready(Ok(invalid_path(&req)))),
        };
        if let Some(path) = normal {
            match with_path(req.uri(), path) {
                Some(uri) => *req.uri_mut() = uri,
                None => return Either::Right(ready(Ok(invalid_path(&req)))),
            }
        }
        Either::Left(self.inner.call(req))
    }
}

/// `uri` with `path` in place of its path, its query kept.
fn with_path(uri: &Uri, mut path: String) -> Option<Uri> {
    if let Some(query) = uri.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path).ok()?);
    Uri::from_parts(parts).ok()
}

/// The answer to a path that does not decode: `400` (a gRPC caller's
/// trailers-only `INTERNAL`), `mesh-error: invalid path`, and the
/// [`ProxyErrorKind::InvalidRequest`] that metrics label it with.
fn invalid_path<B, RB: Default>(req: &Request<B>) -> Response<RB> {
    ProxyErrorKind::InvalidRequest.response_with_reason(is_grpc(req.headers()), "invalid path")
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::error::MESH_ERROR;

    fn normal(path: &str) -> String {
        normalize_path(path).unwrap().into_owned()
    }

    #[test]
    fn a_normal_path_is_only_scanned() {
        for path in [
            "/",
            "/books/42",
            "/a/b/",
            "/%2F",
            "/caf%C3%A9",
            "*",
            "/a.b/..c/.d",
        ] {
            assert!(
                matches!(normalize_path(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn dot_segments_are_removed_as_rfc_3986_does() {
        // RFC 3986, section 5.2.4's examples, and the ends of a path.
        assert_eq!(normal("/a/b/c/./../../g"), "/a/g");
        assert_eq!(normal("/public/../admin"), "/admin");
        assert_eq!(normal("/./admin"), "/admin");
        assert_eq!(normal("/../../admin"), "/admin");
        assert_eq!(normal("/admin/."), "/admin/");
        assert_eq!(normal("/admin/x/.."), "/admin/");
        assert_eq!(normal("/.."), "/");
    }

    #[test]
    fn slashes_are_merged_and_escapes_made_canonical() {
        assert_eq!(normal("//admin"), "/admin");
        assert_eq!(normal("/a//b///"), "/a/b/");
        assert_eq!(normal("/%61dmin"), "/admin");
        assert_eq!(normal("/%7euser/%2e%2e/admin"), "/admin");
        // Reserved characters stay escaped, in uppercase.
        assert_eq!(normal("/a%2fb"), "/a%2Fb");
        assert_eq!(normal("/a%2F..%2Fb"), "/a%2F..%2Fb");
    }

    #[test]
    fn canonical_bytes_spell_escapes_as_the_normal_form_does() {
        let canonical = |path| String::from_utf8(CanonicalBytes::new(path).collect()).unwrap();
        for path in ["/%7euser/caf%c3%a9", "/a%2fb", "/%41%62%2E", "/a", "/"] {
            assert_eq!(canonical(path), normal(path), "{path}");
        }
        // Dot segments and runs of `/` are not its business; a broken
        // escape is bytes like any other.
        assert_eq!(canonical("//a/%2e%2e/b"), "//a/../b");
        assert_eq!(canonical("/a%zz%4%"), "/a%zz%4%");
    }

    #[test]
    fn a_broken_escape_is_refused() {
        for path in ["/%", "/%4", "/%zz", "/a%g1"] {
            assert_eq!(
                normalize_path(path),
                Err(InvalidPath::BrokenEscape),
                "{path}"
            );
        }
    }

    #[test]
    fn a_backslash_is_refused() {
        // `http` takes a raw `\` in a path. WHATWG URL parsers (browsers,
        // Node's `URL`, which many applications route with) read it as
        // `/`, so `/public/..\admin` is their `/admin`, while a rule
        // reads one segment, `..\admin`, under `/public`.
        for path in ["/public/..\\admin", "/a\\b", "/a/b\\", "/%61\\x"] {
            assert_eq!(normalize_path(path), Err(InvalidPath::Backslash), "{path}");
        }
        // Escaped, it is a character like any other.
        assert_eq!(normal("/a%5cb"), "/a%5Cb");
    }

    #[tokio::test]
    async fn the_layer_refuses_a_path_with_a_backslash() {
        let svc = NormalizePathLayer.layer(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("served")))
        }));
        let req = Request::get("/public/..\\admin").body(()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[MESH_ERROR], "invalid path");
        assert_eq!(res.body(), "");
    }

    #[tokio::test]
    async fn the_layer_sends_the_normal_path_on_with_its_query() {
        let seen = service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(req.uri().to_string()))
        });
        let svc = NormalizePathLayer.layer(seen);
        let req = Request::get("http://emoji:8080//api/./%6cist?x=%2e")
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.body(), "http://emoji:8080/api/list?x=%2e");
        let req = Request::get("/api/list").body(()).unwrap();
        assert_eq!(svc.clone().oneshot(req).await.unwrap().body(), "/api/list");

        let req = Request::get("/a%zz").body(()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[MESH_ERROR], "invalid path");
        assert_eq!(
            res.extensions().get::<ProxyErrorKind>(),
            Some(&ProxyErrorKind::InvalidRequest),
            "metrics label it as the mesh's answer"
        );
        assert_eq!(res.body(), "", "the inner service never saw it");
    }
}
