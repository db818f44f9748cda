//! Authorization as Linkerd decides it: the default policies with
//! Linkerd's cluster networks, what `audit` lets through and counts, and
//! a policy copied from Linkerd whose wildcards span every namespace of
//! the trust domain when the mesh's clients carry SPIFFE IDs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use mesh_core::{ConnectionInfo, labels::Authorized};
use mesh_policy::{
    AuthorizeLayer, DefaultPolicy, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::{T::*, Want::*, *};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The `web` Server of the reference tests, open to the clients of a
/// `MeshTLSAuthentication` whose `identities` are `ids`.
fn by_identities(ids: &str) -> String {
    format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: who, namespace: ns}}
spec:
  identities: {ids}
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

fn decide_id(policy: &mesh_policy::Policy, id: &'static str) -> Want {
    decide(policy, 80, Id(id), Some("10.0.0.1"), "GET", "/api", &[])
}

/// In Linkerd, `*.cluster.local` (or `*.linkerd.cluster.local`, or
/// `*.serviceaccount.identity.linkerd.cluster.local`) admits every meshed
/// client of the cluster's trust domain, each named
/// `<sa>.<ns>.serviceaccount.identity.linkerd.cluster.local`. The same
/// clients carrying their SPIFFE IDs must get in too, as they do for the
/// namespace wildcard `*.<ns>.serviceaccount...`.
#[test]
fn a_wildcard_over_every_namespace_admits_the_trust_domains_spiffe_ids() {
    for pattern in [
        "*.serviceaccount.identity.linkerd.cluster.local",
        "*.identity.linkerd.cluster.local",
        "*.linkerd.cluster.local",
        "*.cluster.local",
        "*.Cluster.Local",
    ] {
        let policy = compile(
            &by_identities(&format!("[\"{pattern}\"]")),
            &web_workload(),
            &PolicyConfig::default(),
        );
        for id in [
            "spiffe://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/ns/sa/build.bot",
            "b.a.serviceaccount.identity.linkerd.cluster.local",
        ] {
            assert_eq!(
                decide_id(&policy, id),
                Allow("web", "api", "by-id"),
                "{pattern} admits {id}"
            );
        }
        for id in [
            // Another trust domain.
            "spiffe://example.org/ns/a/sa/b",
            // Not a service account's SPIFFE ID.
            "spiffe://cluster.local/ns/a/sa/b/c",
            "spiffe://cluster.local/ns/a/b/sa/c",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/workload",
        ] {
            // Some are no identity a certificate could carry.
            if mesh_core::Identity::parse(id).is_err() {
                continue;
            }
            assert_eq!(
                decide_id(&policy, id),
                Deny("web"),
                "{pattern} refuses {id}"
            );
        }
        for tls in [Plain, NoCert] {
            assert_eq!(
                decide(&policy, 80, tls, Some("10.0.0.1"), "GET", "/api", &[]),
                Deny("web"),
                "{pattern} refuses {tls:?}"
            );
        }
    }
}

/// Only a wildcard that covers the workload's own form of its accounts
/// (its control-plane namespace and trust domain, whole labels) speaks for
/// the SPIFFE IDs of its trust domain.
#[test]
fn a_wildcard_over_another_form_admits_no_spiffe_id() {
    let mesh = web_workload();
    let mut other_cp = Workload::new("ns").with_label("app", "web");
    other_cp.control_plane_namespace = "mesh".to_owned();
    for (workload, pattern) in [
        (&mesh, "*.example.org"),
        (&mesh, "*.serviceaccount.identity.linkerd.example.org"),
        (&mesh, "*.inkerd.cluster.local"),
        (&mesh, "*.x.linkerd.cluster.local"),
        (&other_cp, "*.linkerd.cluster.local"),
    ] {
        let policy = compile(
            &by_identities(&format!("[\"{pattern}\"]")),
            workload,
            &PolicyConfig::default(),
        );
        assert_eq!(
            decide_id(&policy, "spiffe://cluster.local/ns/x/sa/b"),
            Deny("web"),
            "{pattern} under control plane {}",
            workload.control_plane_namespace
        );
    }
    // Under the `mesh` control plane, its own form covers the accounts.
    let policy = compile(
        &by_identities("[\"*.mesh.cluster.local\"]"),
        &other_cp,
        &PolicyConfig::default(),
    );
    assert_eq!(
        decide_id(&policy, "spiffe://cluster.local/ns/x/sa/b"),
        Allow("web", "api", "by-id")
    );
}

