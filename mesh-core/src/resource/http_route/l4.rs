//! `TLSRoute` and `TCPRoute`: the Gateway API's routes for connections
//! rather than requests.
//!
//! Linkerd 2.17 routes traffic that is not plain HTTP with them: a
//! `TLSRoute` takes a TLS connection by the SNI its ClientHello names,
//! compared with the route's `hostnames`, and a `TCPRoute` every
//! connection to its parent's port. Their parents are the same as an
//! `HTTPRoute`'s (a `Service`, or an `EgressNetwork` for the traffic that
//! leaves the cluster), so they reuse [`ParentReference`] and
//! [`BackendReference`], and a `TLSRoute`'s `hostnames` are checked as an
//! `HTTPRoute`'s are. Their rules have no matches: a rule is a list of
//! backends, and a reader decides which route a connection takes from the
//! parent's port and, for TLS, the SNI.
//!
//! Reading refuses what the API server refuses (the CRDs of
//! `apis/v1alpha2/tlsroute_types.go` and `tcproute_types.go` in
//! kubernetes-sigs/gateway-api): a route without `rules`, or with none or
//! more than 16; a `backendRefs` written empty or with more than 16
//! entries. A rule without `backendRefs` (or with `backendRefs: null`,
//! which the API server drops) is kept, with none: Linkerd sends its
//! connections to the parent itself.

use serde::{Deserialize, Deserializer};

use super::{BackendReference, ParentReference, hostname, limits};
use crate::resource::{ApiVersion, ObjectMeta, Resource};

/// A `TLSRoute` (`gateway.networking.k8s.io/v1alpha2`, `v1alpha3` or
/// `v1`).
///
/// `v1alpha2` is the version Linkerd 2.17's bundled Gateway API CRDs
/// serve and its egress walkthrough writes; `v1alpha3` (Gateway API 1.2
/// to 1.4) and `v1` (1.5, the standard channel) hold the same fields. The
/// limits read are `v1alpha2`'s: `v1` requires one hostname or more and
/// one rule, and allows up to 1024 hostnames, where this reader keeps to
/// 16.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// The `apiVersion` the route was written at.
    pub api_version: ApiVersion,
    /// Always `TLSRoute`.
    pub kind: String,
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// The route itself.
    pub spec: TlsRouteSpec,
}

impl Resource for TlsRoute {
    const KIND: &'static str = "TLSRoute";
    const API_VERSIONS: &'static [&'static str] = &[
        "gateway.networking.k8s.io/v1alpha2",
        "gateway.networking.k8s.io/v1alpha3",
        "gateway.networking.k8s.io/v1",
    ];
}

/// `spec` of a [`TlsRoute`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRouteSpec {
    /// What the route attaches to. At most 32.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::PARENT_REFS }, _, _>"
    )]
    pub parent_refs: Vec<ParentReference>,
    /// The SNI names the route takes connections for; empty means any.
    /// Each is a DNS name or a wildcard (`*.example.com`), lowercase, as
    /// for an `HTTPRoute`; reading refuses any other. At most 16.
    #[serde(default, deserialize_with = "hostname::hostnames")]
    pub hostnames: Vec<String>,
    /// The rules: 1 to 16, required.
    #[serde(deserialize_with = "rules")]
    pub rules: Vec<L4RouteRule>,
}

/// A `TCPRoute` (`gateway.networking.k8s.io/v1alpha2`, the version the
/// Gateway API serves it at and Linkerd 2.17 reads).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// The `apiVersion` the route was written at.
    pub api_version: ApiVersion,
    /// Always `TCPRoute`.
    pub kind: String,
    /// Name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// The route itself.
    pub spec: TcpRouteSpec,
}

impl Resource for TcpRoute {
    const KIND: &'static str = "TCPRoute";
    const API_VERSIONS: &'static [&'static str] = &["gateway.networking.k8s.io/v1alpha2"];
}

/// `spec` of a [`TcpRoute`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRouteSpec {
    /// What the route attaches to. At most 32.
    #[serde(
        default,
        deserialize_with = "limits::at_most::<{ limits::PARENT_REFS }, _, _>"
    )]
    pub parent_refs: Vec<ParentReference>,
    /// The rules: 1 to 16, required.
    #[serde(deserialize_with = "rules")]
    pub rules: Vec<L4RouteRule>,
}

/// A `rules` entry of a [`TlsRoute`] or a [`TcpRoute`] (`TLSRouteRule`,
/// `TCPRouteRule`): where the connections go. It has no matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L4RouteRule {
    /// `name` (GEP-995).
    #[serde(default)]
    pub name: Option<String>,
    /// `backendRefs`: absent, none (the parent itself takes the
    /// connections); written, 1 to 16.
    #[serde(default, deserialize_with = "backend_refs")]
    pub backend_refs: Vec<BackendReference>,
}

fn rules<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<L4RouteRule>, D::Error> {
    limits::one_to::<{ limits::SIXTEEN }, D, L4RouteRule>(deserializer, true)
}

