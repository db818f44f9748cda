//! Turning an `HTTPRoute`'s matches into [`RouteMatch`]es.

use std::fmt;

use http::{HeaderName, Method, header::InvalidHeaderName, method::InvalidMethod};

use super::{
    HttpHeaderMatch, HttpPathMatch, HttpQueryParamMatch, HttpRoute, HttpRouteMatch, HttpRouteRule,
    PathMatchType, ValueMatchType,
};
use crate::resource::{DocumentContext, ResourceError, ResourceErrorKind};
use crate::route::{
    HeaderMatch, InvalidRouteMatch, PathMatch, QueryParamMatch, RouteMatch, ValueMatch,
};

impl HttpRoute {
    /// The matches of every rule, in order: one list per rule.
    ///
    /// # Errors
    ///
    /// The first match that cannot be built, naming its field from the
    /// document's root (`spec.rules[1].matches[0].path.value`).
    pub fn rule_matches(&self) -> Result<Vec<Vec<RouteMatch>>, InvalidMatch> {
        self.spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                rule.route_matches()
                    .map_err(|e| e.within(&format!("spec.rules[{i}]")))
            })
            .collect()
    }
}

impl HttpRouteRule {
    /// The rule's matches. A rule without matches matches every request,
    /// so it gives one empty [`RouteMatch`].
    ///
    /// # Errors
    ///
    /// The first match that cannot be built, naming its field from the
    /// rule (`matches[0].path.value`).
    pub fn route_matches(&self) -> Result<Vec<RouteMatch>, InvalidMatch> {
        if self.matches.is_empty() {
            return Ok(vec![RouteMatch::new()]);
        }
        self.matches
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.to_route_match()
                    .map_err(|e| e.within(&format!("matches[{i}]")))
            })
            .collect()
    }
}

impl HttpRouteMatch {
    /// The match as a [`RouteMatch`].
    ///
    /// # Errors
    ///
    /// What the Gateway API's validation refuses: a path that is not
    /// absolute or not normal (see [`PathMatch`]), a regular expression
    /// that does not compile, a header or query parameter name or a
    /// method that is not a valid token, a name written twice in one list,
    /// a name or value longer or shorter than the API allows. The error
    /// names the field from the match
    /// (`headers[1].value`).
    pub fn to_route_match(&self) -> Result<RouteMatch, InvalidMatch> {
        let mut route = RouteMatch::new();
        if let Some(path) = &self.path {
            route = route.with_path(path_match(path)?);
        }
        if let Some(method) = &self.method {
            let method = Method::from_bytes(method.as_bytes())
                .map_err(|e| InvalidMatch::new("method", InvalidMatchReason::Method(e)))?;
            if !GATEWAY_METHODS.contains(&method.as_str()) {
                return Err(InvalidMatch::new(
                    "method",
                    InvalidMatchReason::UnknownMethod,
                ));
            }
            route = route.with_method(method);
        }
        // The API server keeps one entry per name as written (the lists
        // are `listType=map` keyed by `name`), so a name written twice is
        // refused. Header names are case-insensitive: of `x-env` and
        // `X-Env`, which it lets through, the Gateway API considers only
        // the first and ignores the rest; each is still checked.
        for (i, header) in self.headers.iter().enumerate() {
            let at = |e: InvalidMatch| e.within(&format!("headers[{i}]"));
            let built = header_match(header).map_err(at)?;
            written_once(&self.headers[..i], "headers", |h| h.name == header.name).map_err(at)?;
            if !route.headers().iter().any(|h| h.name() == built.name()) {
                route = route.with_header(built);
            }
        }
        for (i, param) in self.query_params.iter().enumerate() {
            let at = |e: InvalidMatch| e.within(&format!("queryParams[{i}]"));
            let built = query_match(param).map_err(at)?;
            written_once(&self.query_params[..i], "queryParams", |q| {
                q.name == param.name
            })
            .map_err(at)?;
            route = route.with_query_param(built);
        }
        Ok(route)
    }
}

/// The methods an `HTTPRoute` match may name: the Gateway API's
/// `HTTPMethod` enum, which the API server enforces. Methods are
/// case-sensitive (RFC 9110 §9.1), so `get` would be a method of its own
/// that no client sends: a route that silently matched nothing.
const GATEWAY_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The longest header or query parameter name (`HTTPHeaderName`).
const MAX_NAME_LEN: usize = 256;
/// The longest header value a header match may hold.
const MAX_HEADER_VALUE_LEN: usize = 4096;
/// The longest value a query parameter match may hold.
const MAX_QUERY_VALUE_LEN: usize = 1024;

/// Refuses the entry at `index` of a `headers` or `queryParams` list when
/// one of the `earlier` entries has its name, as written.
fn written_once<T>(
    earlier: &[T],
    list: &str,
    same_name: impl Fn(&T) -> bool,
) -> Result<(), InvalidMatch> {
    match earlier.iter().position(same_name) {
        Some(first) => Err(InvalidMatch::new(
            "name",
            InvalidMatchReason::DuplicateName {
                first: format!("{list}[{first}]"),
            },
        )),
        None => Ok(()),
    }
}

