//! `filters` of an `HTTPRoute` rule, and what the mesh makes of them.

use serde::Deserialize;

use crate::resource::{DocumentContext, ResourceError, ResourceErrorKind};
use crate::route::{
    HeaderEdit, InvalidFilter, InvalidFilterReason, Redirect, RouteFilters, RouteMatch,
};

/// A `filters` entry.
///
/// The filter types Linkerd applies on its policy routes are typed. Any
/// other type (`RequestMirror`, `URLRewrite`, `ExtensionRef`, or one a
/// newer Gateway API adds) is kept as [`Unsupported`](Self::Unsupported)
/// with its type name, so that a reader can warn about it by name rather
/// than apply half of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawFilter")]
pub enum HttpRouteFilter {
    /// `RequestHeaderModifier`: headers set, added or removed on the
    /// request.
    RequestHeaderModifier(HeaderModifier),
    /// `ResponseHeaderModifier`: headers set, added or removed on the
    /// response.
    ResponseHeaderModifier(HeaderModifier),
    /// `RequestRedirect`: answer with a redirect instead of forwarding.
    RequestRedirect(RequestRedirect),
    /// A filter type that is not modelled.
    Unsupported {
        /// The filter's `type`, such as `RequestMirror`.
        type_name: String,
    },
}

impl HttpRouteFilter {
    /// The filter's `type`, as written.
    pub fn type_name(&self) -> &str {
        match self {
            Self::RequestHeaderModifier(_) => "RequestHeaderModifier",
            Self::ResponseHeaderModifier(_) => "ResponseHeaderModifier",
            Self::RequestRedirect(_) => "RequestRedirect",
            Self::Unsupported { type_name } => type_name,
        }
    }
}

/// `requestHeaderModifier` or `responseHeaderModifier`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct HeaderModifier {
    /// `set`: headers that replace any of the same name. At most 16.
    #[serde(default, deserialize_with = "super::limits::at_most::<16, _, _>")]
    pub set: Vec<HttpHeader>,
    /// `add`: headers appended to any of the same name. At most 16.
    #[serde(default, deserialize_with = "super::limits::at_most::<16, _, _>")]
    pub add: Vec<HttpHeader>,
    /// `remove`: names of headers to remove. At most 16.
    #[serde(default, deserialize_with = "super::limits::at_most::<16, _, _>")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HttpHeader {
    /// `name`.
    pub name: String,
    /// `value`.
    pub value: String,
}

/// `requestRedirect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `scheme`: `http` or `https`; the request's when absent.
    #[serde(default)]
    pub scheme: Option<String>,
    /// `hostname`; the request's when absent.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `path`: how the path is rewritten.
    #[serde(default)]
    pub path: Option<HttpPathModifier>,
    /// `port`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `statusCode`: 301, 302, 303, 307 or 308; 302 when absent.
    #[serde(default)]
    pub status_code: Option<u16>,
}

/// `path` of a redirect.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathModifier {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: PathModifierType,
    /// `replaceFullPath`, for that type.
    #[serde(default)]
    pub replace_full_path: Option<String>,
    /// `replacePrefixMatch`, for that type.
    #[serde(default)]
    pub replace_prefix_match: Option<String>,
}

/// How a redirect rewrites the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum PathModifierType {
    /// Replace the whole path.
    ReplaceFullPath,
    /// Replace the part the rule's `PathPrefix` matched.
    ReplacePrefixMatch,
}

/// A filter as written: a `type` and a field named after it. The config of
/// an unsupported type is read as an opaque value, so it is neither an
/// error nor reported again as an unknown field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    request_header_modifier: Option<HeaderModifier>,
    #[serde(default)]
    response_header_modifier: Option<HeaderModifier>,
    #[serde(default)]
    request_redirect: Option<RequestRedirect>,
    #[serde(default)]
    request_mirror: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    url_rewrite: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    extension_ref: Option<serde_yaml_ng::Value>,
}

impl TryFrom<RawFilter> for HttpRouteFilter {
    type Error = String;

