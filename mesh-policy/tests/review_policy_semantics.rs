//! Authorization as Linkerd decides it: route policies beside the Server's,
//! audit, the cluster networks, identities, networks and their holes, and
//! Servers that cover nothing here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::IpAddr;

use http::Request;
use mesh_policy::{
    Client, ClientTls, DefaultPolicy, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore,
    WarningKind,
};
use support::{T::*, Want::*, *};

const WEB: &str = "spiffe://cluster.local/ns/ns/sa/web";
const WEB_DNS: &str = "web.ns.serviceaccount.identity.linkerd.cluster.local";
const OTHER: &str = "spiffe://cluster.local/ns/other/sa/x";
const OTHER_DNS: &str = "x.other.serviceaccount.identity.linkerd.cluster.local";

fn web(text: &str) -> mesh_policy::Policy {
    compile(text, &web_workload(), &PolicyConfig::default())
}

/// The Server and route of the reference tests, a policy on the Server
/// admitting 10.0.0.0/8, and one on the route admitting the `web` account.
fn server_and_route_policies() -> String {
    format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: ten, namespace: ns}}
spec: {{networks: [{{cidr: 10.0.0.0/8}}]}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: server-ten, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: ten}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: web-sa, namespace: ns}}
spec:
  identityRefs: [{{kind: ServiceAccount, name: web}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: route-web, namespace: ns}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-sa}}]
"
    )
}

/// linkerd2-proxy chains a Server's authorizations after each route's own
/// (`mk_authorizations` in `linkerd/proxy/server-policy`): a route policy
/// adds to the Server's, it does not replace them.
#[test]
fn a_route_policy_adds_to_the_servers_policies_and_unmatched_requests_get_404() {
    let policy = web(&server_and_route_policies());
    let out = Some("203.0.113.7");
    let inside = Some("10.1.2.3");
    assert_eq!(
        decide(&policy, 80, Plain, inside, "GET", "/api/x", &[]),
        Allow("web", "api", "server-ten")
    );
    assert_eq!(
        decide(&policy, 80, Id(WEB), out, "GET", "/api/x", &[]),
        Allow("web", "api", "route-web")
    );
    assert_eq!(
        decide(&policy, 80, Id(WEB_DNS), out, "GET", "/api", &[]),
        Allow("web", "api", "route-web")
    );
    assert_eq!(
        decide(&policy, 80, Id(OTHER), out, "GET", "/api", &[]),
        Deny("web")
    );
    assert_eq!(
        decide(&policy, 80, Plain, out, "GET", "/api", &[]),
        Deny("web")
    );
    // No route: 404 whoever asks, the route's admitted client included.
    for tls in [Plain, Id(WEB)] {
        assert_eq!(
            decide(&policy, 80, tls, inside, "GET", "/other", &[]),
            NotFound("web")
        );
    }
}

/// `audit` lets what no authorization admits through, flagged; what an
/// authorization admits is credited to it, not to audit.
#[test]
fn audit_allows_flagged_and_credits_the_authorizations_that_allow() {
    let text =
        server_and_route_policies().replace("  port: 80\n", "  port: 80\n  accessPolicy: audit\n");
    let policy = web(&text);
    let out = Some("203.0.113.7");
    assert_eq!(
        decide(&policy, 80, Plain, out, "GET", "/api", &[]),
        Audit("web", "api", "audit")
    );
    assert_eq!(
        decide(&policy, 80, Id(WEB), out, "GET", "/api", &[]),
        Allow("web", "api", "route-web")
    );
    assert_eq!(
        decide(&policy, 80, Plain, out, "GET", "/nothing", &[]),
        NotFound("web")
    );
    // On a port no Server covers, under an `audit` default.
    let config = PolicyConfig::default().with_default_policy(DefaultPolicy::Audit);
    let policy = compile(&text, &web_workload(), &config);
    assert_eq!(
        decide(&policy, 81, Plain, out, "GET", "/", &[]),
        Audit("audit", "default", "audit")
    );
}