/// Refuses a string outside `1..=max` bytes, as the Gateway API's
/// `minLength` and `maxLength` do.
fn within_length(field: &str, value: &str, min: usize, max: usize) -> Result<(), InvalidMatch> {
    if value.len() < min || value.len() > max {
        return Err(InvalidMatch::new(
            field,
            InvalidMatchReason::Length {
                len: value.len(),
                min,
                max,
            },
        ));
    }
    Ok(())
}

fn path_match(path: &HttpPathMatch) -> Result<PathMatch, InvalidMatch> {
    match path.kind {
        PathMatchType::Exact => PathMatch::exact(&path.value),
        PathMatchType::PathPrefix => PathMatch::prefix(&path.value),
        PathMatchType::RegularExpression => PathMatch::regex(&path.value),
    }
    .map_err(|e| InvalidMatch::new("path.value", InvalidMatchReason::Route(e)))
}

fn value_match(kind: ValueMatchType, value: &str) -> Result<ValueMatch, InvalidMatch> {
    match kind {
        ValueMatchType::Exact => Ok(ValueMatch::exact(value)),
        ValueMatchType::RegularExpression => ValueMatch::regex(value)
            .map_err(|e| InvalidMatch::new("value", InvalidMatchReason::Route(e))),
    }
}

/// A header or query parameter name: the Gateway API's `HTTPHeaderName`,
/// an RFC 9110 token of at most 256 characters.
fn name_token(name: &str) -> Result<HeaderName, InvalidMatch> {
    within_length("name", name, 1, MAX_NAME_LEN)?;
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| InvalidMatch::new("name", InvalidMatchReason::HeaderName(e)))
}

fn header_match(header: &HttpHeaderMatch) -> Result<HeaderMatch, InvalidMatch> {
    let name = name_token(&header.name)?;
    within_length("value", &header.value, 1, MAX_HEADER_VALUE_LEN)?;
    Ok(HeaderMatch::new(
        name,
        value_match(header.kind, &header.value)?,
    ))
}

fn query_match(param: &HttpQueryParamMatch) -> Result<QueryParamMatch, InvalidMatch> {
    // Checked as a header name is, but kept as written: query parameter
    // names are case-sensitive.
    name_token(&param.name)?;
    within_length("value", &param.value, 1, MAX_QUERY_VALUE_LEN)?;
    Ok(QueryParamMatch::new(
        param.name.as_str(),
        value_match(param.kind, &param.value)?,
    ))
}

/// A match of an `HTTPRoute` that cannot be turned into a [`RouteMatch`].
/// It names the field, relative to where the conversion started.
#[derive(Debug)]
pub struct InvalidMatch {
    field_path: String,
    reason: InvalidMatchReason,
}

/// Why a match could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum InvalidMatchReason {
    /// A path or a regular expression was rejected.
    Route(InvalidRouteMatch),
    /// A header or query parameter name is not a valid token.
    HeaderName(InvalidHeaderName),
    /// A method is not a valid token.
    Method(InvalidMethod),
    /// A method that is a token but not one of the Gateway API's
    /// (`GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `CONNECT`, `OPTIONS`,
    /// `TRACE`, `PATCH`), such as `get`.
    UnknownMethod,
    /// A `GRPCRoute` method match that names nothing, or a name gRPC does
    /// not allow; says which.
    Grpc(&'static str),
    /// A header or query parameter name an earlier entry of the same list
    /// already has, as written (the API server keeps one entry per name).
    DuplicateName {
        /// The earlier entry, such as `headers[0]`.
        first: String,
    },
    /// A string shorter or longer than the Gateway API allows: an empty
    /// name or one over 256 bytes, an empty header value or one over
    /// 4096, an empty query value or one over 1024.
    Length {
        /// The string's length, in bytes.
        len: usize,
        /// The shortest allowed.
        min: usize,
        /// The longest allowed.
        max: usize,
    },
}

impl InvalidMatch {
    pub(super) fn new(field_path: &str, reason: InvalidMatchReason) -> Self {
        Self {
            field_path: field_path.to_owned(),
            reason,
        }
    }

    pub(super) fn within(mut self, prefix: &str) -> Self {
        self.field_path = format!("{prefix}.{}", self.field_path);
        self
    }

    /// The path of the offending field, such as
    /// `spec.rules[0].matches[1].path.value`.
    pub fn field_path(&self) -> &str {
        &self.field_path
    }

    /// Why the match was rejected.
    pub fn reason(&self) -> &InvalidMatchReason {
        &self.reason
    }
}

