//! Matching requests to routes, and naming the route a request took.
//!
//! Authorization can be narrowed to some requests of a server (Linkerd's
//! `HTTPRoute` with a `Server` parent), and outbound traffic picks retries
//! and timeouts per route. Both need the same question answered, "does this
//! request match this rule?", with the Gateway API's semantics, which is
//! what users write in their `HTTPRoute`s. [`RouteMatch`] answers it.
//!
//! A [`RouteMatch`] holds conditions on the path ([`PathMatch`]: exact,
//! prefix or regular expression), the method, headers ([`HeaderMatch`]) and
//! query parameters ([`QueryParamMatch`]). A request matches when **every**
//! condition holds; a `RouteMatch` with no conditions matches every request.
//! Regular expressions must match the **whole** value (they are anchored), and
//! are compiled once, when the match is built, never per request.
//!
//! Once a route is chosen, the layer that chose it inserts a [`RouteId`] into
//! the request's extensions. Metrics read it for their `route_name` label.
//! Because its value comes from configuration (the route's name), the label
//! has a bounded set of values, which a raw path would not.
//!
//! Matching does not allocate, with one exception noted on
//! [`QueryParamMatch`].
//!
//! Paths are matched as sent; [`NormalizePathLayer`] puts them in one
//! spelling first, so that `/%61dmin` or `//admin` cannot walk around a
//! rule for `/admin`.
//!
//! A route can also edit the headers it carries, as an `HTTPRoute` rule's
//! header filters ask: [`HeaderEdit`], applied by [`EditHeadersLayer`]. Or
//! it can answer with a redirect instead of sending the request on, as a
//! rule's `RequestRedirect` asks: [`Redirect`], answered by
//! [`RedirectLayer`] (see the [`redirect`] module). [`RouteFilters`] holds
//! all three for one rule.
//!
//! Where several rules' matches fit one request, the Gateway API picks the
//! most specific, not the first written: [`MatchPrecedence`]
//! ([`RouteMatch::precedence`]) ranks them.
//!
//! ```
//! use mesh_core::route::{HeaderMatch, PathMatch, RouteMatch};
//!
//! let get_books = RouteMatch::new()
//!     .with_path(PathMatch::prefix("/books")?)
//!     .with_method(http::Method::GET)
//!     .with_header(HeaderMatch::exact(http::HeaderName::from_static("x-tenant"), "blue"));
//!
//! let req = http::Request::get("/books/42").header("x-tenant", "blue").body(())?;
//! assert!(get_books.matches_request(&req));
//! let req = http::Request::get("/bookshelf").header("x-tenant", "blue").body(())?;
//! assert!(!get_books.matches_request(&req));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{fmt, sync::Arc};

use http::{HeaderMap, Method, Request, Uri, request};

use crate::classify::Classify;

mod edit;
mod error;
mod filters;
pub mod normalize;
mod or_respond;
mod path;
mod precedence;
pub mod redirect;
#[cfg(test)]
mod tests;
mod value;

pub use self::{
    edit::{EditFuture, EditHeaders, EditHeadersLayer, HeaderEdit, InvalidHeaderEdit},
    error::{InvalidRouteMatch, InvalidRouteMatchKind},
    filters::{InvalidFilter, InvalidFilterReason, RouteFilters},
    normalize::{InvalidPath, NormalizePath, NormalizePathLayer, normalize_path},
    or_respond::OrRespond,
    path::PathMatch,
    precedence::MatchPrecedence,
    redirect::{InvalidRedirect, InvalidRedirectKind, Redirect, RedirectLayer, Redirected},
    value::{FullRegex, HeaderMatch, QueryParamMatch, ValueMatch},
};

/// The name of the route a request matched. A request extension.
///
/// The name comes from configuration (an `HTTPRoute`'s name, a
/// ServiceProfile route), never from the request, so metric labels built from
/// it stay bounded. Cloning is an `Arc` increment.
///
/// A route can also carry the rules that classify its responses
/// ([`with_classify`](Self::with_classify)): a ServiceProfile route's
/// `responseClasses` decide, in Linkerd, both what the route retries and
/// how its responses are counted (`classification` in `response_total`).
/// Metrics that already read the route for its name find the route's
/// classifier there, resolved once when the route was built, instead of
/// looking up another extension per request.
///
/// Two ids are equal, hash and order by their names: the name identifies
/// the route, and the classifier goes with it.
#[derive(Clone)]
pub struct RouteId(Arc<Named>);

