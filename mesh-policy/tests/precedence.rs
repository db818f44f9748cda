//! Which route a request takes when several match: the Gateway API's
//! precedence, as Linkerd's proxy applies it to a Server's `HTTPRoute`s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::{ResourceError, ResourceErrorKind};
use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};
use support::{T::*, Want::*, *};

const IN: Option<&str> = Some("10.1.2.3");

/// A Server on port 80, and `routes`, each open to every client.
fn policy_with(routes: &[(&str, &str)]) -> mesh_policy::Policy {
    let routes: Vec<_> = routes
        .iter()
        .map(|&(name, spec)| (name, None, spec))
        .collect();
    compile(
        &policy_text(&routes),
        &Workload::new("ns"),
        &PolicyConfig::default(),
    )
}

/// As [`policy_with`], each route with its `metadata.creationTimestamp`
/// when it has one.
fn policy_text(routes: &[(&str, Option<&str>, &str)]) -> String {
    let mut text = String::from(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 80
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: all}
spec:
  networks: [{cidr: 0.0.0.0/0}]
",
    );
    for (name, created, spec) in routes {
        let created = created
            .map(|t| format!(", creationTimestamp: \"{t}\""))
            .unwrap_or_default();
        text.push_str(&format!(
            "---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {{name: {name}{created}}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
{spec}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: {name}-all}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: HTTPRoute, name: {name}}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: all}}]
"
        ));
    }
    text
}

fn try_compile(text: &str) -> Result<mesh_policy::Policy, ResourceError> {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &Workload::new("ns"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|c| c.policy)
}

fn route(policy: &mesh_policy::Policy, method: &str, uri: &str) -> Want {
    decide(policy, 80, Plain, IN, method, uri, &[])
}

fn allowed(route: &'static str, authz: &'static str) -> Want {
    Allow("web", route, authz)
}

#[test]
fn a_match_without_a_path_is_a_prefix_match_on_the_root() {
    // Gateway API, HTTPRouteMatch.path: "Default: {type: PathPrefix,
    // value: /}". So a method match on no path outranks a bare `/` prefix,
    // as a method match on `/` would.
    let policy = policy_with(&[
        (
            "root",
            "  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]",
        ),
        ("posts", "  rules: [{matches: [{method: POST}]}]"),
    ]);
    assert_eq!(
        route(&policy, "POST", "/anything"),
        allowed("posts", "posts-all")
    );
    assert_eq!(
        route(&policy, "GET", "/anything"),
        allowed("root", "root-all")
    );
}

#[test]
fn a_rule_without_matches_ties_with_a_root_prefix_and_the_first_route_by_name_wins() {
    // Gateway API, HTTPRouteRule.matches: "If no matches are specified,
    // the default is a prefix path match on "/"". Equal matches of routes
    // without a creation time go to the first by name.
    let policy = policy_with(&[
        ("everything", "  rules: [{}]"),
        (
            "root",
            "  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]",
        ),
    ]);
    assert_eq!(
        route(&policy, "GET", "/x"),
        allowed("everything", "everything-all")
    );
    // And a longer prefix still beats both.
    let policy = policy_with(&[
        ("everything", "  rules: [{}]"),
        (
            "api",
            "  rules: [{matches: [{path: {type: PathPrefix, value: /api}}]}]",
        ),
    ]);
    assert_eq!(route(&policy, "GET", "/api/v1"), allowed("api", "api-all"));
    assert_eq!(
        route(&policy, "GET", "/apiv1"),
        allowed("everything", "everything-all")
    );
}

#[test]
fn a_route_whose_hostname_matches_outranks_one_without_hostnames() {
    // Gateway API, HTTPRouteSpec.hostnames: precedence goes to the route
    // with the most characters in a matching non-wildcard hostname, then
    // in a matching hostname, and only then to the rules' matches.
    // linkerd2-proxy ranks a route's host match (none, suffix, exact)
    // before its request match.
    let policy = policy_with(&[
        (
            "admin",
            "  rules: [{matches: [{path: {type: Exact, value: /admin}}]}]",
        ),
        (
            "api",
            "  hostnames: [api.example.com]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]",
        ),
    ]);
    assert_eq!(
        route(&policy, "GET", "http://api.example.com/admin"),
        allowed("api", "api-all")
    );
    assert_eq!(
        decide(
            &policy,
            80,
            Plain,
            IN,
            "GET",
            "/admin",
            &[("host", "API.example.com:80")]
        ),
        allowed("api", "api-all"),
        "the Host header of an HTTP/1 request, any case, with a port"
    );
    assert_eq!(
        route(&policy, "GET", "http://www.example.com/admin"),
        allowed("admin", "admin-all")
    );
    assert_eq!(
        route(&policy, "GET", "/admin"),
        allowed("admin", "admin-all")
    );
}