    fn try_from(raw: RawFilter) -> Result<Self, String> {
        // The Gateway API requires a filter to hold only the field its type
        // names (`requestRedirect` for `RequestRedirect`): a config under
        // another type's field would otherwise be dropped without a word.
        let configs = [
            (
                "RequestHeaderModifier",
                "requestHeaderModifier",
                raw.request_header_modifier.is_some(),
            ),
            (
                "ResponseHeaderModifier",
                "responseHeaderModifier",
                raw.response_header_modifier.is_some(),
            ),
            (
                "RequestRedirect",
                "requestRedirect",
                raw.request_redirect.is_some(),
            ),
            (
                "RequestMirror",
                "requestMirror",
                raw.request_mirror.is_some(),
            ),
            ("URLRewrite", "urlRewrite", raw.url_rewrite.is_some()),
            ("ExtensionRef", "extensionRef", raw.extension_ref.is_some()),
        ];
        if let Some((_, field, _)) = configs
            .iter()
            .find(|(type_name, _, set)| *set && *type_name != raw.type_name)
        {
            return Err(format!(
                "a {} filter has no `{field}`: a filter holds only the field its type names",
                raw.type_name
            ));
        }
        let missing = |field: &str| format!("a {} filter needs `{field}`", raw.type_name);
        Ok(match raw.type_name.as_str() {
            "RequestHeaderModifier" => Self::RequestHeaderModifier(
                raw.request_header_modifier
                    .ok_or_else(|| missing("requestHeaderModifier"))?,
            ),
            "ResponseHeaderModifier" => Self::ResponseHeaderModifier(
                raw.response_header_modifier
                    .ok_or_else(|| missing("responseHeaderModifier"))?,
            ),
            "RequestRedirect" => Self::RequestRedirect(
                raw.request_redirect
                    .ok_or_else(|| missing("requestRedirect"))?,
            ),
            _ => {
                let _ = (raw.request_mirror, raw.url_rewrite, raw.extension_ref);
                Self::Unsupported {
                    type_name: raw.type_name,
                }
            }
        })
    }
}

impl super::HttpRouteRule {
    /// The rule's filters that the mesh applies, parsed, for the rule whose
    /// matches are `matches` (from [`route_matches`](Self::route_matches)):
    /// its `RequestHeaderModifier`s, `ResponseHeaderModifier`s (each in
    /// order) and its `RequestRedirect`. Other filter types are left out;
    /// their readers warn about them by name.
    ///
    /// # Errors
    ///
    /// The first filter that cannot be applied, naming its field from the
    /// rule (`filters[1].requestRedirect.path`): a header name or value
    /// HTTP refuses, an invalid redirect, a second `RequestRedirect`
    /// (`filters[2]`), or a redirect on a rule with `backendRefs`
    /// (`backendRefs`); the Gateway API's validation refuses the last two
    /// as well.
    pub fn route_filters(&self, matches: &[RouteMatch]) -> Result<RouteFilters, InvalidFilter> {
        let mut filters = RouteFilters::default();
        for (j, filter) in self.filters.iter().enumerate() {
            let at = |field: &str| format!("filters[{j}].{field}");
            let edit = |modifier, field: &str| {
                HeaderEdit::new(modifier).map_err(|e| {
                    let path = at(&format!("{field}.{}", e.field));
                    InvalidFilter::new(path, InvalidFilterReason::Header(e))
                })
            };
            match filter {
                HttpRouteFilter::RequestHeaderModifier(m) => {
                    let edit = edit(m, "requestHeaderModifier")?;
                    filters.request_headers =
                        std::mem::take(&mut filters.request_headers).then(edit);
                }
                HttpRouteFilter::ResponseHeaderModifier(m) => {
                    let edit = edit(m, "responseHeaderModifier")?;
                    filters.response_headers =
                        std::mem::take(&mut filters.response_headers).then(edit);
                }
                HttpRouteFilter::RequestRedirect(r) => {
                    if filters.redirect.is_some() {
                        return Err(InvalidFilter::new(
                            format!("filters[{j}]"),
                            InvalidFilterReason::SecondRedirect,
                        ));
                    }
                    if !self.backend_refs.is_empty() {
                        return Err(InvalidFilter::new(
                            "backendRefs".to_owned(),
                            InvalidFilterReason::RedirectWithBackends,
                        ));
                    }
                    let redirect = Redirect::new(r, matches).map_err(|e| {
                        let path = at(&format!("requestRedirect.{}", e.field()));
                        InvalidFilter::new(path, InvalidFilterReason::Redirect(e))
                    })?;
                    filters.redirect = Some(redirect);
                }
                HttpRouteFilter::Unsupported { .. } => {}
            }
        }
        Ok(filters)
    }
}

