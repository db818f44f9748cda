use super::{FullRegex, InvalidRouteMatch, InvalidRouteMatchKind};

/// A condition on the request path, with the Gateway API's three match
/// types.
///
/// The path is compared as it appears in the request, without
/// percent-decoding or normalization: `/a%2Fb` does not match `/a/b`.
///
/// Build it with [`exact`](Self::exact), [`prefix`](Self::prefix) or
/// [`regex`](Self::regex), which check their input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The path equals this string. `Exact`.
    Exact(Box<str>),
    /// The path starts with these path elements. `PathPrefix`.
    ///
    /// The comparison is element by element, split on `/`: `/foo` matches
    /// `/foo`, `/foo/` and `/foo/bar`, but not `/foobar`. A trailing `/` on
    /// the prefix is ignored, so `/foo/` matches `/foo` too, and the prefix
    /// `/` matches every path.
    Prefix(Box<str>),
    /// The whole path matches this expression. `RegularExpression`.
    Regex(FullRegex),
}

impl PathMatch {
    /// A path that must equal `path`.
    ///
    /// # Errors
    ///
    /// When `path` does not start with `/`, or holds a `?` or `#`.
    pub fn exact(path: &str) -> Result<Self, InvalidRouteMatch> {
        check_path(path)?;
        Ok(Self::Exact(path.into()))
    }

    /// A path that must start with the elements of `prefix`.
    ///
    /// # Errors
    ///
    /// When `prefix` does not start with `/`, or holds a `?` or `#`.
    pub fn prefix(prefix: &str) -> Result<Self, InvalidRouteMatch> {
        check_path(prefix)?;
        Ok(Self::Prefix(prefix.into()))
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
            Self::Exact(exact) => path == &**exact,
            Self::Prefix(prefix) => prefix_matches(prefix, path),
            Self::Regex(regex) => regex.is_match(path),
        }
    }
}

/// Gateway API `PathPrefix`: element-wise, with the prefix's trailing `/`
/// ignored.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn check_path(path: &str) -> Result<(), InvalidRouteMatch> {
    if !path.starts_with('/') {
        return Err(InvalidRouteMatch::path(
            InvalidRouteMatchKind::PathNotAbsolute,
            path,
        ));
    }
    if path.contains(['?', '#']) {
        return Err(InvalidRouteMatch::path(
            InvalidRouteMatchKind::PathHasQuery,
            path,
        ));
    }
    Ok(())
}