#[test]
fn an_exact_hostname_outranks_a_wildcard_and_a_longer_wildcard_a_shorter() {
    let policy = policy_with(&[
        (
            "wild",
            "  hostnames: [\"*.example.com\"]
  rules: [{matches: [{path: {type: Exact, value: /api/x}}]}]",
        ),
        (
            "exact",
            "  hostnames: [api.example.com]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]",
        ),
        (
            "wilder",
            "  hostnames: [\"*.v1.example.com\"]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]",
        ),
    ]);
    assert_eq!(
        route(&policy, "GET", "http://api.example.com/api/x"),
        allowed("exact", "exact-all")
    );
    assert_eq!(
        route(&policy, "GET", "http://www.example.com/api/x"),
        allowed("wild", "wild-all")
    );
    assert_eq!(
        route(&policy, "GET", "http://a.v1.example.com/api/x"),
        allowed("wilder", "wilder-all")
    );
    // Only the wildcard route's path decides on hosts no other route names.
    assert_eq!(
        route(&policy, "GET", "http://www.example.com/other"),
        NotFound("web")
    );
}

#[test]
fn a_route_without_rules_matches_every_request() {
    // Gateway API, HTTPRouteSpec.rules:
    // `+kubebuilder:default={{matches: {{path: {type: "PathPrefix", value: "/"}}}}}`,
    // so the API server stores a route written without rules as one rule
    // matching everything.
    let policy = policy_with(&[("all", "")]);
    assert_eq!(route(&policy, "GET", "/"), allowed("all", "all-all"));
    assert_eq!(
        route(&policy, "POST", "/any/path?q=1"),
        allowed("all", "all-all")
    );
}

/// The same match on two routes, for the ties below.
const SAME: &str = "  rules: [{matches: [{path: {type: PathPrefix, value: /api}}]}]";

#[test]
fn a_tie_goes_to_the_older_route_wherever_it_is_written() {
    // Gateway API, HTTPRouteRule: ties go to "the oldest Route based on
    // creation timestamp", then to the Route "appearing first in
    // alphabetical order by {namespace}/{name}". The older route here
    // comes second both in the text and by name.
    let text = policy_text(&[
        ("a-newer", Some("2024-05-02T00:00:00Z"), SAME),
        ("b-older", Some("2024-05-01T23:59:59.5Z"), SAME),
    ]);
    let policy = try_compile(&text).unwrap();
    assert_eq!(
        route(&policy, "GET", "/api/x"),
        allowed("b-older", "b-older-all")
    );
    // Times with offsets compare as the instants they name: 01:00+02:00
    // is 23:00 the day before, older than b-older.
    let text = policy_text(&[
        ("b-older", Some("2024-05-01T23:59:59.5Z"), SAME),
        ("c-oldest", Some("2024-05-02T01:00:00+02:00"), SAME),
    ]);
    let policy = try_compile(&text).unwrap();
    assert_eq!(
        route(&policy, "GET", "/api/x"),
        allowed("c-oldest", "c-oldest-all")
    );
    // A more specific match still outranks an older route.
    let text = policy_text(&[
        ("old", Some("2020-01-01T00:00:00Z"), SAME),
        (
            "new",
            Some("2024-01-01T00:00:00Z"),
            "  rules: [{matches: [{path: {type: PathPrefix, value: /api/x}}]}]",
        ),
    ]);
    let policy = try_compile(&text).unwrap();
    assert_eq!(route(&policy, "GET", "/api/x"), allowed("new", "new-all"));
    assert_eq!(route(&policy, "GET", "/api/y"), allowed("old", "old-all"));
}

#[test]
fn without_creation_times_a_tie_goes_to_the_first_route_by_name() {
    let text = policy_text(&[("zeta", None, SAME), ("alpha", None, SAME)]);
    let policy = try_compile(&text).unwrap();
    assert_eq!(
        route(&policy, "GET", "/api/x"),
        allowed("alpha", "alpha-all")
    );
    // A route without a time (which, applied now, would be the newest)
    // comes after one with a time, whatever their names.
    let text = policy_text(&[
        ("alpha", None, SAME),
        ("zeta", Some("2024-05-01T00:00:00Z"), SAME),
    ]);
    let policy = try_compile(&text).unwrap();
    assert_eq!(route(&policy, "GET", "/api/x"), allowed("zeta", "zeta-all"));
}

#[test]
fn a_creation_time_that_is_not_rfc_3339_is_an_error_naming_it() {
    let text = policy_text(&[
        ("good", Some("2024-05-01T00:00:00Z"), SAME),
        ("bad", Some("2024-05-01 00:00:00"), SAME),
    ]);
    let err = try_compile(&text).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
    assert_eq!(err.field_path(), "metadata.creationTimestamp", "{err}");
    // The Server, the NetworkAuthentication, then each route and its
    // AuthorizationPolicy: the bad route is the fifth document.
    assert_eq!(err.document(), Some(5), "{err}");
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some("HTTPRoute"), Some("bad")),
        "{err}"
    );
    assert!(err.to_string().contains("2024-05-01 00:00:00"), "{err}");
}
