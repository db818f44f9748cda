//! The decision table: every resource kind, every default policy, route
//! matches, CIDR exceptions, identity wildcards, audit, probes and routes
//! not found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_policy::{DefaultPolicy, Policy, PolicyConfig, PolicyMetrics, Workload};
use support::{T::*, Want::*, *};

const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";
const TRAFFIC: &str = "spiffe://cluster.local/ns/booksapp/sa/traffic";
const ADMIN: &str = "spiffe://cluster.local/ns/booksapp/sa/admin";
const MONITOR: &str = "monitor.booksapp.serviceaccount.identity.linkerd.cluster.local";
const STRANGER: &str = "spiffe://cluster.local/ns/other/sa/x";
const IN: Option<&str> = Some("10.1.2.3");
const OUT: Option<&str> = Some("203.0.113.7");

type Case = (
    &'static str,
    u16,
    support::T,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    support::Want,
);

const BOOKS_CASES: &[Case] = &[
    // HTTPRoute + AuthorizationPolicy + MeshTLSAuthentication (exact identity).
    (
        "route prefix, exact identity",
        8080,
        Id(WEBAPP),
        IN,
        "GET",
        "/authors/1",
        &[],
        Allow("books-http", "authors-get", "authors-get-policy"),
    ),
    (
        "identityRef to a ServiceAccount (SPIFFE form)",
        8080,
        Id(TRAFFIC),
        IN,
        "GET",
        "/authors",
        &[],
        Allow("books-http", "authors-get", "authors-get-policy"),
    ),
    (
        "plaintext on a covered port is denied",
        8080,
        Plain,
        IN,
        "GET",
        "/authors",
        &[],
        Deny("books-http"),
    ),
    (
        "an identity nobody authorized is denied",
        8080,
        Id(STRANGER),
        IN,
        "GET",
        "/authors",
        &[],
        Deny("books-http"),
    ),
    (
        "second match of a rule: exact path",
        8080,
        Id(WEBAPP),
        IN,
        "GET",
        "/",
        &[],
        Allow("books-http", "authors-get", "authors-get-policy"),
    ),
    (
        "no route matches: not found",
        8080,
        Id(WEBAPP),
        IN,
        "GET",
        "/other",
        &[],
        NotFound("books-http"),
    ),
    (
        "prefixes match whole segments",
        8080,
        Id(WEBAPP),
        IN,
        "GET",
        "/authorsX",
        &[],
        NotFound("books-http"),
    ),
    (
        "method decides between routes",
        8080,
        Id(WEBAPP),
        IN,
        "PUT",
        "/authors",
        &[],
        NotFound("books-http"),
    ),
    // ServiceAccount + NetworkAuthentication: all must match.
    (
        "all authentications match",
        8080,
        Id(ADMIN),
        IN,
        "POST",
        "/authors",
        &[("x-role", "admin")],
        Allow("books-http", "authors-modify", "authors-modify-policy"),
    ),
    (
        "cidr except excludes a subnet",
        8080,
        Id(ADMIN),
        Some("10.9.1.1"),
        "POST",
        "/authors",
        &[("x-role", "admin")],
        Deny("books-http"),
    ),
    (
        "identity alone is not enough",
        8080,
        Id(ADMIN),
        OUT,
        "POST",
        "/authors",
        &[("x-role", "admin")],
        Deny("books-http"),
    ),
    (
        "network alone is not enough",
        8080,
        Plain,
        IN,
        "POST",
        "/authors",
        &[("x-role", "admin")],
        Deny("books-http"),
    ),
    (
        "header match required",
        8080,
        Id(ADMIN),
        IN,
        "POST",
        "/authors",
        &[],
        NotFound("books-http"),
    ),
    (
        "header value must match",
        8080,
        Id(ADMIN),
        IN,
        "POST",
        "/authors",
        &[("x-role", "user")],
        NotFound("books-http"),
    ),
    (
        "regex path on IPv6 network",
        8080,
        Id(ADMIN),
        Some("fd00::1"),
        "DELETE",
        "/authors/42",
        &[],
        Allow("books-http", "authors-modify", "authors-modify-policy"),
    ),
    (
        "IPv6 except",
        8080,
        Id(ADMIN),
        Some("fd00:bad::1"),
        "DELETE",
        "/authors/42",
        &[],
        Deny("books-http"),
    ),
    (
        "regex matches the whole path",
        8080,
        Id(ADMIN),
        IN,
        "DELETE",
        "/authors/abc",
        &[],
        NotFound("books-http"),
    ),
    (
        "hostname and query match, network only",
        8080,
        Plain,
        IN,
        "GET",
        "http://books.booksapp.svc.cluster.local/search?q=rust",
        &[],
        Allow("books-http", "books-search", "search-public"),
    ),
    (
        "host header is read too",
        8080,
        Plain,
        IN,
        "GET",
        "/search?q=rust",
        &[("host", "books.booksapp.svc.cluster.local:8080")],
        Allow("books-http", "books-search", "search-public"),
    ),
    (
        "wildcard hostname",
        8080,
        Plain,
        IN,
        "GET",
        "http://api.example.com/search?q=rust",
        &[],
        Allow("books-http", "books-search", "search-public"),
    ),
    (
        "wildcard needs a label before the suffix",
        8080,
        Plain,
        IN,
        "GET",
        "http://example.com/search?q=rust",
        &[],
        NotFound("books-http"),
    ),
    (
        "other hostnames do not match",
        8080,
        Plain,
        IN,
        "GET",
        "http://other.host/search?q=rust",
        &[],
        NotFound("books-http"),
    ),
    (
        "query param regex must match",
        8080,
        Plain,
        IN,
        "GET",
        "http://books.booksapp.svc.cluster.local/search?q=R2",
        &[],
        NotFound("books-http"),
    ),
    (
        "public route from outside the network",
        8080,
        Plain,
        OUT,
        "GET",
        "http://books.booksapp.svc.cluster.local/search?q=rust",
        &[],
        Deny("books-http"),
    ),
    (
        "namespace-wide policy applies to every route",
        8080,
        Id(MONITOR),
        IN,
        "GET",
        "/authors",
        &[],
        Allow("books-http", "authors-get", "ns-monitor"),
    ),
    (
        "no probe exception on a server with routes",
        8080,
        Plain,
        IN,
        "GET",
        "/live",
        &[],
        NotFound("books-http"),
    ),
    // A Server targeted directly, without routes: identity wildcards.
    (
        "suffix wildcard identity",
        9090,
        Id("api.partner.example"),
        OUT,
        "POST",
        "/pay.Api/Charge",
        &[],
        Allow("books-grpc", "default", "grpc-partners"),
    ),
    (
        "suffix wildcard needs a label",
        9090,
        Id("partner.example"),
        OUT,
        "POST",
        "/pay.Api/Charge",
        &[],
        Deny("books-grpc"),
    ),
    (
        "spiffe identity, exact",
        9090,
        Id("spiffe://partner.example/ns/pay/sa/api"),
        OUT,
        "POST",
        "/pay.Api/Charge",
        &[],
        Allow("books-grpc", "default", "grpc-partners"),
    ),
    (
        "suffix wildcards do not match spiffe ids",
        9090,
        Id("spiffe://partner.example/ns/pay/sa/other"),
        OUT,
        "POST",
        "/pay.Api/Charge",
        &[],
        Deny("books-grpc"),
    ),
    (
        "probe on a server without routes",
        7000,
        Plain,
        OUT,
        "GET",
        "/ready",
        &[],
        Allow("legacy", "probe", "probe"),
    ),
    (
        "probes are GET only",
        7000,
        Plain,
        OUT,
        "POST",
        "/ready",
        &[],
        Deny("legacy"),
    ),
    (
        "probe over TLS without a certificate",
        7000,
        NoCert,
        OUT,
        "GET",
        "/healthz",
        &[],
        Allow("legacy", "probe", "probe"),
    ),
    (
        "probe paths are exact",
        7000,
        Plain,
        OUT,
        "GET",
        "/healthz/deep",
        &[],
        Deny("legacy"),
    ),
    (
        "a gRPC Server has no probe route, as in Linkerd",
        9090,
        Plain,
        OUT,
        "GET",
        "/ready",
        &[],
        Deny("books-grpc"),
    ),
    // accessPolicy: audit and cluster-unauthenticated.
    (
        "audit access policy allows and flags",
        9990,
        Plain,
        OUT,
        "GET",
        "/admin",
        &[],
        Audit("books-admin", "default", "audit"),
    ),
    (
        "an authorization beats audit",
        9990,
        Id(MONITOR),
        OUT,
        "GET",
        "/admin",
        &[],
        Allow("books-admin", "default", "ns-monitor"),
    ),
    (
        "cluster-unauthenticated access policy, inside",
        9100,
        Plain,
        IN,
        "GET",
        "/metrics",
        &[],
        Allow("books-metrics", "default", "cluster-unauthenticated"),
    ),
    (
        "cluster-unauthenticated access policy, outside",
        9100,
        Plain,
        OUT,
        "GET",
        "/metrics",
        &[],
        Deny("books-metrics"),
    ),
    // ServerAuthorization: selector, networks with except, unauthenticatedTLS.
    (
        "unauthenticated client in its networks",
        7000,
        Plain,
        Some("192.168.5.5"),
        "GET",
        "/",
        &[],
        Allow("legacy", "default", "legacy-unauth"),
    ),
    (
        "networks except",
        7000,
        Plain,
        Some("192.168.1.9"),
        "GET",
        "/",
        &[],
        Deny("legacy"),
    ),
    (
        "unauthenticatedTLS accepts TLS without identity",
        7000,
        NoCert,
        IN,
        "GET",
        "/",
        &[],
        Allow("legacy", "default", "legacy-tls"),
    ),
    (
        "unauthenticatedTLS accepts mutual TLS too",
        7000,
        Id(STRANGER),
        IN,
        "GET",
        "/",
        &[],
        Allow("legacy", "default", "legacy-tls"),
    ),
    (
        "without networks, a ServerAuthorization admits the cluster networks only",
        7000,
        Id(STRANGER),
        OUT,
        "GET",
        "/",
        &[],
        Deny("legacy"),
    ),
    (
        "no address: network rules cannot match",
        7000,
        Plain,
        None,
        "GET",
        "/",
        &[],
        Deny("legacy"),
    ),
    // Ports no Server covers get the default policy.
    (
        "uncovered port, default policy",
        3000,
        Plain,
        None,
        "GET",
        "/",
        &[],
        Allow("all-unauthenticated", "default", "all-unauthenticated"),
    ),
    (
        "a Server selecting other pods covers nothing here",
        8081,
        Plain,
        OUT,
        "GET",
        "/",
        &[],
        Allow("all-unauthenticated", "default", "all-unauthenticated"),
    ),
];

