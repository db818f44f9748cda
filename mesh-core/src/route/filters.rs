//! What a route rule does to the requests it matches, besides sending
//! them on: its filters, parsed.

use std::fmt;

use super::{HeaderEdit, InvalidHeaderEdit, InvalidRedirect, Redirect};

/// An `HTTPRoute` rule's filters that the mesh applies, parsed once:
/// its `RequestHeaderModifier`, `ResponseHeaderModifier` and
/// `RequestRedirect`. Built by
/// [`HttpRouteRule::route_filters`](crate::resource::HttpRouteRule::route_filters).
///
/// A redirect answers the request, so with one the request edit changes
/// nothing anyone sees; the response edit applies to the redirect too,
/// as to any answer the route gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteFilters {
    /// The rule's `RequestHeaderModifier`.
    pub request_headers: HeaderEdit,
    /// The rule's `ResponseHeaderModifier`.
    pub response_headers: HeaderEdit,
    /// The rule's `RequestRedirect`.
    pub redirect: Option<Redirect>,
}

impl RouteFilters {
    /// Whether the filters change nothing: no edits and no redirect.
    pub fn is_empty(&self) -> bool {
        self.request_headers.is_empty()
            && self.response_headers.is_empty()
            && self.redirect.is_none()
    }
}

/// A filter of an `HTTPRoute` rule that cannot be applied. It names the
/// field, relative to where the conversion started.
#[derive(Debug)]
pub struct InvalidFilter {
    field_path: String,
    reason: InvalidFilterReason,
}

/// Why a filter cannot be applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum InvalidFilterReason {
    /// A header modifier names a header, or holds a value, HTTP refuses.
    Header(InvalidHeaderEdit),
    /// A `requestRedirect` is invalid.
    Redirect(InvalidRedirect),
    /// A rule holds a second `RequestRedirect`.
    SecondRedirect,
    /// A rule with a `RequestRedirect` also has `backendRefs`.
    RedirectWithBackends,
}

impl InvalidFilter {
    pub(crate) fn new(field_path: String, reason: InvalidFilterReason) -> Self {
        Self { field_path, reason }
    }

    pub(crate) fn into_parts(self) -> (String, InvalidFilterReason) {
        (self.field_path, self.reason)
    }

    /// The same error, its field named from `prefix` (`spec.rules[0]`).
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field_path = format!("{prefix}.{}", self.field_path);
        self
    }

    /// The path of the offending field, such as
    /// `spec.rules[0].filters[1].requestRedirect.path`.
    pub fn field_path(&self) -> &str {
        &self.field_path
    }

    /// Why the filter was rejected.
    pub fn reason(&self) -> &InvalidFilterReason {
        &self.reason
    }
}

impl fmt::Display for InvalidFilterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(e) => f.write_str(&e.message),
            Self::Redirect(e) => fmt::Display::fmt(e, f),
            Self::SecondRedirect => f.write_str("a rule may hold one RequestRedirect filter"),
            Self::RedirectWithBackends => f.write_str(
                "a rule with a RequestRedirect filter answers itself and must not have backendRefs",
            ),
        }
    }
}

impl std::error::Error for InvalidFilterReason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Header(e) => Some(e),
            Self::Redirect(e) => Some(e),
            Self::SecondRedirect | Self::RedirectWithBackends => None,
        }
    }
}

impl fmt::Display for InvalidFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid filter at {}", self.field_path)
    }
}

impl std::error::Error for InvalidFilter {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.reason)
    }
}
