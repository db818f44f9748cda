use super::{FullRegex, InvalidRouteMatch, InvalidRouteMatchKind, normalize::CanonicalBytes};

/// A condition on the request path, with the Gateway API's three match
/// types.
///
/// The path is compared as it appears in the request, without
/// normalization: `/a%2Fb` does not match `/a/b`, nor `/a/../b` `/b`. One
/// difference of spelling is no difference, as RFC 3986 says (sections
/// 6.2.2.1 and 6.2.2.2): an escape of a character that needs none is
/// that character (`%7E` is `~`), and hex digits match in either case
/// (`%c3` is `%C3`). [`NormalizePathLayer`](super::NormalizePathLayer)
/// sends a request on with the first of each pair, so a rule written with
/// the second must match it; and a request matched as sent may use
/// either. The builders keep the path in the first spelling; comparing a
/// path without a `%` costs nothing more.
///
/// Build it with [`exact`](Self::exact), [`prefix`](Self::prefix) or
/// [`regex`](Self::regex), which check their input. An exact or prefix
/// path is held to the Gateway API's validation of `HTTPPathMatch`, since
/// a path it refuses either could never match a request that
/// [`NormalizePathLayer`](super::NormalizePathLayer) let through (`//`,
/// `/./`, `/../`) or means one thing to the mesh and another to the
/// application (`%2F`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The path equals this string. `Exact`.
    ///
    /// [`exact`](PathMatch::exact) writes its escapes as
    /// [`normalize_path`](super::normalize_path) does; a path given here
    /// in another spelling only matches requests in the same one.
    Exact(Box<str>),
    /// The path starts with these path elements. `PathPrefix`.
    ///
    /// The comparison is element by element, split on `/`: `/foo` matches
    /// `/foo`, `/foo/` and `/foo/bar`, but not `/foobar`. A trailing `/` on
    /// the prefix is ignored, so `/foo/` matches `/foo` too, and the prefix
    /// `/` matches every path. Escapes as for `Exact`. As the Gateway API's
    /// validation, [`prefix`](PathMatch::prefix) refuses a prefix with
    /// `//` anywhere, at its end too (`/foo//`).
    Prefix(Box<str>),
    /// The whole path matches this expression. `RegularExpression`.
    Regex(FullRegex),
}

impl PathMatch {
    /// A path that must equal `path`.
    ///
    /// # Errors
    ///
    /// When `path` does not start with `/`; holds a `?` or `#`, an empty,
    /// `.` or `..` segment, an escaped `/`, a character outside RFC
    /// 3986's `pchar`s or a broken escape. The error's
    /// [`kind`](InvalidRouteMatch::kind) says which.
    pub fn exact(path: &str) -> Result<Self, InvalidRouteMatch> {
        check_path(path)?;
        Ok(Self::Exact(canonical(path)?.into()))
    }

    /// A path that must start with the elements of `prefix`.
    ///
    /// # Errors
    ///
    /// As for [`exact`](Self::exact), which allows one trailing `/` (an
    /// empty last segment) and refuses `//` anywhere: the Gateway API's
    /// validation refuses `/foo//` too, though matching would ignore its
    /// trailing `/`s.
    pub fn prefix(prefix: &str) -> Result<Self, InvalidRouteMatch> {
        check_path(prefix)?;
        Ok(Self::Prefix(canonical(prefix)?.into()))
    }

    /// A path that must match `pattern` from its first to its last byte.
    ///
    /// # Errors
    ///
    /// When `pattern` does not compile.
    pub fn regex(pattern: &str) -> Result<Self, InvalidRouteMatch> {
        FullRegex::new(pattern).map(Self::Regex)
    }

    /// Whether `path` meets the condition.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => {
                path == &**exact
                    || (path.contains('%') && CanonicalBytes::new(path).eq(exact.bytes()))
            }
            Self::Prefix(prefix) => prefix_matches(prefix, path),
            Self::Regex(regex) => regex.is_match(path),
        }
    }
}