#[test]
fn books_policy_decisions() {
    let policy = compile(BOOKS, &books_workload(), &PolicyConfig::default());
    let mut failures = Vec::new();
    for &(name, port, tls, ip, method, uri, headers, want) in BOOKS_CASES {
        let got = decide(&policy, port, tls, ip, method, uri, headers);
        if got != want {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        BOOKS_CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn default_policy_decisions() {
    let cases: &[(DefaultPolicy, support::T, Option<&str>, &str, support::Want)] = &[
        (
            DefaultPolicy::AllUnauthenticated,
            Plain,
            OUT,
            "/",
            Allow("all-unauthenticated", "default", "all-unauthenticated"),
        ),
        (
            DefaultPolicy::AllAuthenticated,
            Plain,
            IN,
            "/",
            Deny("all-authenticated"),
        ),
        (
            DefaultPolicy::AllAuthenticated,
            NoCert,
            IN,
            "/",
            Deny("all-authenticated"),
        ),
        (
            DefaultPolicy::AllAuthenticated,
            Id(STRANGER),
            OUT,
            "/",
            Allow("all-authenticated", "default", "all-authenticated"),
        ),
        (
            DefaultPolicy::AllAuthenticated,
            Plain,
            OUT,
            "/live",
            Allow("all-authenticated", "probe", "probe"),
        ),
        (
            DefaultPolicy::ClusterAuthenticated,
            Id(STRANGER),
            IN,
            "/",
            Allow("cluster-authenticated", "default", "cluster-authenticated"),
        ),
        (
            DefaultPolicy::ClusterAuthenticated,
            Id(STRANGER),
            OUT,
            "/",
            Deny("cluster-authenticated"),
        ),
        (
            DefaultPolicy::ClusterAuthenticated,
            Plain,
            IN,
            "/",
            Deny("cluster-authenticated"),
        ),
        (
            DefaultPolicy::ClusterUnauthenticated,
            Plain,
            IN,
            "/",
            Allow(
                "cluster-unauthenticated",
                "default",
                "cluster-unauthenticated",
            ),
        ),
        (
            DefaultPolicy::ClusterUnauthenticated,
            Plain,
            Some("fd00::5"),
            "/",
            Allow(
                "cluster-unauthenticated",
                "default",
                "cluster-unauthenticated",
            ),
        ),
        (
            DefaultPolicy::ClusterUnauthenticated,
            Plain,
            OUT,
            "/",
            Deny("cluster-unauthenticated"),
        ),
        (
            DefaultPolicy::ClusterUnauthenticated,
            Plain,
            None,
            "/",
            Deny("cluster-unauthenticated"),
        ),
        (DefaultPolicy::Deny, Id(WEBAPP), IN, "/", Deny("deny")),
        (
            DefaultPolicy::Deny,
            Plain,
            None,
            "/live",
            Allow("deny", "probe", "probe"),
        ),
        (
            DefaultPolicy::Deny,
            Plain,
            OUT,
            "/ready",
            Allow("deny", "probe", "probe"),
        ),
        (
            DefaultPolicy::Audit,
            Plain,
            OUT,
            "/",
            Audit("audit", "default", "audit"),
        ),
    ];
    let workload = Workload::new("ns");
    for &(default, tls, ip, path, want) in cases {
        let config = PolicyConfig::default().with_default_policy(default);
        let policy = Policy::empty(&workload, &config, &PolicyMetrics::default());
        let got = decide(&policy, 8080, tls, ip, "GET", path, &[]);
        assert_eq!(got, want, "{default} {tls:?} {ip:?} {path}");
        // Compiling no documents gives the same policy.
        let compiled = compile("", &workload, &config);
        assert_eq!(decide(&compiled, 8080, tls, ip, "GET", path, &[]), want);
    }
}

#[test]
fn probe_paths_are_configurable() {
    let config = PolicyConfig::default()
        .with_default_policy(DefaultPolicy::Deny)
        .with_probe_paths(vec!["/status".into()]);
    let policy = compile("", &Workload::new("ns"), &config);
    assert_eq!(
        decide(&policy, 80, Plain, None, "GET", "/status", &[]),
        Allow("deny", "probe", "probe")
    );
    assert_eq!(
        decide(&policy, 80, Plain, None, "GET", "/live", &[]),
        Deny("deny")
    );
    let none = compile(
        "",
        &Workload::new("ns"),
        &config.with_probe_paths(Vec::new()),
    );
    assert_eq!(
        decide(&none, 80, Plain, None, "GET", "/status", &[]),
        Deny("deny")
    );
}

#[test]
fn the_guides_manifests_allow_unauthenticated_clients_to_web_on_port_80() {
    let web = Workload::new("emojivoto").with_label("app", "web");
    let policy = compile(GUIDE, &web, &PolicyConfig::default());
    for tls in [Plain, NoCert, Id(STRANGER)] {
        assert_eq!(
            decide(&policy, 80, tls, IN, "GET", "/api/list", &[]),
            Allow("web-server-80", "default", "web-server-80-auth"),
            "{tls:?}"
        );
    }
    // Without an address the default `networks` (every address) cannot match.
    assert_eq!(
        decide(&policy, 80, Plain, None, "GET", "/", &[]),
        Deny("web-server-80")
    );
    // Port 8080 is not the Server's.
    assert_eq!(
        decide(&policy, 8080, Plain, IN, "GET", "/", &[]),
        Allow("all-unauthenticated", "default", "all-unauthenticated")
    );
    // Another workload is not selected.
    let vote = Workload::new("emojivoto").with_label("app", "vote");
    let policy = compile(GUIDE, &vote, &PolicyConfig::default());
    assert_eq!(
        decide(&policy, 80, Plain, IN, "GET", "/", &[]),
        Allow("all-unauthenticated", "default", "all-unauthenticated")
    );
}

#[test]
fn the_table_has_at_least_forty_cases() {
    assert!(BOOKS_CASES.len() + 16 + 3 >= 40);
}
