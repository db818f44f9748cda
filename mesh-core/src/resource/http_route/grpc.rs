//! `GRPCRoute`: the Gateway API's gRPC routing resource (GEP-1016), read
//! as the `HTTPRoute` it amounts to.
//!
//! A gRPC call is an HTTP/2 `POST` to `/{service}/{method}`, so every
//! `GRPCRoute` match is an `HTTPRoute` match on the path: a service and a
//! method are the exact path, a service alone is the prefix
//! `/{service}/`, a method alone is any service's `/{method}`, and
//! `RegularExpression` matches put the two expressions in those places.
//! Header matches and backends are the same as an `HTTPRoute`'s. Filters
//! are fewer: the Gateway API allows a `GRPCRouteRule` only
//! `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestMirror` and
//! `ExtensionRef` (`GRPCRouteFilterType`), so reading refuses a
//! `RequestRedirect` (a gRPC client does not follow a redirect: the call
//! would fail with no word of why) or a `URLRewrite` where it is written.
//! [`GrpcRoute::to_http_route`] does the translation once, when the
//! resource is read, so that every reader of routes (authorization,
//! outbound routing) reads gRPC routes with no code of its own, and a
//! request is matched as fast as any other.

use serde::Deserialize;

use super::{
    BackendReference, HttpHeaderMatch, HttpPathMatch, HttpRoute, HttpRouteFilter, HttpRouteMatch,
    HttpRouteRule, HttpRouteSpec, InvalidMatch, InvalidMatchReason, ParentReference, PathMatchType,
    ValueMatchType, limits,
};
use crate::{
    resource::{ApiVersion, ObjectMeta, Resource},
    route::PathMatch,
};

/// A `GRPCRoute` (`gateway.networking.k8s.io/v1alpha2` or `v1`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRoute {
    /// The `apiVersion` the route was written at.
    pub api_version: ApiVersion,
    /// Always `GRPCRoute`.
    pub kind: String,
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// The route itself.
    pub spec: GrpcRouteSpec,
}

impl Resource for GrpcRoute {
    const KIND: &'static str = "GRPCRoute";
    const API_VERSIONS: &'static [&'static str] = &[
        "gateway.networking.k8s.io/v1alpha2",
        "gateway.networking.k8s.io/v1",
    ];
}

/// `spec` of a [`GrpcRoute`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// What the route attaches to: a `Server` or a `Service`. At most 32.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::PARENT_REFS }, _, _>"
    )]
    pub parent_refs: Vec<ParentReference>,
    /// The hostnames the route applies to; empty means any. Each is a
    /// DNS name or a wildcard (`*.example.com`), as for an `HTTPRoute`.
    #[serde(default, deserialize_with = "super::hostname::hostnames")]
    pub hostnames: Vec<String>,
    /// The rules. At most 16, holding at most 128 matches together.
    /// Absent, `null` and `[]` are all no rules, and the route takes no
    /// calls: unlike an `HTTPRoute`'s, the `GRPCRoute` CRD's `rules` has
    /// no default (`GRPCRouteSpec.Rules` in `apis/v1/grpcroute_types.go`,
    /// kubernetes-sigs/gateway-api).
    #[serde(default, deserialize_with = "limits::rules")]
    pub rules: Vec<GrpcRouteRule>,
}

/// A `rules` entry of a [`GrpcRoute`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// `name` (GEP-995), used as the route's label when set.
    #[serde(default)]
    pub name: Option<String>,
    /// `matches`: a call matches the rule when it matches any of them.
    /// Empty means every call. At most 64.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::MATCHES }, _, _>"
    )]
    pub matches: Vec<GrpcRouteMatch>,
    /// `filters`, in order. At most 16, of the types the Gateway API
    /// allows a `GRPCRouteRule`: `RequestHeaderModifier` and
    /// `ResponseHeaderModifier` (each once), `RequestMirror` and
    /// `ExtensionRef`. Reading refuses any other, such as a
    /// `RequestRedirect`, which no gRPC client follows.
    #[serde(default, deserialize_with = "super::filter::grpc_filters")]
    pub filters: Vec<HttpRouteFilter>,
    /// `backendRefs`. At most 16.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::SIXTEEN }, _, _>"
    )]
    pub backend_refs: Vec<BackendReference>,
}