/// Gateway API `PathPrefix`: element-wise, with the prefix's trailing `/`
/// ignored. The prefix `/` matches every path, the asterisk form of
/// `OPTIONS *` included, as Linkerd's prefix match does: it is what the
/// Gateway API defaults a route without `rules` to, and such a route takes
/// every request.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || strip_prefix(path, prefix).is_some()
}

/// What is left of `path` after the path elements of `prefix` (which has
/// no trailing `/`, and its escapes as `normalize_path` writes them):
/// empty, or starting with `/`. Escapes in `path` are compared as that
/// spelling (`/%6Fld/x` is under `/old`); the rest is returned as
/// written.
pub(super) fn strip_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let rest = match path.strip_prefix(prefix) {
        Some(rest) => rest,
        None if path.contains('%') => {
            // An escape in the path may spell some of the prefix another
            // way.
            let mut canonical = CanonicalBytes::new(path);
            if !prefix.bytes().all(|b| canonical.next() == Some(b)) {
                return None;
            }
            canonical.rest()?
        }
        None => return None,
    };
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// A checked path with its escapes written as `normalize_path` writes them.
fn canonical(path: &str) -> Result<String, InvalidRouteMatch> {
    super::normalize::decode_unreserved(path)
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| InvalidRouteMatch::path(InvalidRouteMatchKind::PathInvalidChar, path))
}

/// Checks an exact or prefix `path` as the Gateway API's validation of
/// `HTTPPathMatch` does: among other things, its segments must be
/// neither empty (but the last) nor dot segments.
fn check_path(path: &str) -> Result<(), InvalidRouteMatch> {
    use InvalidRouteMatchKind as Kind;
    if !path.starts_with('/') {
        return Err(InvalidRouteMatch::path(Kind::PathNotAbsolute, path));
    }
    if path.contains(['?', '#']) {
        return Err(InvalidRouteMatch::path(Kind::PathHasQuery, path));
    }
    if first_invalid(path).is_some() {
        return Err(InvalidRouteMatch::path(Kind::PathInvalidChar, path));
    }
    if encoded_slash(path).is_some() {
        return Err(InvalidRouteMatch::path(Kind::PathEncodedSlash, path));
    }
    // Escaped dots are dots: `%2e%2e` is normalized to `..`, then removed.
    let decoded = super::normalize::decode_unreserved(path)
        .map_err(|_| InvalidRouteMatch::path(Kind::PathInvalidChar, path))?;
    let mut rest = decoded.split('/').skip(1).peekable();
    while let Some(segment) = rest.next() {
        let last = rest.peek().is_none();
        if matches!(segment, "." | "..") || (segment.is_empty() && !last) {
            return Err(InvalidRouteMatch::path(Kind::PathNotNormal, path));
        }
    }
    Ok(())
}

/// What in a path a path match may not hold: a character outside RFC
/// 3986's `pchar`s and `/`, or a `%` not followed by two hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Invalid {
    Char(char),
    Escape,
}

/// The first thing in `path` a path match may not hold; `None` when it
/// holds only what the Gateway API allows:
/// `^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`.
pub(super) fn first_invalid(path: &str) -> Option<Invalid> {
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' => {}
            '-' | '/' | '.' | '_' | '~' | '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ','
            | ';' | '=' | ':' | '@' => {}
            '%' => {
                let mut hex = chars.clone().take(2);
                if !(hex.next().is_some_and(|c| c.is_ascii_hexdigit())
                    && hex.next().is_some_and(|c| c.is_ascii_hexdigit()))
                {
                    return Some(Invalid::Escape);
                }
                chars.nth(1);
            }
            c => return Some(Invalid::Char(c)),
        }
    }
    None
}

/// The first escaped `/` in `path` (`%2F` or `%2f`), as written.
pub(super) fn encoded_slash(path: &str) -> Option<&str> {
    path.match_indices('%')
        .filter_map(|(i, _)| path.get(i..i + 3))
        .find(|escape| escape.eq_ignore_ascii_case("%2f"))
}
