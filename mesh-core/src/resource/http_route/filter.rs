//! `filters` of an `HTTPRoute` rule, and what the mesh makes of them.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IgnoredAny, SeqAccess, Visitor},
};

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

/// The kind of rule a `filters` list belongs to, which decides the filter
/// types it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FilterRule {
    /// An `HTTPRouteRule`: any type, each of `RequestHeaderModifier`,
    /// `ResponseHeaderModifier`, `RequestRedirect` and `URLRewrite` at
    /// most once, and not both of the last two.
    Http,
    /// A `GRPCRouteRule`: only `RequestHeaderModifier`,
    /// `ResponseHeaderModifier` (each at most once), `RequestMirror` and
    /// `ExtensionRef`.
    Grpc,
}

/// The filter types a `GRPCRouteRule` may hold (`GRPCRouteFilterType`).
const GRPC_FILTERS: [&str; 4] = [
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "ExtensionRef",
];

impl FilterRule {
    /// Why `filter` may not follow `earlier` in one rule, if it may not.
    ///
    /// These are the Gateway API's validations of `HTTPRouteRule.filters`
    /// and `GRPCRouteRule.filters` (the CEL rules and the type enums in its
    /// `httproute_types.go` and `grpcroute_types.go`), which the API server
    /// applies before a route is stored. Applied here, a route read from a
    /// file means what the same route would mean in a cluster: a second
    /// header modifier is not silently merged into the first, and a gRPC
    /// call is never answered with a redirect no gRPC client follows.
    fn refuses(self, filter: &HttpRouteFilter, earlier: &[HttpRouteFilter]) -> Option<String> {
        let type_name = filter.type_name();
        let seen = |name: &str| earlier.iter().any(|f| f.type_name() == name);
        let once: &[&str] = match self {
            Self::Http => &[
                "RequestHeaderModifier",
                "ResponseHeaderModifier",
                "RequestRedirect",
                "URLRewrite",
            ],
            Self::Grpc => &["RequestHeaderModifier", "ResponseHeaderModifier"],
        };
        if self == Self::Grpc && !GRPC_FILTERS.contains(&type_name) {
            let why = match type_name {
                "RequestRedirect" => {
                    ": a gRPC client does not follow a redirect, so the call would fail"
                }
                "URLRewrite" => ": a gRPC call's path names its service and method",
                _ => "",
            };
            return Some(format!(
                "a GRPCRoute rule may not hold a {type_name} filter{why}; the Gateway API \
                 allows only {}",
                GRPC_FILTERS.join(", ")
            ));
        }
        if once.contains(&type_name) && seen(type_name) {
            return Some(format!(
                "a second {type_name} filter: the Gateway API allows one in a rule \
                 (write its edits in the first)"
            ));
        }
        let other = match type_name {
            "RequestRedirect" => "URLRewrite",
            "URLRewrite" => "RequestRedirect",
            _ => return None,
        };
        seen(other).then(|| {
            format!(
                "a rule may hold a RequestRedirect or a URLRewrite filter, not both: \
                 this {type_name} follows a {other}"
            )
        })
    }
}

/// A rule's `filters`: at most 16, and only those the Gateway API lets one
/// rule of the kind hold together ([`FilterRule`]). A filter that may not
/// be there is refused where it is written (`spec.rules[0].filters[2]`);
/// a list over the limit is refused as a whole, without reading the rest.
/// `null` is no filters, as the API server drops the `null` of a list that
/// is not nullable, as [`at_most`](super::limits::at_most) reads it.
pub(super) fn http_filters<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<HttpRouteFilter>, D::Error> {
    deserializer.deserialize_option(Filters(FilterRule::Http))
}

/// `filters` of a `GRPCRouteRule`, as [`http_filters`] reads an
/// `HTTPRouteRule`'s.
pub(super) fn grpc_filters<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<HttpRouteFilter>, D::Error> {
    deserializer.deserialize_option(Filters(FilterRule::Grpc))
}

struct Filters(FilterRule);