/// A `matches` entry of a [`GrpcRouteRule`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct GrpcRouteMatch {
    /// `method`; absent means every method of every service.
    #[serde(default)]
    pub method: Option<GrpcMethodMatch>,
    /// `headers`. At most 16.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::SIXTEEN }, _, _>"
    )]
    pub headers: Vec<HttpHeaderMatch>,
}

impl limits::HasMatches for GrpcRouteRule {
    fn matches(&self) -> usize {
        self.matches.len()
    }
}

/// `method` of a [`GrpcRouteMatch`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct GrpcMethodMatch {
    /// `type`; `Exact` when absent.
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    /// `service`, such as `emojivoto.v1.EmojiService`; absent means any.
    #[serde(default)]
    pub service: Option<String>,
    /// `method`, such as `ListAll`; absent means any.
    #[serde(default)]
    pub method: Option<String>,
}

impl GrpcRoute {
    /// The `HTTPRoute` this route amounts to, under the same name and
    /// kind: a gRPC call is a `POST` to `/{service}/{method}`, so a service
    /// and a method match that exact path, a service alone the prefix
    /// `/{service}/`, and a method alone any service's `/{method}`.
    ///
    /// # Errors
    ///
    /// A match with neither a service nor a method, a name that is not a
    /// gRPC name (`Exact`), or an expression that does not compile
    /// (`RegularExpression`), naming the field from the document's root
    /// (`spec.rules[0].matches[1].method.service`).
    pub fn to_http_route(&self) -> Result<HttpRoute, InvalidMatch> {
        let rules = self
            .spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                rule.to_http_rule()
                    .map_err(|e| e.within(&format!("spec.rules[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpRoute {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            spec: HttpRouteSpec {
                parent_refs: self.spec.parent_refs.clone(),
                hostnames: self.spec.hostnames.clone(),
                rules,
            },
        })
    }
}

impl GrpcRouteRule {
    fn to_http_rule(&self) -> Result<HttpRouteRule, InvalidMatch> {
        let matches = self
            .matches
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.to_http_match()
                    .map_err(|e| e.within(&format!("matches[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpRouteRule {
            name: self.name.clone(),
            matches,
            filters: self.filters.clone(),
            backend_refs: self.backend_refs.clone(),
            timeouts: None,
            retry: None,
        })
    }
}

impl GrpcRouteMatch {
    /// How specific the match is, as a key that sorts the least specific
    /// first: whether it names a service, whether it names a method, and
    /// how many headers it matches, compared in that order.
    ///
    /// The `HTTPRoute` match [`GrpcRoute::to_http_route`] makes of it
    /// cannot be ranked in its place. The Gateway API ranks `GRPCRoute`
    /// matches by "the largest number of characters in a matching
    /// service, then in a matching method, then the most header matches"
    /// (`GRPCRouteRule`), whereas by the `HTTPRoute` order a method alone
    /// (an expression over the path) would outrank a service alone (a path
    /// prefix). Two matches that both fit a call and both name its service
    /// name the same one, so counting characters comes down to whether a
    /// match names the service at all, and likewise the method; a name
    /// given by a regular expression matches the whole of the call's name
    /// and counts as given.
    pub fn precedence(&self) -> (bool, bool, usize) {
        let method = self.method.as_ref();
        (
            method.is_some_and(|m| m.service.is_some()),
            method.is_some_and(|m| m.method.is_some()),
            self.headers.len(),
        )
    }