/// `backendRefs`: 1 to 16 when written; `null` is none, as absent is.
fn backend_refs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<BackendReference>, D::Error> {
    limits::one_to::<{ limits::SIXTEEN }, D, BackendReference>(deserializer, false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::resource::{ResourceErrorKind, load};

    use super::*;

    /// The `TLSRoute` of Linkerd 2.17's egress walkthrough, as written there.
    const WALKTHROUGH: &str = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata:
  name: tls-egress
  namespace: egress-test
spec:
  hostnames:
  - httpbin.org
  parentRefs:
  - name: all-egress-traffic
    kind: EgressNetwork
    group: policy.linkerd.io
    namespace: egress-test
    port: 443
  rules:
  - backendRefs:
    - kind: EgressNetwork
      group: policy.linkerd.io
      name: all-egress-traffic
";

    #[test]
    fn the_walkthroughs_tls_route_reads() {
        let loaded = load::<TlsRoute>("egress.yaml", WALKTHROUGH).unwrap();
        let route = &loaded.resources[0];
        assert_eq!(route.metadata.name, "tls-egress");
        assert_eq!(route.spec.hostnames, ["httpbin.org"]);
        let parent = &route.spec.parent_refs[0];
        assert!(parent.is_egress_network());
        assert_eq!(parent.port, Some(443));
        let backend = &route.spec.rules[0].backend_refs[0];
        assert!(backend.is_egress_network());
        assert_eq!(backend.port, None);
        // At v1alpha3 and v1 too.
        for version in ["v1alpha3", "v1"] {
            let text = WALKTHROUGH.replace("v1alpha2", version);
            assert_eq!(
                load::<TlsRoute>("egress.yaml", &text)
                    .unwrap()
                    .resources
                    .len(),
                1
            );
        }
    }

    #[test]
    fn a_tcp_route_reads_and_a_tls_version_it_lacks_is_refused() {
        let text = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: egress-test}
spec:
  parentRefs: [{name: all-egress-traffic, kind: EgressNetwork, group: policy.linkerd.io, port: 5432}]
  rules:
  - backendRefs: [{name: pg-proxy, port: 5432, weight: 3}]
";
        let loaded = load::<TcpRoute>("egress.yaml", text).unwrap();
        let rule = &loaded.resources[0].spec.rules[0];
        assert_eq!(rule.backend_refs[0].port, Some(5432));
        assert_eq!(rule.backend_refs[0].weight, Some(3));
        let err =
            load::<TcpRoute>("egress.yaml", &text.replace("v1alpha2", "v1alpha3")).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::UnsupportedVersion, "{err}");
    }

    #[test]
    fn hostnames_are_checked_as_an_http_routes_are() {
        let text = WALKTHROUGH.replace("- httpbin.org", "- httpbin.org:443");
        let err = load::<TlsRoute>("egress.yaml", &text).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
        assert_eq!(err.field_path(), "spec.hostnames[0]", "{err}");
        assert_eq!(err.line(), Some(8), "{err}");
        let text = WALKTHROUGH.replace("- httpbin.org", "- '*.httpbin.org'");
        let loaded = load::<TlsRoute>("egress.yaml", &text).unwrap();
        assert_eq!(loaded.resources[0].spec.hostnames, ["*.httpbin.org"]);
    }

    #[test]
    fn rules_are_required_and_a_written_backend_list_is_not_empty() {
        let head = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db}
spec:
  parentRefs: [{name: net, kind: EgressNetwork, group: policy.linkerd.io}]
";
        let err = load::<TcpRoute>("r.yaml", head).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::MissingField, "{err}");
        let err = load::<TcpRoute>("r.yaml", &format!("{head}  rules: []\n")).unwrap_err();
        assert_eq!(err.field_path(), "spec.rules", "{err}");
        assert!(err.to_string().contains("requires 1 to 16"), "{err}");
        let err = load::<TcpRoute>("r.yaml", &format!("{head}  rules: [{{backendRefs: []}}]\n"))
            .unwrap_err();
        assert_eq!(err.field_path(), "spec.rules[0].backendRefs", "{err}");
        // Absent, the rule has none: the parent takes its connections.
        let loaded = load::<TcpRoute>("r.yaml", &format!("{head}  rules: [{{}}]\n")).unwrap();
        assert!(loaded.resources[0].spec.rules[0].backend_refs.is_empty());
    }

    /// The API server drops a `null` it is sent for a list, so a list
    /// written `null` is one left out: `backendRefs: null` is a rule
    /// without backends, and `rules: null` a route without its required
    /// rules, refused at that line for what it is, not as an empty list.
    /// `rules: []` is refused at its own line.
    #[test]
    fn a_null_list_is_one_left_out() {
        let head = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db}
spec:
  parentRefs: [{name: net, kind: EgressNetwork, group: policy.linkerd.io}]
";
        for rules in [
            "  rules: [{backendRefs: null}]\n",
            "  rules:\n  - backendRefs:\n",
        ] {
            let loaded = load::<TcpRoute>("r.yaml", &format!("{head}{rules}"))
                .unwrap_or_else(|e| panic!("{rules:?}: {e}"));
            assert!(loaded.resources[0].spec.rules[0].backend_refs.is_empty());
        }
        for rules in ["  rules: null\n", "  rules:\n"] {
            let err = load::<TcpRoute>("r.yaml", &format!("{head}{rules}")).unwrap_err();
            assert_eq!(err.field_path(), "spec.rules", "{err}");
            assert_eq!(err.line(), Some(6), "{err}");
            assert!(err.to_string().contains("null"), "{err}");
            assert!(!err.to_string().contains("empty"), "{err}");
        }
        let err = load::<TlsRoute>("r.yaml", &WALKTHROUGH.replace("  rules:\n  - backendRefs:\n    - kind: EgressNetwork\n      group: policy.linkerd.io\n      name: all-egress-traffic\n", "  rules: null\n"))
            .unwrap_err();
        assert_eq!(
            (err.field_path(), err.line()),
            ("spec.rules", Some(15)),
            "{err}"
        );
        let err = load::<TcpRoute>("r.yaml", &format!("{head}  rules: []\n")).unwrap_err();
        assert_eq!(
            (err.field_path(), err.line()),
            ("spec.rules", Some(6)),
            "{err}"
        );
    }
}