/// The `cluster-*` policies admit the workload's cluster networks, not
/// Linkerd's defaults, when it names others.
#[test]
fn cluster_policies_use_the_configured_cluster_networks() {
    let workload = web_workload().with_cluster_networks(vec![
        "198.51.100.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ]);
    for (default, tls) in [
        (DefaultPolicy::ClusterUnauthenticated, Plain),
        (DefaultPolicy::ClusterAuthenticated, Id(WEB)),
    ] {
        let config = PolicyConfig::default().with_default_policy(default);
        let policy = compile("", &workload, &config);
        let name = default.as_str();
        let allowed = Allow(name, "default", name);
        for inside in ["198.51.100.9", "2001:db8::9", "::ffff:198.51.100.9"] {
            assert_eq!(
                decide(&policy, 80, tls, Some(inside), "GET", "/", &[]),
                allowed,
                "{default} from {inside}"
            );
        }
        for outside in ["10.1.2.3", "fd00::1", "::ffff:10.1.2.3"] {
            assert_eq!(
                decide(&policy, 80, tls, Some(outside), "GET", "/", &[]),
                Deny(name),
                "{default} from {outside}"
            );
        }
        assert_eq!(
            decide(&policy, 80, tls, None, "GET", "/", &[]),
            Deny(name),
            "{default} without an address"
        );
    }
    // `cluster-authenticated` asks for an identity too.
    let config = PolicyConfig::default().with_default_policy(DefaultPolicy::ClusterAuthenticated);
    let policy = compile("", &workload, &config);
    for tls in [Plain, NoCert] {
        assert_eq!(
            decide(&policy, 80, tls, Some("198.51.100.9"), "GET", "/", &[]),
            Deny("cluster-authenticated")
        );
    }
}

fn mesh_tls(spec: &str) -> String {
    format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: who, namespace: ns}}
spec:
{spec}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: by-id, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: who}}]
"
    )
}

#[test]
fn identity_refs_match_both_forms_of_the_accounts_they_name() {
    let policy = web(&mesh_tls(
        "  identityRefs:
    - {kind: ServiceAccount, name: web}
    - {kind: ServiceAccount, name: x, namespace: other}
    - {kind: Namespace, name: jobs}",
    ));
    let at = Some("203.0.113.7");
    for id in [
        WEB,
        WEB_DNS,
        OTHER,
        OTHER_DNS,
        "spiffe://cluster.local/ns/jobs/sa/any",
        "any.jobs.serviceaccount.identity.linkerd.cluster.local",
    ] {
        assert_eq!(
            decide(&policy, 80, Id(id), at, "GET", "/api", &[]),
            Allow("web", "api", "by-id"),
            "{id}"
        );
    }
    for id in [
        // Another namespace's account of the same name.
        "spiffe://cluster.local/ns/other/sa/web",
        "web.other.serviceaccount.identity.linkerd.cluster.local",
        // Another trust domain.
        "spiffe://example.org/ns/ns/sa/web",
        "web.ns.serviceaccount.identity.linkerd.example.org",
        // Not a service account of `jobs`, though under its prefix.
        "spiffe://cluster.local/ns/jobs/sa/a/b",
        "spiffe://cluster.local/ns/jobsx/sa/any",
        "any.jobsx.serviceaccount.identity.linkerd.cluster.local",
    ] {
        assert_eq!(
            decide(&policy, 80, Id(id), at, "GET", "/api", &[]),
            Deny("web"),
            "{id}"
        );
    }
}

#[test]
fn a_star_identity_admits_every_mesh_identity_and_no_client_without_one() {
    let policy = web(&mesh_tls("  identities: [\"*\"]"));
    let at = Some("203.0.113.7");
    for id in [WEB, OTHER_DNS, "spiffe://example.org/anything"] {
        assert_eq!(
            decide(&policy, 80, Id(id), at, "GET", "/api", &[]),
            Allow("web", "api", "by-id"),
            "{id}"
        );
    }
    for tls in [Plain, NoCert] {
        assert_eq!(
            decide(&policy, 80, tls, at, "GET", "/api", &[]),
            Deny("web"),
            "{tls:?}"
        );
    }
}

fn networks(list: &str) -> String {
    format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: nets, namespace: ns}}
spec:
  networks:
{list}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: by-net, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: nets}}]
"
    )
}

