//! The rule an `HTTPRoute` written without `rules` holds (the CRD's
//! default, the path prefix `/`), ranked against other routes' matches on
//! the same Server, and what `explain` says of a route left without rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::Uri;
use mesh_policy::{ExplainQuery, Policy, PolicyConfig};
use support::{T, Want};

/// The `web` Server on port 80, a NetworkAuthentication admitting every
/// address, and, for each `(name, spec rest)`, an `HTTPRoute` of that
/// name on the Server (created in that order, a day apart) with an
/// AuthorizationPolicy `{name}-to-all` targeting it.
fn policy(routes: &[(&str, &str)]) -> Policy {
    let mut text = format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web, namespace: ns}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: 80
  proxyProtocol: HTTP/1
---
{}",
        support::ALL_NETWORKS
    );
    for (day, (name, rest)) in routes.iter().enumerate() {
        text.push_str(&format!(
            "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: ns, creationTimestamp: '2024-01-0{}T00:00:00Z'}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
{rest}---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: {name}-to-all, namespace: ns}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: all}}]
",
            day + 1
        ));
    }
    support::compile(&text, &support::web_workload(), &PolicyConfig::default())
}

fn get(policy: &Policy, method: &str, uri: &str) -> Want {
    support::decide(policy, 80, T::Plain, Some("10.1.1.1"), method, uri, &[])
}

#[test]
fn an_exact_slash_elsewhere_outranks_the_default_rule_whatever_the_ages() {
    let exact = "  rules: [{matches: [{path: {type: Exact, value: /}}]}]\n";
    for routes in [
        [("all", ""), ("root", exact)],
        [("root", exact), ("all", "")],
    ] {
        let policy = policy(&routes);
        assert_eq!(
            get(&policy, "GET", "/"),
            Want::Allow("web", "root", "root-to-all")
        );
        for path in ["/x", "/x/y?z=1"] {
            assert_eq!(
                get(&policy, "GET", path),
                Want::Allow("web", "all", "all-to-all"),
                "{path}"
            );
        }
    }
}

#[test]
fn explain_names_no_route_for_what_a_route_without_rules_leaves() {
    let policy = policy(&[("none", "  rules: []\n")]);
    let mut query = ExplainQuery::new(80);
    query.uri = Uri::from_static("/x");
    let explained = policy.explain(&query);
    assert_eq!(explained.route, None, "{explained:?}");
    assert_eq!(explained.status, Some(404), "{explained:?}");
}

/// `OPTIONS *` asks the server itself; a route without rules takes it as
/// it takes every request, as it did when such a route was an empty
/// match and as Linkerd's prefix `/` matches it.
#[test]
fn the_default_rule_takes_options_asterisk() {
    let policy = policy(&[("all", "")]);
    assert_eq!(
        get(&policy, "OPTIONS", "*"),
        Want::Allow("web", "all", "all-to-all")
    );
}
