//! `HTTPRoute`: the Gateway API's HTTP routing resource, as Linkerd reads it.
//!
//! One type serves two readers. Authorization reads the routes whose parent
//! is a Linkerd `Server`: their matches narrow which requests an
//! `AuthorizationPolicy` admits. Outbound routing reads the routes whose
//! parent is a `Service`: their timeouts, retries and Linkerd's
//! `retry.linkerd.io/*` and `timeout.linkerd.io/*` annotations apply to the
//! requests they match; so do those whose parent is a Linkerd
//! `EgressNetwork`, for the traffic it captures on its way out of the
//! cluster. Each reader picks its routes with [`ParentReference::is_server`],
//! [`ParentReference::is_service`] or [`ParentReference::is_egress_network`].
//!
//! The model is faithful to the manifest: strings stay strings until
//! [`HttpRoute::rule_matches`] (or the per-rule and per-match forms) turns
//! the matches into [`RouteMatch`](crate::route::RouteMatch)es, with an error that names the field.
//! Filters of types that are modelled are typed, and
//! [`HttpRouteRule::route_filters`] turns them into the
//! [`RouteFilters`](crate::route::RouteFilters) a route applies; any other
//! filter, such as `RequestMirror`, is kept by its type name so a reader
//! can warn about it.
//!
//! Reading applies the Gateway API's rules on which filters one rule may
//! hold together, which the API server enforces before it stores a route
//! (the CEL validations of `HTTPRouteRule.filters` in its
//! `httproute_types.go`): at most one each of `RequestHeaderModifier`,
//! `ResponseHeaderModifier`, `RequestRedirect` and `URLRewrite`, and not
//! both a `RequestRedirect` and a `URLRewrite`. A route from a file thus
//! means what it would mean in a cluster, rather than what one reader's
//! merging of two header modifiers makes of it. A `GRPCRoute` rule holds
//! fewer types still (see [`GrpcRoute`]). The error names the filter
//! (`spec.rules[0].filters[2]`).

use serde::{Deserialize, Deserializer, de};

use super::{GatewayDuration, ObjectMeta, Resource, WholeNumber};

mod convert;
mod filter;
mod grpc;
mod hostname;
mod l4;
mod limits;

pub use self::{
    convert::{InvalidMatch, InvalidMatchReason},
    filter::{
        HeaderModifier, HttpHeader, HttpPathModifier, HttpRouteFilter, PathModifierType,
        RequestRedirect,
    },
    grpc::{GrpcMethodMatch, GrpcRoute, GrpcRouteMatch, GrpcRouteRule, GrpcRouteSpec},
    l4::{L4RouteRule, TcpRoute, TcpRouteSpec, TlsRoute, TlsRouteSpec},
};

/// The Gateway API group, the default group of a parent reference.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Linkerd's policy group, the group of `Server` and `EgressNetwork`
/// parents.
pub const POLICY_GROUP: &str = "policy.linkerd.io";

/// An `HTTPRoute` (`policy.linkerd.io/v1beta1`..`v1beta3`, or
/// `gateway.networking.k8s.io/v1alpha2`, `v1beta1` and `v1`).
///
/// `gateway.networking.k8s.io/v1alpha2` is read because Linkerd 2.17's
/// own Gateway API CRDs (bundle v0.7.1) serve `HTTPRoute`s at it, and its
/// documentation writes them so, as in its egress walkthrough; the
/// fields read here have the same shape at all three versions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// The `apiVersion` the route was written at.
    pub api_version: super::ApiVersion,
    /// Always `HTTPRoute`.
    pub kind: String,
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// The route itself.
    pub spec: HttpRouteSpec,
}

impl Resource for HttpRoute {
    const KIND: &'static str = "HTTPRoute";
    const API_VERSIONS: &'static [&'static str] = &[
        "policy.linkerd.io/v1beta1",
        "policy.linkerd.io/v1beta2",
        "policy.linkerd.io/v1beta3",
        "gateway.networking.k8s.io/v1alpha2",
        "gateway.networking.k8s.io/v1beta1",
        "gateway.networking.k8s.io/v1",
    ];
}