#[test]
fn network_holes_hold_for_ipv4_ipv6_and_mapped_clients() {
    let policy = web(&networks(
        "    - {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.4]}
    - {cidr: \"2001:db8::/32\", except: [\"2001:db8:1::/48\"]}",
    ));
    let allowed = Allow("web", "api", "by-net");
    for ip in ["10.0.0.1", "10.2.3.5", "::ffff:10.0.0.1", "2001:db8::1"] {
        assert_eq!(
            decide(&policy, 80, Plain, Some(ip), "GET", "/api", &[]),
            allowed,
            "{ip}"
        );
    }
    for ip in [
        "10.1.2.3",
        "10.2.3.4",
        "::ffff:10.1.2.3",
        "::ffff:10.2.3.4",
        "2001:db8:1::1",
        "11.0.0.1",
        "::ffff:11.0.0.1",
        // The IPv4-compatible form is not an IPv4 client.
        "::10.0.0.1",
    ] {
        assert_eq!(
            decide(&policy, 80, Plain, Some(ip), "GET", "/api", &[]),
            Deny("web"),
            "{ip}"
        );
    }
    // A client built by hand, not from a connection, with a mapped address.
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    let client = Client {
        tls: ClientTls::Plaintext,
        addr: Some(mapped),
    };
    let req = Request::get("/api").body(()).unwrap();
    assert!(!policy.evaluate(80, &client, &req).is_allowed());
}

/// An IPv6-only network does not admit IPv4 clients of a dual-stack
/// listener, nor an IPv4-only one IPv6 clients.
#[test]
fn families_do_not_cross() {
    let policy = web(&networks("    - {cidr: \"::/0\"}"));
    assert_eq!(
        decide(
            &policy,
            80,
            Plain,
            Some("::ffff:10.0.0.1"),
            "GET",
            "/api",
            &[]
        ),
        Deny("web")
    );
    assert_eq!(
        decide(&policy, 80, Plain, Some("2001:db8::1"), "GET", "/api", &[]),
        Allow("web", "api", "by-net")
    );
    let policy = web(&networks("    - {cidr: 0.0.0.0/0}"));
    assert_eq!(
        decide(&policy, 80, Plain, Some("2001:db8::1"), "GET", "/api", &[]),
        Deny("web")
    );
}

#[test]
fn a_target_that_names_nothing_is_refused_and_the_last_good_policy_stays() {
    let store = PolicyStore::new(
        web_workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("p.yaml", &server_and_route_policies())])
        .unwrap();
    let bad = server_and_route_policies().replace("name: api}", "name: apj}");
    let err = store
        .reload(&[PolicySource::new("p.yaml", &bad)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.targetRef.name"), "{err}");
    assert!(err.contains("apj"), "{err}");
    assert_eq!(
        decide(
            &store.load(),
            80,
            Id(WEB),
            Some("203.0.113.7"),
            "GET",
            "/api",
            &[]
        ),
        Allow("web", "api", "route-web")
    );
}

/// A Server that covers no port of this workload leaves every port to
/// the default policy; one naming a port the workload lacks says so.
#[test]
fn a_server_covering_no_port_here_leaves_the_default() {
    let text = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: named, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: admin-http
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: elsewhere, namespace: ns}
spec:
  podSelector: {matchLabels: {app: db}}
  port: 80
";
    let compiled = mesh_policy::Policy::compile(
        &[PolicySource::new("p.yaml", text)],
        &web_workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    assert_eq!(compiled.policy.covered_ports().count(), 0);
    let warned: Vec<_> = compiled
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::NotApplied)
        .map(|w| w.to_string())
        .collect();
    assert!(
        warned.iter().any(|w| w.contains("admin-http")),
        "{warned:?}"
    );
    for port in [80, 8080] {
        assert_eq!(
            decide(
                &compiled.policy,
                port,
                Plain,
                Some("203.0.113.7"),
                "GET",
                "/",
                &[]
            ),
            Allow("all-unauthenticated", "default", "all-unauthenticated")
        );
    }
}

/// `accessPolicy` is a field of `policy.linkerd.io/v1beta3` Servers only:
/// Linkerd's CRD has no such field at v1beta1 or v1beta2, so the API
/// server prunes it there (or `kubectl apply` refuses it as an unknown
/// field), and the port denies what no authorization allows. Honoured
/// here, `all-unauthenticated` would open to every client a port Linkerd
/// keeps shut.
#[test]
fn an_access_policy_on_a_server_before_v1beta3_is_refused() {
    for version in ["v1beta1", "v1beta2"] {
        let text = format!(
            "apiVersion: policy.linkerd.io/{version}
kind: Server
metadata: {{name: web, namespace: ns}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: 80
  accessPolicy: all-unauthenticated
"
        );
        let err = try_compile_web(&text).unwrap_err();
        assert_eq!(err.field_path(), "spec.accessPolicy", "{version}: {err}");
        assert_eq!(err.line(), Some(7), "{version}: {err}");
        assert_eq!(err.name(), Some("web"), "{version}: {err}");
        assert!(err.message().contains("v1beta3"), "{version}: {err}");
    }
    let text = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
  accessPolicy: all-unauthenticated
";
    let policy = web(text);
    assert_eq!(
        decide(&policy, 80, Plain, Some("203.0.113.7"), "GET", "/", &[]),
        Allow("web", "default", "all-unauthenticated")
    );
}

/// A service account reference that makes no identity is refused with a
/// message about the account, not about the SPIFFE path built from it
/// (an empty name read as "path ends with '/'").
#[test]
fn a_service_account_reference_that_makes_no_identity_names_the_account() {
    let mtls = |refs: &str| {
        format!(
            "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: who, namespace: ns}}
spec:
  identityRefs: [{refs}]
"
        )
    };
    let policy = |authn: &str| {
        format!(
            "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: by-sa, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{authn}]
"
        )
    };
    let server_authz = |accounts: &str| {
        format!(
            "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {{name: saz, namespace: ns}}
spec:
  server: {{name: web}}
  client:
    meshTLS:
      serviceAccounts: [{accounts}]
"
        )
    };
    for (text, field, says) in [
        (
            mtls("{kind: ServiceAccount, name: ''}"),
            "spec.identityRefs[0].name",
            "empty",
        ),
        (
            policy("{kind: ServiceAccount, name: ''}"),
            "spec.requiredAuthenticationRefs[0].name",
            "empty",
        ),
        (
            server_authz("{name: ''}"),
            "spec.client.meshTLS.serviceAccounts[0]",
            "empty",
        ),
        (
            mtls("{kind: ServiceAccount, name: 'a b'}"),
            "spec.identityRefs[0].name",
            "service account \"a b\" in namespace \"ns\"",
        ),
        (
            policy("{kind: ServiceAccount, name: x, namespace: 'a.b'}"),
            "spec.requiredAuthenticationRefs[0].name",
            "service account \"x\" in namespace \"a.b\"",
        ),
        (
            server_authz("{name: 'x/y'}"),
            "spec.client.meshTLS.serviceAccounts[0]",
            "service account \"x/y\" in namespace \"ns\"",
        ),
    ] {
        let err = try_compile_web(&text).unwrap_err();
        assert_eq!(err.field_path(), field, "{err}");
        assert!(err.message().contains(says), "{says:?} in {err}");
        assert!(!err.message().starts_with("path "), "{err}");
    }
}

/// A policy that targets a route no Server serves (an outbound route,
/// whose parents are Services, or one under a Gateway) authorizes
/// nothing, as in Linkerd; it says so rather than compiling silently.
#[test]
fn a_policy_on_a_route_without_a_server_parent_is_warned_about() {
    for parent in [
        "{group: core, kind: Service, name: web}",
        "{kind: Service, name: web, port: 80}",
        "{group: policy.linkerd.io, kind: EgressNetwork, name: egress, port: 80}",
        "{group: gateway.networking.k8s.io, kind: Gateway, name: gw}",
    ] {
        let text = format!(
            "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web, namespace: ns}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: out, namespace: ns}}
spec:
  parentRefs: [{parent}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /api}}}}]}}]