impl<'de> Visitor<'de> for Filters {
    type Value = Vec<HttpRouteFilter>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {} filters", super::limits::SIXTEEN)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        const N: usize = super::limits::SIXTEEN;
        let mut filters: Vec<HttpRouteFilter> =
            Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
        // Each filter is checked while it is read, so that an error names
        // its own entry.
        while let Some(filter) = seq.next_element_seed(Filter {
            rule: self.0,
            earlier: &filters,
        })? {
            let Some(filter) = filter else {
                return Err(de::Error::custom(format_args!(
                    "more than {N} entries; the Gateway API allows at most {N}"
                )));
            };
            filters.push(filter);
        }
        Ok(filters)
    }
}

/// One filter, read after `earlier`; `None` past the limit.
struct Filter<'a> {
    rule: FilterRule,
    earlier: &'a [HttpRouteFilter],
}

impl<'de> DeserializeSeed<'de> for Filter<'_> {
    type Value = Option<HttpRouteFilter>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.earlier.len() >= super::limits::SIXTEEN {
            IgnoredAny::deserialize(deserializer)?;
            return Ok(None);
        }
        let filter = HttpRouteFilter::deserialize(deserializer)?;
        match self.rule.refuses(&filter, self.earlier) {
            Some(why) => Err(de::Error::custom(why)),
            None => Ok(Some(filter)),
        }
    }
}

impl super::HttpRouteRule {
    /// The rule's filters that the mesh applies, parsed, for the rule whose
    /// matches are `matches` (from [`route_matches`](Self::route_matches)):
    /// its `RequestHeaderModifier`, `ResponseHeaderModifier` and
    /// `RequestRedirect`. Other filter types are left out; their readers
    /// warn about them by name.
    ///
    /// A rule read from a document holds at most one of each of these
    /// (reading refuses a second, as the Gateway API does). A rule built
    /// in code with two header modifiers of one kind gets both, the
    /// second's edits after the first's.
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
        // Reading refuses a second redirect (see below); one added to a
        // rule built in code is refused when the filters are built.
        let mut rule =
            rule("filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }]");
        rule.filters.push(rule.filters[0].clone());
        let e = rule
            .route_filters(&rule.route_matches().unwrap())
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