/// Each default policy, as Linkerd's policy controller defines it
/// (`mk_default_policy`), with Linkerd's default cluster networks:
/// `all-authenticated` any mesh identity from anywhere,
/// `cluster-authenticated` one from the cluster networks,
/// `cluster-unauthenticated` any client from them, `audit` everyone,
/// flagged. `GET` probes get through whatever the policy.
#[test]
fn default_policies_decide_as_linkerds_with_its_cluster_networks() {
    const ID: &str = "spiffe://cluster.local/ns/a/sa/b";
    let inside = [
        "10.1.2.3",
        "100.64.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "fd00::1",
        "::ffff:10.1.2.3",
    ];
    let outside = [
        "8.8.8.8",
        "100.128.0.1",
        "172.32.0.1",
        "2001:db8::1",
        "::ffff:8.8.8.8",
    ];
    for default in DefaultPolicy::ALL {
        let config = PolicyConfig::default().with_default_policy(default);
        let policy = compile("", &web_workload(), &config);
        let name = default.as_str();
        let allowed = Allow(name, "default", name);
        for (tls, ip, inside_cluster) in inside
            .iter()
            .map(|ip| (ip, true))
            .chain(outside.iter().map(|ip| (ip, false)))
            .flat_map(|(ip, at)| [(Plain, *ip, at), (NoCert, *ip, at), (Id(ID), *ip, at)])
        {
            let identified = matches!(tls, Id(_));
            let want = match default {
                DefaultPolicy::AllUnauthenticated => allowed,
                DefaultPolicy::AllAuthenticated if identified => allowed,
                DefaultPolicy::ClusterAuthenticated if identified && inside_cluster => allowed,
                DefaultPolicy::ClusterUnauthenticated if inside_cluster => allowed,
                DefaultPolicy::Audit => Audit(name, "default", name),
                _ => Deny(name),
            };
            assert_eq!(
                decide(&policy, 8080, tls, Some(ip), "POST", "/x", &[]),
                want,
                "{default} {tls:?} from {ip}"
            );
            assert_eq!(
                decide(&policy, 8080, tls, Some(ip), "GET", "/ready", &[]),
                Allow(name, "probe", "probe"),
                "{default} probe {tls:?} from {ip}"
            );
        }
        // A client without a known address is in no network.
        let want = match default {
            DefaultPolicy::AllUnauthenticated | DefaultPolicy::AllAuthenticated => allowed,
            DefaultPolicy::Audit => Audit(name, "default", name),
            _ => Deny(name),
        };
        assert_eq!(
            decide(&policy, 8080, Id(ID), None, "POST", "/x", &[]),
            want,
            "{default} without an address"
        );
    }
}

/// `audit` lets through what would be denied and counts it where Linkerd
/// does: allowed, by the `audit` default authorization, and as `audit` in
/// the rule hits; nothing is counted as denied. What an authorization
/// admits is credited to it, and a request no route matches is still 404.
#[tokio::test]
async fn audit_lets_denied_requests_through_counted_as_audit() {
    let text = format!(
        "{}---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: ten, namespace: ns}}
spec: {{networks: [{{cidr: 10.0.0.0/8}}]}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: from-ten, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: ten}}]
",
        WEB_SERVER_AND_API_ROUTE.replace("  port: 80\n", "  port: 80\n  accessPolicy: audit\n")
    );
    let mut registry = Registry::default();
    let store = PolicyStore::new(
        web_workload(),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut registry),
    );
    store.reload(&[PolicySource::new("p.yaml", &text)]).unwrap();
    let svc = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store.clone()))
        .service(service_fn(|req: Request<()>| async move {
            let audit = req.extensions().get::<Authorized>().map(|a| a.audit);
            Ok::<_, Infallible>(Response::new(format!("{audit:?}")))
        }));
    let call = |client: &str, path: &str| {
        let mut req = Request::get(path).body(()).unwrap();
        req.extensions_mut().insert(ConnectionInfo::plaintext(
            "10.0.0.5:80".parse().unwrap(),
            client.parse().unwrap(),
        ));
        svc.clone().oneshot(req)
    };
    let rsp = call("203.0.113.7:5000", "/api").await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.body(), "Some(true)");
    let rsp = call("10.1.2.3:5000", "/api").await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.body(), "Some(false)");
    let rsp = call("203.0.113.7:5000", "/elsewhere").await.unwrap();
    assert_eq!(rsp.status(), StatusCode::NOT_FOUND);

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let value = |family: &str, labels: &[&str]| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(family) && labels.iter().all(|w| l.contains(w)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let audit = [
        r#"srv_name="web""#,
        r#"authz_kind="default""#,
        r#"authz_name="audit""#,
    ];
    assert_eq!(value("inbound_http_authz_allow_total", &audit), 1, "{text}");
    let by_policy = [r#"authz_name="from-ten""#];
    assert_eq!(
        value("inbound_http_authz_allow_total", &by_policy),
        1,
        "{text}"
    );
    // The route's denial series exist, resolved when the policy was
    // compiled, and count nothing.
    assert!(text.contains("inbound_http_authz_deny_total{"), "{text}");
    assert_eq!(value("inbound_http_authz_deny_total", &[]), 0, "{text}");
    assert_eq!(
        value("inbound_http_route_not_found_total", &[r#"srv_name="web""#]),
        1
    );
    let hits = |rule: &str, result: &str| {
        value(
            "inbound_authz_rule_hits_total",
            &[
                &format!(r#"rule_name="{rule}""#),
                &format!(r#"result="{result}""#),
            ],
        )
    };
    assert_eq!(hits("audit", "audit"), 1, "{text}");
    assert_eq!(hits("audit", "allow"), 0, "{text}");
    assert_eq!(hits("audit", "deny"), 0, "{text}");
    assert_eq!(hits("from-ten", "allow"), 1, "{text}");
}