    fn to_http_match(&self) -> Result<HttpRouteMatch, InvalidMatch> {
        Ok(HttpRouteMatch {
            path: self
                .method
                .as_ref()
                .map(|m| m.to_path().map_err(|e| e.within("method")))
                .transpose()?,
            headers: self.headers.clone(),
            query_params: Vec::new(),
            method: None,
        })
    }
}

impl GrpcMethodMatch {
    fn to_path(&self) -> Result<HttpPathMatch, InvalidMatch> {
        let (service, method) = (self.service.as_deref(), self.method.as_deref());
        if service.is_none() && method.is_none() {
            return Err(InvalidMatch::new(
                "service",
                InvalidMatchReason::Grpc("a method match names a service, a method or both"),
            ));
        }
        match self.kind {
            ValueMatchType::Exact => {
                check(
                    service,
                    "service",
                    is_service_name,
                    "a gRPC service is dot-separated names of letters, digits and _",
                )?;
                check(
                    method,
                    "method",
                    is_method_name,
                    "a gRPC method is a name of letters, digits and _",
                )?;
                Ok(match (service, method) {
                    (Some(s), Some(m)) => path(PathMatchType::Exact, format!("/{s}/{m}")),
                    (Some(s), None) => path(PathMatchType::PathPrefix, format!("/{s}/")),
                    (None, Some(m)) => {
                        path(PathMatchType::RegularExpression, format!("/[^/]+/{m}"))
                    }
                    (None, None) => path(PathMatchType::PathPrefix, "/".into()),
                })
            }
            ValueMatchType::RegularExpression => {
                for (value, field) in [(service, "service"), (method, "method")] {
                    if let Some(value) = value {
                        PathMatch::regex(value)
                            .map_err(|e| InvalidMatch::new(field, InvalidMatchReason::Route(e)))?;
                    }
                }
                let any = "(?:[^/]+)";
                let value = format!(
                    "/{}/{}",
                    service.map_or_else(|| any.into(), group),
                    method.map_or_else(|| any.into(), group)
                );
                Ok(path(PathMatchType::RegularExpression, value))
            }
        }
    }
}

/// `pattern`, which compiles on its own, as a group that keeps its
/// meaning with more after it. In `(?x)` mode a trailing `# comment` would
/// swallow the rest of the path's expression; a newline ends the comment
/// and is otherwise ignored there.
fn group(pattern: &str) -> String {
    let grouped = format!("(?:{pattern})");
    if regex::Regex::new(&grouped).is_ok() {
        grouped
    } else {
        format!("(?:{pattern}\n)")
    }
}

fn path(kind: PathMatchType, value: String) -> HttpPathMatch {
    HttpPathMatch { kind, value }
}

/// Checks `value`, if any, with `valid`, as the field `field`.
fn check(
    value: Option<&str>,
    field: &str,
    valid: fn(&str) -> bool,
    rule: &'static str,
) -> Result<(), InvalidMatch> {
    match value {
        Some(value) if !valid(value) => {
            Err(InvalidMatch::new(field, InvalidMatchReason::Grpc(rule)))
        }
        _ => Ok(()),
    }
}

/// The Gateway API's pattern for an exact service:
/// `\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*`, case-insensitive.
fn is_service_name(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    !s.is_empty() && s.split('.').all(is_method_name)
}

/// The Gateway API's pattern for an exact method: `[A-Za-z_][A-Za-z_0-9]*`.
fn is_method_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(service: Option<&str>, method: Option<&str>, headers: usize) -> GrpcRouteMatch {
        GrpcRouteMatch {
            method: Some(GrpcMethodMatch {
                kind: ValueMatchType::Exact,
                service: service.map(Into::into),
                method: method.map(Into::into),
            }),
            headers: (0..headers)
                .map(|i| HttpHeaderMatch {
                    kind: ValueMatchType::Exact,
                    name: format!("x-{i}"),
                    value: "1".into(),
                })
                .collect(),
        }
    }

    /// The `GRPCRouteRule` order, most specific first: a service before a
    /// method alone, however many headers the method's match has.
    #[test]
    fn a_service_outranks_a_method_alone_then_headers_decide() {
        let ranked = [
            m(Some("a.B"), Some("C"), 0),
            m(Some("a.B"), None, 1),
            m(Some("a.B"), None, 0),
            m(None, Some("C"), 3),
            m(None, Some("C"), 0),
            GrpcRouteMatch::default(),
        ];
        for pair in ranked.windows(2) {
            assert!(
                pair[0].precedence() > pair[1].precedence(),
                "{:?} before {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}