/// `spec` of an [`HttpRoute`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// What the route attaches to: a `Server`, a `Service` or a `Gateway`.
    /// At most 32.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::PARENT_REFS }, _, _>"
    )]
    pub parent_refs: Vec<ParentReference>,
    /// The hostnames the route applies to; empty means any. Each is a
    /// DNS name or a wildcard (`*.example.com`), lowercase, without a port,
    /// as the Gateway API requires; reading refuses any other.
    #[serde(default, deserialize_with = "hostname::hostnames")]
    pub hostnames: Vec<String>,
    /// The rules, each a set of matches and what to do with them. At most
    /// 16, holding at most 128 matches together.
    ///
    /// A route written without `rules` takes every request of its
    /// parents, so `rules` absent or `null` is read as the Gateway API
    /// CRD's default (`HTTPRouteSpec.Rules` in `apis/v1/httproute_types.go`,
    /// kubernetes-sigs/gateway-api), which the API server stores in its
    /// place: one rule with one match, the path prefix `/` (see
    /// [`HttpRouteRule::crd_default`]). `rules: []` is kept empty, as the
    /// API server keeps it: the CRD sets no minimum, and such a route
    /// takes no requests. ([`HttpRouteSpec::default`] has no rules.)
    #[serde(default = "crd_default_rules", deserialize_with = "http_rules")]
    pub rules: Vec<HttpRouteRule>,
}

/// The `rules` the `HTTPRoute` CRD gives a route written without them.
fn crd_default_rules() -> Vec<HttpRouteRule> {
    vec![HttpRouteRule::crd_default()]
}

/// `rules`: within the limits, and the CRD's default for `null`.
fn http_rules<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<HttpRouteRule>, D::Error> {
    limits::rules_or(deserializer, crd_default_rules)
}

/// A `parentRefs` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// `group`; the Gateway API's default is [`GATEWAY_GROUP`].
    #[serde(default)]
    pub group: Option<String>,
    /// `kind`; the Gateway API's default is `Gateway`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `namespace`; the route's own namespace when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `name` of the parent.
    pub name: String,
    /// `sectionName`: a named part of the parent (a listener, a port name).
    #[serde(default)]
    pub section_name: Option<String>,
    /// `port` of the parent, for a `Service` parent (or an
    /// `EgressNetwork`, where it is the destination port the route takes
    /// traffic to): 1 to 65535.
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
}

impl ParentReference {
    /// The group, with the Gateway API's default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GATEWAY_GROUP)
    }

    /// The kind, with the Gateway API's default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// Whether the parent is a Linkerd `Server` (group `policy.linkerd.io`).
    /// Group and kind are compared without regard to ASCII case, as
    /// Linkerd's policy controller compares them.
    pub fn is_server(&self) -> bool {
        self.group().eq_ignore_ascii_case(POLICY_GROUP)
            && self.kind().eq_ignore_ascii_case("Server")
    }

    /// Whether the parent is a Kubernetes `Service` (the core group, written
    /// `""` or `core`), compared as [`is_server`](Self::is_server) compares.
    pub fn is_service(&self) -> bool {
        let group = self.group();
        (group.is_empty() || group.eq_ignore_ascii_case("core"))
            && self.kind().eq_ignore_ascii_case("Service")
    }

    /// Whether the parent is a Linkerd `EgressNetwork` (group
    /// `policy.linkerd.io`), which attaches the route to the traffic the
    /// network captures as it leaves the cluster; compared as
    /// [`is_server`](Self::is_server) compares.
    pub fn is_egress_network(&self) -> bool {
        self.group().eq_ignore_ascii_case(POLICY_GROUP)
            && self.kind().eq_ignore_ascii_case("EgressNetwork")
    }
}