impl DocumentContext<'_> {
    /// The error for a match of this document that cannot be built; its
    /// field path is taken as written from the document's root, as
    /// [`HttpRoute::rule_matches`] gives it.
    pub fn match_error(&self, error: InvalidMatch) -> ResourceError {
        self.error(
            ResourceErrorKind::InvalidValue,
            &error.field_path,
            error.reason.to_string(),
        )
        .with_source(error.reason)
    }
}

impl fmt::Display for InvalidMatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Route(e) => fmt::Display::fmt(e, f),
            Self::HeaderName(_) => f.write_str(
                "invalid header name: a header or query parameter name is letters, digits \
                 and !#$%&'*+-.^_`|~ only",
            ),
            Self::Method(_) => f.write_str("invalid method"),
            Self::UnknownMethod => f.write_str(
                "method is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
            ),
            Self::Grpc(rule) => f.write_str(rule),
            Self::DuplicateName { first } => write!(
                f,
                "{first} has this name too: a match holds one entry per name, as the Gateway API requires"
            ),
            Self::Length { len, min, max } if len < min => write!(
                f,
                "it is empty; the Gateway API requires {min} to {max} characters"
            ),
            Self::Length { len, max, .. } => write!(
                f,
                "it is {len} characters long; the Gateway API allows at most {max}"
            ),
        }
    }
}

impl std::error::Error for InvalidMatchReason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Route(e) => e.source(),
            Self::HeaderName(e) => Some(e),
            Self::Method(e) => Some(e),
            Self::UnknownMethod
            | Self::Grpc(_)
            | Self::DuplicateName { .. }
            | Self::Length { .. } => None,
        }
    }
}

impl fmt::Display for InvalidMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid match at {}", self.field_path)
    }
}

impl std::error::Error for InvalidMatch {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn header(name: &str, value: &str) -> HttpHeaderMatch {
        HttpHeaderMatch {
            kind: ValueMatchType::Exact,
            name: name.into(),
            value: value.into(),
        }
    }

    fn param(name: &str, value: &str) -> HttpQueryParamMatch {
        HttpQueryParamMatch {
            kind: ValueMatchType::Exact,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn only_the_first_entry_for_a_header_name_counts() {
        let m = HttpRouteMatch {
            headers: vec![header("x-env", "canary"), header("X-Env", "prod")],
            ..Default::default()
        }
        .to_route_match()
        .unwrap();
        let canary = Request::get("/")
            .header("x-env", "canary")
            .body(())
            .unwrap();
        let prod = Request::get("/").header("x-env", "prod").body(()).unwrap();
        assert!(m.matches_request(&canary));
        assert!(!m.matches_request(&prod));
    }

    #[test]
    fn query_parameter_names_differing_in_case_are_two_parameters() {
        let m = HttpRouteMatch {
            query_params: vec![param("v", "1"), param("V", "3")],
            ..Default::default()
        }
        .to_route_match()
        .unwrap();
        // Query parameter names are case-sensitive: `V` is another one.
        assert!(m.matches_request(&Request::get("/?v=1&V=3").body(()).unwrap()));
        assert!(!m.matches_request(&Request::get("/?v=2&V=3").body(()).unwrap()));
        assert!(!m.matches_request(&Request::get("/?v=1").body(()).unwrap()));
    }

    #[test]
    fn a_name_written_twice_in_one_list_is_refused() {
        // The API server keeps `headers` and `queryParams` as maps keyed
        // by `name`: a second entry of the same name is refused, not
        // ignored.
        let err = HttpRouteMatch {
            headers: vec![
                header("x-a", "1"),
                header("x-env", "a"),
                header("x-env", "b"),
            ],
            ..Default::default()
        }
        .to_route_match()
        .unwrap_err();
        assert_eq!(err.field_path(), "headers[2].name");
        assert_eq!(
            err.reason().to_string(),
            "headers[1] has this name too: a match holds one entry per name, as the Gateway API requires"
        );
        let err = HttpRouteMatch {
            query_params: vec![param("v", "1"), param("v", "2")],
            ..Default::default()
        }
        .to_route_match()
        .unwrap_err();
        assert_eq!(err.field_path(), "queryParams[1].name");
        assert!(matches!(
            err.reason(),
            InvalidMatchReason::DuplicateName { first } if first == "queryParams[0]"
        ));
    }

    #[test]
    fn an_ignored_duplicate_is_still_checked() {
        let fine = HttpRouteMatch {
            headers: vec![header("x-env", "a"), header("X-Env", "b")],
            ..Default::default()
        };
        assert!(fine.to_route_match().is_ok());
        let mut bad = header("X-ENV", "(unclosed");
        bad.kind = ValueMatchType::RegularExpression;
        let err = HttpRouteMatch {
            headers: vec![header("x-env", "a"), bad],
            ..Default::default()
        }
        .to_route_match()
        .unwrap_err();
        assert_eq!(err.field_path(), "headers[1].value");
    }
}