impl DocumentContext<'_> {
    /// The error for a filter of this document that cannot be applied; its
    /// field path is taken as written from the document's root, as the
    /// caller gives it with [`InvalidFilter::within`].
    pub fn filter_error(&self, error: InvalidFilter) -> ResourceError {
        let (field_path, reason) = error.into_parts();
        let message = reason.to_string();
        self.error(ResourceErrorKind::InvalidValue, &field_path, message)
            .with_source(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::super::HttpRouteRule;
    use crate::route::{InvalidFilterReason, InvalidRedirectKind};

    fn rule(yaml: &str) -> HttpRouteRule {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn filters(yaml: &str) -> Result<crate::route::RouteFilters, crate::route::InvalidFilter> {
        let rule = rule(yaml);
        rule.route_filters(&rule.route_matches().unwrap())
    }

    #[test]
    fn a_rule_gives_its_edits_and_its_redirect() {
        let filters = filters(
            r#"
matches: [{ path: { type: PathPrefix, value: /old } }]
filters:
  - type: RequestHeaderModifier
    requestHeaderModifier: { set: [{ name: x-a, value: "1" }] }
  - type: RequestMirror
    requestMirror: { backendRef: { name: shadow, port: 80 } }
  - type: ResponseHeaderModifier
    responseHeaderModifier: { remove: [server] }
  - type: RequestRedirect
    requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }
"#,
        )
        .unwrap();
        assert!(!filters.request_headers.is_empty());
        assert!(!filters.response_headers.is_empty());
        let redirect = filters.redirect.unwrap();
        assert_eq!(redirect.status(), 301);
        let uri = "/old/a?b=c".parse().unwrap();
        assert_eq!(
            redirect.location(&uri, &http::HeaderMap::new()),
            "/new/a?b=c"
        );
    }

    #[test]
    fn a_rule_without_filters_changes_nothing() {
        assert!(filters("matches: []").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_field_from_the_rule() {
        let e = filters(
            r#"
matches: [{ path: { type: Exact, value: /old } }]
filters:
  - type: RequestHeaderModifier
    requestHeaderModifier: { set: [{ name: x-a, value: "1" }] }
  - type: RequestRedirect
    requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
"#,
        )
        .unwrap_err();
        let e = e.within("spec.rules[0]");
        assert_eq!(
            e.field_path(),
            "spec.rules[0].filters[1].requestRedirect.path"
        );
        assert!(matches!(
            e.reason(),
            InvalidFilterReason::Redirect(r) if r.kind() == InvalidRedirectKind::PrefixWithoutPrefixMatch
        ));

        let e = filters(
            r#"
filters:
  - type: RequestRedirect
    requestRedirect: { statusCode: 418 }
"#,
        )
        .unwrap_err();
        assert_eq!(e.field_path(), "filters[0].requestRedirect.statusCode");

        let e = filters(
            r#"
filters:
  - type: ResponseHeaderModifier
    responseHeaderModifier: { add: [{ name: "bad name", value: "1" }] }
"#,
        )
        .unwrap_err();
        assert_eq!(
            e.field_path(),
            "filters[0].responseHeaderModifier.add[0].name"
        );
        assert!(matches!(e.reason(), InvalidFilterReason::Header(_)));
    }

    #[test]
    fn a_redirect_is_alone_and_has_no_backends() {
        let e = filters(
            r#"
filters:
  - type: RequestRedirect
    requestRedirect: { scheme: https }
  - type: RequestRedirect
    requestRedirect: { hostname: example.com }
"#,
        )
        .unwrap_err();
        assert_eq!(e.field_path(), "filters[1]");
        assert!(matches!(e.reason(), InvalidFilterReason::SecondRedirect));

        let e = filters(
            r#"
filters:
  - type: RequestRedirect
    requestRedirect: { scheme: https }
backendRefs: [{ name: web, port: 80 }]
"#,
        )
        .unwrap_err();
        assert_eq!(e.field_path(), "backendRefs");
        assert!(matches!(
            e.reason(),
            InvalidFilterReason::RedirectWithBackends
        ));
    }
}