/// A `backendRefs` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendReference {
    /// `group`; the core group when absent.
    #[serde(default)]
    pub group: Option<String>,
    /// `kind`; `Service` when absent.
    #[serde(default)]
    pub kind: Option<String>,
    /// `name` of the backend.
    pub name: String,
    /// `namespace`; the route's own namespace when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `port` of the backend: 1 to 65535.
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
    /// `weight`, relative to the rule's other backends; 1 when absent, at
    /// most 1,000,000.
    #[serde(default, deserialize_with = "weight")]
    pub weight: Option<u32>,
}

impl BackendReference {
    /// Whether the backend is a Linkerd `EgressNetwork` (group
    /// `policy.linkerd.io`, which must be written: the default group is
    /// the core one), which Linkerd reads as the original destination of
    /// the traffic the network captured. Group and kind are compared
    /// without regard to ASCII case, as Linkerd's policy controller
    /// compares them.
    pub fn is_egress_network(&self) -> bool {
        self.group
            .as_deref()
            .is_some_and(|g| g.eq_ignore_ascii_case(POLICY_GROUP))
            && self
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("EgressNetwork"))
    }
}

/// The most a backend's weight may be: the Gateway API's limit.
pub const MAX_BACKEND_WEIGHT: u32 = 1_000_000;

/// A list without a limit of its own, `null` read as empty: the API
/// server drops the `null` of a list that is not nullable.
fn or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A port, 1 to 65535 as the Gateway API's `PortNumber`: port 0 is no port
/// a request arrives on or a connection goes to.
fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    let number = WholeNumber {
        what: "port",
        allowed: (1, WholeNumber::U16.1),
        holds: WholeNumber::U16,
    };
    match number.read_optional(deserializer)? {
        Some(0) => Err(de::Error::custom(
            "port 0 is not a port: a port is 1 to 65535",
        )),
        port => Ok(port),
    }
}

/// A backend's weight, 0 to 1,000,000 as the Gateway API allows.
fn weight<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let number = WholeNumber {
        what: "weight",
        allowed: (0, i64::from(MAX_BACKEND_WEIGHT)),
        holds: WholeNumber::U32,
    };
    match number.read_optional(deserializer)? {
        Some(weight) if weight > MAX_BACKEND_WEIGHT => Err(de::Error::custom(format_args!(
            "weight {weight} is above the limit of {MAX_BACKEND_WEIGHT}"
        ))),
        weight => Ok(weight),
    }
}

