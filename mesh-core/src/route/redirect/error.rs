use std::fmt;

/// A `requestRedirect` that cannot be applied. It names the field,
/// relative to `requestRedirect` (`path.replacePrefixMatch`), and says
/// what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRedirect {
    field: &'static str,
    kind: InvalidRedirectKind,
    value: Box<str>,
}

/// What is wrong with a `requestRedirect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidRedirectKind {
    /// `scheme` is neither `http` nor `https`.
    Scheme,
    /// `hostname` is not a DNS name.
    Hostname,
    /// `port` is 0.
    Port,
    /// `statusCode` is not 301, 302, 303, 307 or 308.
    StatusCode,
    /// The path modifier's type names a field that is absent.
    Missing,
    /// The path modifier holds the field of the other type
    /// (`replacePrefixMatch` with type `ReplaceFullPath`, or the reverse),
    /// which the Gateway API's validation refuses.
    OtherType,
    /// A path does not start with `/`.
    PathNotAbsolute,
    /// A path holds a `?`, a `#`, or a byte a URI cannot carry.
    Path,
    /// `ReplacePrefixMatch` on a rule without exactly one match whose path
    /// is a `PathPrefix`: there is no one prefix to replace.
    PrefixWithoutPrefixMatch,
}

impl InvalidRedirect {
    pub(super) fn new(field: &'static str, kind: InvalidRedirectKind, value: &str) -> Self {
        Self {
            field,
            kind,
            value: value.into(),
        }
    }

    /// The field, relative to `requestRedirect`, such as `statusCode`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong.
    pub fn kind(&self) -> InvalidRedirectKind {
        self.kind
    }
}

impl fmt::Display for InvalidRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InvalidRedirectKind as Kind;
        let value = &self.value;
        match self.kind {
            Kind::Scheme => write!(f, "scheme {value:?} is neither http nor https"),
            Kind::Hostname => write!(f, "{value:?} is not a DNS name"),
            Kind::Port => f.write_str("port 0 is not a port"),
            Kind::StatusCode => write!(
                f,
                "status code {value} is not a redirect the Gateway API allows (301, 302, 303, 307, 308)"
            ),
            Kind::Missing => write!(f, "the path modifier's type needs {}", self.field),
            Kind::OtherType => write!(
                f,
                "{} is set, but the path modifier's type is {value}",
                self.field
            ),
            Kind::PathNotAbsolute => write!(f, "path {value:?} does not start with '/'"),
            Kind::Path => write!(
                f,
                "path {value:?} holds a query, a fragment or a byte a URI cannot carry"
            ),
            Kind::PrefixWithoutPrefixMatch => f.write_str(
                "ReplacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path",
            ),
        }
    }
}

impl std::error::Error for InvalidRedirect {}