    fn route_error(kind: &str, filters: &str) -> crate::resource::ResourceError {
        let text = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: {kind}\nmetadata: {{name: r}}\n\
             spec:\n  rules:\n    - backendRefs: []\n      filters:\n{filters}"
        );
        if kind == "GRPCRoute" {
            crate::resource::load::<crate::resource::GrpcRoute>("r.yaml", &text).unwrap_err()
        } else {
            crate::resource::load::<crate::resource::HttpRoute>("r.yaml", &text).unwrap_err()
        }
    }

    const REQUEST_EDIT: &str = "        - type: RequestHeaderModifier\n          requestHeaderModifier: {set: [{name: x-a, value: '1'}]}\n";
    const RESPONSE_EDIT: &str = "        - type: ResponseHeaderModifier\n          responseHeaderModifier: {remove: [server]}\n";
    const REDIRECT: &str =
        "        - type: RequestRedirect\n          requestRedirect: {scheme: https}\n";
    const REWRITE: &str =
        "        - type: URLRewrite\n          urlRewrite: {hostname: b.example}\n";
    const MIRROR: &str = "        - type: RequestMirror\n          requestMirror: {backendRef: {name: shadow, port: 80}}\n";
    const EXTENSION: &str = "        - type: ExtensionRef\n          extensionRef: {group: example.com, kind: Filter, name: audit}\n";

    #[test]
    fn filters_the_gateway_api_allows_once_in_a_rule_are_refused_the_second_time() {
        for (first, second, type_name) in [
            (REQUEST_EDIT, REQUEST_EDIT, "RequestHeaderModifier"),
            (RESPONSE_EDIT, RESPONSE_EDIT, "ResponseHeaderModifier"),
            (REDIRECT, REDIRECT, "RequestRedirect"),
            (REWRITE, REWRITE, "URLRewrite"),
        ] {
            let filters = format!("{first}{MIRROR}{second}");
            let err = route_error("HTTPRoute", &filters);
            assert_eq!(
                err.kind(),
                crate::resource::ResourceErrorKind::InvalidValue,
                "{err}"
            );
            assert_eq!(err.field_path(), "spec.rules[0].filters[2]", "{err}");
            assert!(
                err.message()
                    .contains(&format!("a second {type_name} filter")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_redirect_and_a_rewrite_are_refused_together_in_either_order() {
        for (filters, type_name) in [
            (format!("{REDIRECT}{REWRITE}"), "URLRewrite"),
            (
                format!("{REWRITE}{REQUEST_EDIT}{REDIRECT}"),
                "RequestRedirect",
            ),
        ] {
            let err = route_error("HTTPRoute", &filters);
            let last = filters.matches("- type:").count() - 1;
            assert_eq!(
                err.field_path(),
                format!("spec.rules[0].filters[{last}]"),
                "{err}"
            );
            assert!(
                err.message()
                    .contains("a RequestRedirect or a URLRewrite filter, not both"),
                "{err}"
            );
            assert!(
                err.message().contains(&format!("this {type_name}")),
                "{err}"
            );
        }
    }

    #[test]
    fn one_filter_of_each_type_reads() {
        let rule = rule(&format!(
            "filters:\n{}",
            [
                REQUEST_EDIT,
                RESPONSE_EDIT,
                MIRROR,
                MIRROR,
                REWRITE,
                EXTENSION
            ]
            .concat()
            .replace("        - ", "  - ")
            .replace("\n          ", "\n    ")
        ));
        assert_eq!(rule.filters.len(), 6);
        assert_eq!(
            rule.unsupported_filters().collect::<Vec<_>>(),
            [
                "RequestMirror",
                "RequestMirror",
                "URLRewrite",
                "ExtensionRef"
            ]
        );
    }

    #[test]
    fn a_grpc_rule_refuses_filters_a_grpc_call_cannot_take() {
        for (filter, type_name) in [(REDIRECT, "RequestRedirect"), (REWRITE, "URLRewrite")] {
            let filters = format!("{REQUEST_EDIT}{filter}");
            let err = route_error("GRPCRoute", &filters);
            assert_eq!(err.field_path(), "spec.rules[0].filters[1]", "{err}");
            assert!(
                err.message().contains(&format!(
                    "a GRPCRoute rule may not hold a {type_name} filter"
                )),
                "{err}"
            );
        }
        let err = route_error("GRPCRoute", &format!("{RESPONSE_EDIT}{RESPONSE_EDIT}"));
        assert_eq!(err.field_path(), "spec.rules[0].filters[1]", "{err}");
        assert!(
            err.message().contains("a second ResponseHeaderModifier"),
            "{err}"
        );
    }

    #[test]
    fn a_grpc_rule_keeps_the_filters_the_gateway_api_allows_it() {
        let text = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: r}}\n\
             spec:\n  rules:\n    - filters:\n{}",
            [REQUEST_EDIT, RESPONSE_EDIT, MIRROR, EXTENSION].concat()
        );
        let loaded = crate::resource::load::<crate::resource::GrpcRoute>("r.yaml", &text).unwrap();
        let route = loaded.resources[0].to_http_route().unwrap();
        let rule = &route.spec.rules[0];
        assert_eq!(
            rule.unsupported_filters().collect::<Vec<_>>(),
            ["RequestMirror", "ExtensionRef"]
        );
        let filters = rule.route_filters(&rule.route_matches().unwrap()).unwrap();
        assert!(!filters.request_headers.is_empty());
        assert!(!filters.response_headers.is_empty());
        assert!(filters.redirect.is_none());
    }

    #[test]
    fn a_list_over_the_limit_is_refused_as_a_list() {
        let err = route_error("HTTPRoute", &MIRROR.repeat(17));
        assert_eq!(err.field_path(), "spec.rules[0].filters", "{err}");
        assert!(err.message().contains("at most 16"), "{err}");
        let err = route_error("HTTPRoute", &REQUEST_EDIT.repeat(17));
        assert_eq!(err.field_path(), "spec.rules[0].filters[1]", "{err}");
    }
}