/// A `rules` entry: which requests, and what to do with them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// `name` (GEP-995), used as the route's label when set.
    #[serde(default)]
    pub name: Option<String>,
    /// `matches`: a request matches the rule when it matches any of them.
    /// Empty means every request (the Gateway API's default is one
    /// `PathPrefix /` match). At most 64.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::MATCHES }, _, _>"
    )]
    pub matches: Vec<HttpRouteMatch>,
    /// `filters`, in order. At most 16; reading refuses a second
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`,
    /// `RequestRedirect` or `URLRewrite`, and a `RequestRedirect` with a
    /// `URLRewrite`, as the Gateway API does.
    #[serde(default, deserialize_with = "filter::http_filters")]
    pub filters: Vec<HttpRouteFilter>,
    /// `backendRefs`. At most 16.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::SIXTEEN }, _, _>"
    )]
    pub backend_refs: Vec<BackendReference>,
    /// `timeouts` (GEP-1742).
    #[serde(default)]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// `retry` (GEP-1731).
    #[serde(default)]
    pub retry: Option<HttpRouteRetry>,
}

impl limits::HasMatches for HttpRouteRule {
    fn matches(&self) -> usize {
        self.matches.len()
    }
}

impl HttpRouteRule {
    /// The rule the `HTTPRoute` CRD defaults `rules` to,
    /// `{matches: [{path: {type: PathPrefix, value: /}}]}`: every request.
    pub fn crd_default() -> Self {
        Self {
            matches: vec![HttpRouteMatch {
                path: Some(HttpPathMatch {
                    kind: PathMatchType::PathPrefix,
                    value: root_path(),
                }),
                ..HttpRouteMatch::default()
            }],
            ..Self::default()
        }
    }

    /// The type names of the filters that are not modelled, such as
    /// `RequestMirror`, for a warning.
    pub fn unsupported_filters(&self) -> impl Iterator<Item = &str> {
        self.filters.iter().filter_map(|f| match f {
            HttpRouteFilter::Unsupported { type_name } => Some(type_name.as_str()),
            _ => None,
        })
    }
}

/// A `matches` entry. Every condition that is set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// `path`; absent means every path.
    #[serde(default)]
    pub path: Option<HttpPathMatch>,
    /// `headers`. At most 16. [`to_route_match`](Self::to_route_match)
    /// refuses a name written twice; of two names that differ only in
    /// case, it keeps the first, as the Gateway API says.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::SIXTEEN }, _, _>"
    )]
    pub headers: Vec<HttpHeaderMatch>,
    /// `queryParams`. At most 16. [`to_route_match`](Self::to_route_match)
    /// refuses a name written twice.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::SIXTEEN }, _, _>"
    )]
    pub query_params: Vec<HttpQueryParamMatch>,
    /// `method`, such as `GET`.
    #[serde(default)]
    pub method: Option<String>,
}

/// `path` of a match.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HttpPathMatch {
    /// `type`; `PathPrefix` when absent.
    #[serde(rename = "type", default)]
    pub kind: PathMatchType,
    /// `value`; `/` when absent. At most 1024 characters, as the Gateway
    /// API allows; reading refuses a longer one where it is written.
    #[serde(default = "root_path", deserialize_with = "path_value")]
    pub value: String,
}

fn root_path() -> String {
    "/".to_owned()
}

/// The longest path value the Gateway API allows (`HTTPPathMatch.value`).
const MAX_PATH_LEN: usize = 1024;

/// A path match's `value`, refused at its own line when it is longer
/// than the Gateway API allows. (A `GRPCRoute`'s paths are built, not
/// read: its service and method have limits of their own.)
fn path_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    super::scalar::parse_str(deserializer, "a path", |value: &str| {
        if value.len() > MAX_PATH_LEN {
            Err(format!(
                "the path is {} characters long; the Gateway API allows at most {MAX_PATH_LEN}",
                value.len()
            ))
        } else {
            Ok(value.to_owned())
        }
    })
}

/// How a path is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum PathMatchType {
    /// The path equals the value.
    Exact,
    /// The path starts with the value's elements.
    #[default]
    PathPrefix,
    /// The whole path matches the value as a regular expression.
    RegularExpression,
}

/// How a header or query parameter value is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum ValueMatchType {
    /// The value equals the given one.
    #[default]
    Exact,
    /// The whole value matches the given regular expression.
    RegularExpression,
}

/// A `headers` entry of a match.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HttpHeaderMatch {
    /// `type`; `Exact` when absent.
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    /// `name`, compared case-insensitively.
    pub name: String,
    /// `value`.
    pub value: String,
}

/// A `queryParams` entry of a match.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HttpQueryParamMatch {
    /// `type`; `Exact` when absent.
    #[serde(rename = "type", default)]
    pub kind: ValueMatchType,
    /// `name`, compared case-sensitively.
    pub name: String,
    /// `value`.
    pub value: String,
}

/// `timeouts` of a rule (GEP-1742).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// `request`: the whole request, every retry included. `0s` disables it.
    #[serde(default)]
    pub request: Option<GatewayDuration>,
    /// `backendRequest`: one attempt at a backend.
    #[serde(default)]
    pub backend_request: Option<GatewayDuration>,
}

/// `retry` of a rule (GEP-1731).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRetry {
    /// `codes`: the HTTP status codes that are retried. `null` is none,
    /// as the API server drops it.
    #[serde(default, deserialize_with = "or_null")]
    pub codes: Vec<u16>,
    /// `attempts`: the most retries for one request.
    #[serde(default, deserialize_with = "super::retry_count")]
    pub attempts: Option<u32>,
    /// `backoff`: the base wait between attempts.
    #[serde(default)]
    pub backoff: Option<GatewayDuration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Documents;

    fn read<T: Resource + for<'de> Deserialize<'de>>(text: &str) -> T {
        let doc = Documents::new("r.yaml", text)
            .next()
            .expect("a document")
            .expect("readable");
        doc.read::<T>().expect("a route").value
    }

    const HTTP: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                        metadata: {name: r}\nspec:\n  parentRefs: [{name: s}]\n";
    const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n\
                        metadata: {name: r}\nspec:\n  parentRefs: [{name: s}]\n";

    /// Absent and `null` are the CRD's default, one `PathPrefix /` match;
    /// an empty list stays empty, as the API server keeps it.
    #[test]
    fn http_route_rules_absent_or_null_are_the_crd_default_and_empty_stays_empty() {
        let default = vec![HttpRouteRule {
            matches: vec![HttpRouteMatch {
                path: Some(HttpPathMatch {
                    kind: PathMatchType::PathPrefix,
                    value: "/".into(),
                }),
                ..HttpRouteMatch::default()
            }],
            ..HttpRouteRule::default()
        }];
        for rest in ["", "  rules: null\n", "  rules:\n", "  rules: ~\n"] {
            let route: HttpRoute = read(&format!("{HTTP}{rest}"));
            assert_eq!(route.spec.rules, default, "{rest:?}");
        }
        let route: HttpRoute = read(&format!("{HTTP}  rules: []\n"));
        assert!(route.spec.rules.is_empty());
        let route: HttpRoute = read(&format!("{HTTP}  rules: [{{}}]\n"));
        assert_eq!(route.spec.rules, vec![HttpRouteRule::default()]);
    }

    /// Every list of a rule written `null` is read as left out, as the
    /// API server drops the `null` of a list that is not nullable: a rule
    /// with `filters: null` has no filters, as one without `filters`.
    #[test]
    fn a_rules_lists_written_null_are_left_out() {
        let rule = "  rules:\n  - matches: null\n    filters: null\n    backendRefs: null\n";
        let route: HttpRoute = read(&format!("{HTTP}{rule}"));
        assert_eq!(route.spec.rules, vec![HttpRouteRule::default()]);
        let route: GrpcRoute = read(&format!("{GRPC}{rule}"));
        assert_eq!(route.spec.rules, vec![GrpcRouteRule::default()]);
        let filters = "  rules:\n  - filters:\n";
        let route: HttpRoute = read(&format!("{HTTP}{filters}"));
        assert!(route.spec.rules[0].filters.is_empty());
        let retry = "  rules:\n  - retry: {codes: null, attempts: 2}\n";
        let route: HttpRoute = read(&format!("{HTTP}{retry}"));
        let retry = route.spec.rules[0].retry.as_ref().expect("a retry");
        assert!(retry.codes.is_empty());
        // Another type is still refused where it is written.
        let text = format!("{HTTP}  rules:\n  - filters: 5\n");
        let doc = Documents::new("r.yaml", &text)
            .next()
            .expect("a document")
            .expect("readable");
        let err = doc.read::<HttpRoute>().expect_err("filters: 5");
        assert_eq!(
            (err.field_path(), err.line()),
            ("spec.rules[0].filters", Some(7)),
            "{err}"
        );
    }

    /// The limits still hold for a written list.
    #[test]
    fn http_route_rules_over_the_limit_are_refused() {
        let rules =
            "  rules: [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}]\n";
        let text = format!("{HTTP}{rules}");
        let doc = Documents::new("r.yaml", &text)
            .next()
            .expect("a document")
            .expect("readable");
        let err = doc.read::<HttpRoute>().expect_err("17 rules").to_string();
        assert!(err.contains("at most 16"), "{err}");
    }

    /// A `GRPCRoute`'s CRD has no default for `rules`.
    #[test]
    fn grpc_route_rules_absent_null_or_empty_are_empty() {
        for rest in ["", "  rules: null\n", "  rules: []\n"] {
            let route: GrpcRoute = read(&format!("{GRPC}{rest}"));
            assert!(route.spec.rules.is_empty(), "{rest:?}");
            assert!(route.to_http_route().expect("valid").spec.rules.is_empty());
        }
    }
}