/// What a [`RouteId`] points to: one allocation per built route, which
/// every request of the route shares, so that an id is one pointer wide
/// and two ids of one route compare by address.
struct Named {
    name: Arc<str>,
    classify: Option<Classify>,
}

impl RouteId {
    /// A route named `name`, whose responses are classified by the rules
    /// of whoever reads them. Allocates: build an id once per route and
    /// clone it per request.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(Arc::new(Named {
            name: name.into(),
            classify: None,
        }))
    }

    /// This route, with its responses classified by `classify` in the
    /// metrics that read it, in place of their own rules.
    #[must_use]
    pub fn with_classify(self, classify: Classify) -> Self {
        Self(Arc::new(Named {
            name: self.0.name.clone(),
            classify: Some(classify),
        }))
    }

    /// The route's name.
    pub fn as_str(&self) -> &str {
        &self.0.name
    }

    /// The rules that classify the route's responses, when the route has
    /// its own; `None` leaves them to the reader's.
    pub fn classify(&self) -> Option<&Classify> {
        self.0.classify.as_ref()
    }

    /// Whether `other` is a clone of this id: the same built route, so the
    /// same name and rules, known without reading either.
    pub fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut t = f.debug_tuple("RouteId");
        t.field(&&*self.0.name);
        if let Some(classify) = &self.0.classify {
            t.field(classify);
        }
        t.finish()
    }
}

impl PartialEq for RouteId {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for RouteId {}

impl std::hash::Hash for RouteId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for RouteId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RouteId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(&other.0.name)
    }
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

impl From<&str> for RouteId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for RouteId {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

impl AsRef<str> for RouteId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Conditions a request must all meet: one rule's `matches` entry in a
/// Gateway API `HTTPRoute`.
///
/// Built once per configuration with the `with_*` methods, then shared.
/// [`RouteMatch::new`] (or `default()`) has no conditions and matches every
/// request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteMatch {
    path: Option<PathMatch>,
    method: Option<Method>,
    headers: Vec<HeaderMatch>,
    query_params: Vec<QueryParamMatch>,
}

impl RouteMatch {
    /// A match with no conditions: it matches every request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires the path to match. Replaces any earlier path condition.
    #[must_use]
    pub fn with_path(mut self, path: PathMatch) -> Self {
        self.path = Some(path);
        self
    }

    /// Requires this method. Replaces any earlier method condition.
    #[must_use]
    pub fn with_method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Requires a header to match, in addition to earlier header conditions.
    #[must_use]
    pub fn with_header(mut self, header: HeaderMatch) -> Self {
        self.headers.push(header);
        self
    }

    /// Requires a query parameter to match, in addition to earlier query
    /// conditions.
    #[must_use]
    pub fn with_query_param(mut self, param: QueryParamMatch) -> Self {
        self.query_params.push(param);
        self
    }

    /// The path condition, if any.
    pub fn path(&self) -> Option<&PathMatch> {
        self.path.as_ref()
    }

    /// The method condition, if any.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// The header conditions.
    pub fn headers(&self) -> &[HeaderMatch] {
        &self.headers
    }

    /// The query parameter conditions.
    pub fn query_params(&self) -> &[QueryParamMatch] {
        &self.query_params
    }

    /// Whether this matches every request: it has no conditions.
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.method.is_none()
            && self.headers.is_empty()
            && self.query_params.is_empty()
    }

    /// Whether a request head meets every condition.
    pub fn matches(&self, parts: &request::Parts) -> bool {
        self.matches_head(&parts.method, &parts.uri, &parts.headers)
    }

    /// Whether a request meets every condition.
    pub fn matches_request<B>(&self, req: &Request<B>) -> bool {
        self.matches_head(req.method(), req.uri(), req.headers())
    }

    /// Whether a method, URI and headers meet every condition.
    pub fn matches_head(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        // Cheapest first.
        self.method.as_ref().is_none_or(|m| m == method)
            && self.path.as_ref().is_none_or(|p| p.matches(uri.path()))
            && self.headers.iter().all(|h| h.matches(headers))
            && self.query_params.iter().all(|q| q.matches(uri.query()))
    }
}
