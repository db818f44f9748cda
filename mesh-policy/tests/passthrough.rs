//! A connection whose TLS the mesh passed through to the application (its
//! ClientHello named another server) is authorized as Linkerd's proxy
//! authorizes a `ServerTls::Passthru` one: by authorizations that need no
//! authentication, and their networks, only. It proves no mesh identity,
//! and is no TLS the mesh terminated, so it meets neither an identity
//! requirement nor `unauthenticatedTLS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::{Identity, conn::Sni};
use mesh_policy::{Client, ClientTls, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};
use prometheus_client::{encoding::text::encode, registry::Registry};

const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: app, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 443
  proxyProtocol: TLS
";

fn compile(authz: &str, registry: &mut Registry) -> Policy {
    let text = format!("{SERVER}---\n{authz}");
    Policy::compile(
        &[PolicySource::new("policy.yaml", &text)],
        &Workload::new("ns").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::register(registry),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .policy
}

fn server_authorization(client: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {{name: app-clients, namespace: ns}}
spec:
  server: {{name: app}}
  client:
{client}"
    )
}

fn allowed(policy: &Policy, tls: ClientTls<'_>) -> bool {
    let client = Client {
        tls,
        addr: Some("10.1.2.3".parse().unwrap()),
    };
    let decision = policy.evaluate_connection(443, &client);
    decision.record(tls);
    decision.is_allowed()
}

fn sni() -> Sni {
    Sni::parse("app.example").unwrap()
}

#[test]
fn a_passthrough_meets_an_unauthenticated_authorization_and_its_networks() {
    let mut registry = Registry::default();
    let policy = compile(
        &server_authorization("    unauthenticated: true\n    networks: [{cidr: 10.0.0.0/8}]\n"),
        &mut registry,
    );
    let sni = sni();
    assert!(allowed(&policy, ClientTls::Passthrough(&sni)));
    let outside = Client {
        tls: ClientTls::Passthrough(&sni),
        addr: Some("192.0.2.9".parse().unwrap()),
    };
    assert!(!policy.evaluate_connection(443, &outside).is_allowed());

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            r#"inbound_tcp_authz_allow_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="app",srv_port="443",authz_group="policy.linkerd.io",authz_kind="serverauthorization",authz_name="app-clients",tls="opaque"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn a_passthrough_meets_no_requirement_for_tls_the_mesh_terminated() {
    let mut registry = Registry::default();
    let policy = compile(
        &server_authorization("    meshTLS:\n      unauthenticatedTLS: true\n"),
        &mut registry,
    );
    let sni = sni();
    assert!(allowed(&policy, ClientTls::NoClientCert));
    assert!(!allowed(&policy, ClientTls::Passthrough(&sni)));

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("inbound_tcp_authz_deny_total{")
                && l.contains(r#"tls="opaque""#)
                && l.ends_with(" 1")),
        "{text}"
    );
}

#[test]
fn a_passthrough_proves_no_mesh_identity() {
    let mut registry = Registry::default();
    let policy = compile(
        &server_authorization("    meshTLS:\n      identities: [\"*\"]\n"),
        &mut registry,
    );
    let web = Identity::parse("spiffe://cluster.local/ns/ns/sa/web").unwrap();
    assert!(allowed(&policy, ClientTls::Mutual(&web)));
    // Even a server name that spells an identity the policy admits.
    let named = Sni::parse("web.ns.serviceaccount.identity.linkerd.cluster.local").unwrap();
    assert!(!allowed(&policy, ClientTls::Passthrough(&named)));
    assert_eq!(
        Client {
            tls: ClientTls::Passthrough(&named),
            addr: None,
        }
        .identity(),
        None
    );
}
