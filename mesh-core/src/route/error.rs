use std::fmt;

use super::path::{Invalid, encoded_slash, first_invalid};

/// Why a route match could not be built. It names the input that was wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidRouteMatch {
    kind: InvalidRouteMatchKind,
    input: Box<str>,
    source: Option<regex::Error>,
}

/// What was wrong with a route match's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidRouteMatchKind {
    /// The regular expression does not compile (or compiles too large).
    Regex,
    /// An exact or prefix path does not start with `/`.
    PathNotAbsolute,
    /// An exact or prefix path holds a `?` or `#`: a path match sees the
    /// path only, so it could never match.
    PathHasQuery,
    /// An exact or prefix path holds an empty, `.` or `..` segment (`//`,
    /// `/./`, `/../`, also escaped as `%2e`). A request's path is matched
    /// in normal form, which has none, so it could never match. One
    /// trailing `/` is not an empty segment; two are (`/foo//`), as the
    /// Gateway API's validation refuses any `//`.
    PathNotNormal,
    /// An exact or prefix path holds an escaped `/` (`%2F`), which the
    /// Gateway API refuses: the mesh keeps it escaped, while applications
    /// may read it as a separator.
    PathEncodedSlash,
    /// An exact or prefix path holds a character a path match may not
    /// (outside RFC 3986's `pchar`s: a space, a `"`, a `\`, a non-ASCII
    /// character...) or a `%` not followed by two hex digits.
    PathInvalidChar,
}

impl InvalidRouteMatch {
    pub(super) fn regex(pattern: &str, source: regex::Error) -> Self {
        Self {
            kind: InvalidRouteMatchKind::Regex,
            input: pattern.into(),
            source: Some(source),
        }
    }

    pub(super) fn path(kind: InvalidRouteMatchKind, path: &str) -> Self {
        Self {
            kind,
            input: path.into(),
            source: None,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> InvalidRouteMatchKind {
        self.kind
    }

    /// The pattern or path that was wrong, as given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for InvalidRouteMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match self.kind {
            InvalidRouteMatchKind::Regex => write!(f, "invalid regular expression `{input}`"),
            InvalidRouteMatchKind::PathNotAbsolute => {
                write!(f, "path `{input}` does not start with '/'")
            }
            InvalidRouteMatchKind::PathHasQuery => {
                write!(f, "path `{input}` holds a query or fragment")
            }
            InvalidRouteMatchKind::PathNotNormal => write!(
                f,
                "path `{input}` holds an empty, `.` or `..` segment, which no path has once normalized, so it could never match"
            ),
            InvalidRouteMatchKind::PathEncodedSlash => write!(
                f,
                "path `{input}` holds an escaped '/' (`{}`), which the Gateway API does not allow in a path match",
                encoded_slash(input).unwrap_or("%2F")
            ),
            InvalidRouteMatchKind::PathInvalidChar => match first_invalid(input) {
                Some(Invalid::Char(c)) => write!(
                    f,
                    "path `{input}` holds {c:?}: a path match may hold only letters, digits, `-._~!$&'()*+,;=:@/` and `%` followed by two hex digits"
                ),
                _ => write!(f, "path `{input}` holds '%' not followed by two hex digits"),
            },
        }
    }
}

impl std::error::Error for InvalidRouteMatch {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