---
{ALL_NETWORKS}---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: ap, namespace: ns}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: out}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: all}}]
"
        );
        let compiled = mesh_policy::Policy::compile(
            &[PolicySource::new("p.yaml", &text)],
            &web_workload(),
            &PolicyConfig::default(),
            &PolicyMetrics::default(),
        )
        .unwrap();
        let about_policy: Vec<_> = compiled
            .warnings
            .iter()
            .filter(|w| w.resource_kind == "AuthorizationPolicy")
            .collect();
        assert_eq!(about_policy.len(), 1, "{parent}: {}", compiled.warnings);
        let w = about_policy[0];
        assert_eq!(w.kind, WarningKind::NotApplied, "{w}");
        assert_eq!(w.name.as_deref(), Some("ap"), "{w}");
        assert_eq!(w.document, 4, "{w}");
        assert_eq!(w.field_path, "spec.targetRef", "{w}");
        assert!(w.message.contains("HTTPRoute ns/out"), "{w}");
        assert!(w.message.contains("authorizes nothing"), "{w}");
        // A parentRef without a group is of the Gateway API's group, so
        // `{kind: Service}` alone names no core Service.
        assert_eq!(
            w.message.contains("(an outbound route)"),
            parent.contains("core") || parent.contains("EgressNetwork"),
            "{parent}: {w}"
        );
        // And it does authorize nothing: the Server denies.
        assert_eq!(
            decide(
                &compiled.policy,
                80,
                Plain,
                Some("10.0.0.1"),
                "GET",
                "/api",
                &[]
            ),
            Deny("web"),
            "{parent}"
        );
    }
}
