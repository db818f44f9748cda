use std::fmt;

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
