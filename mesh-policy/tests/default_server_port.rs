//! The default server's series carry the port the request or connection
//! came to, as linkerd2-proxy labels every server's (`ServerLabel` with
//! the connection's port): two ports no Server covers count apart, each
//! under its own `srv_port`, in every authorization family, and a reload
//! keeps each port's series right.

use http::Request;
use mesh_core::labels::Authorized;
use mesh_policy::{
    Client, ClientTls, DefaultPolicy, ExplainQuery, Policy, PolicyConfig, PolicyMetrics,
    PolicySource, PolicyStore, Workload,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// A Server on 8080 that lets everyone in; 9090 and 9091 are left to the
/// default server.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: app, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  proxyProtocol: HTTP/1
  accessPolicy: all-unauthenticated
";

/// The same, with a second Server covering 9090.
const COVERING_9090: &str = "---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: admin, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 9090
  proxyProtocol: HTTP/1
  accessPolicy: all-unauthenticated
";

fn workload() -> Workload {
    Workload::new("ns").with_label("app", "web")
}

fn config(default_policy: DefaultPolicy) -> PolicyConfig {
    PolicyConfig {
        default_policy,
        ..PolicyConfig::default()
    }
}

fn compile(registry: &mut Registry, default_policy: DefaultPolicy) -> Policy {
    Policy::compile(
        &[PolicySource::new("policy.yaml", POLICY)],
        &workload(),
        &config(default_policy),
        &PolicyMetrics::register(registry),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .policy
}

fn client() -> Client<'static> {
    Client {
        tls: ClientTls::Plaintext,
        addr: Some("10.1.2.3".parse().unwrap()),
    }
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

fn assert_lines(text: &str, lines: &[String]) {
    for line in lines {
        assert!(text.contains(line.as_str()), "missing {line}\n{text}");
    }
}

fn default_server(name: &str, port: u16) -> String {
    format!(r#"srv_group="",srv_kind="default",srv_name="{name}",srv_port="{port}""#)
}

const ROUTE: &str = r#"route_group="",route_kind="default",route_name="default""#;

#[test]
fn requests_to_two_uncovered_ports_count_under_each_port() {
    let mut registry = Registry::default();
    let policy = compile(&mut registry, DefaultPolicy::AllUnauthenticated);
    for (port, n) in [(9090, 2), (9091, 3)] {
        for _ in 0..n {
            let req = Request::get("/").body(()).unwrap();
            let decision = policy.evaluate(port, &client(), &req);
            assert!(decision.is_allowed(), "{port}");
            decision.record(ClientTls::Plaintext);
        }
    }

    let text = scrape(&registry);
    let authz = r#"authz_group="",authz_kind="default",authz_name="all-unauthenticated""#;
    assert_lines(
        &text,
        &[
            format!(
                r#"inbound_http_authz_allow_total{{{},{ROUTE},{authz},tls="no_identity"}} 2"#,
                default_server("all-unauthenticated", 9090)
            ),
            format!(
                r#"inbound_http_authz_allow_total{{{},{ROUTE},{authz},tls="no_identity"}} 3"#,
                default_server("all-unauthenticated", 9091)
            ),
            // The rule hits carry no port: the default policy's one series.
            r#"inbound_authz_rule_hits_total{rule_kind="default",rule_name="all-unauthenticated",srv_kind="default",srv_name="all-unauthenticated",result="allow"} 5"#.to_owned(),
        ],
    );
    assert!(
        !text.contains(r#"srv_kind="default",srv_name="all-unauthenticated",route_group"#),
        "a default server's series without srv_port\n{text}"
    );
}

#[test]
fn the_request_extension_names_the_port_of_the_default_server() {
    let mut registry = Registry::default();
    let policy = compile(&mut registry, DefaultPolicy::AllUnauthenticated);
    let authorized = |port| -> Authorized {
        let req = Request::get("/").body(()).unwrap();
        match policy.evaluate(port, &client(), &req) {
            mesh_policy::Decision::Allow(a) => a.authorized(),
            other => panic!("{port}: {other:?}"),
        }
    };
    // What request metrics label `srv_port` with, so `request_total`
    // agrees with `inbound_http_authz_allow_total`.
    assert_eq!(authorized(9090).server_port, Some(9090));
    assert_eq!(authorized(9091).server_port, Some(9091));
    assert_eq!(authorized(8080).server_port, Some(8080));
    // A request that names no port has none.
    assert_eq!(authorized(0).server_port, None);
}

#[test]
fn denials_and_connections_count_under_each_port() {
    let mut registry = Registry::default();
    let policy = compile(&mut registry, DefaultPolicy::Deny);
    for port in [9090, 9091] {
        let req = Request::get("/").body(()).unwrap();
        let decision = policy.evaluate(port, &client(), &req);
        assert!(!decision.is_allowed(), "{port}");
        decision.record(ClientTls::Plaintext);
        let decision = policy.evaluate_connection(port, &client());
        assert!(!decision.is_allowed(), "{port}");
        decision.record(ClientTls::Plaintext);
        decision.record_terminate(ClientTls::Plaintext);
    }
    let mut registry_open = Registry::default();
    let open = compile(&mut registry_open, DefaultPolicy::AllUnauthenticated);
    for port in [9090, 9091] {
        let decision = open.evaluate_connection(port, &client());
        assert!(decision.is_allowed(), "{port}");
        decision.record(ClientTls::Plaintext);
    }

    let text = scrape(&registry);
    let mut lines = Vec::new();
    for port in [9090, 9091] {
        let srv = default_server("deny", port);
        lines.extend([
            format!(r#"inbound_http_authz_deny_total{{{srv},{ROUTE},tls="no_identity"}} 1"#),
            format!(r#"inbound_tcp_authz_deny_total{{{srv},tls="no_identity"}} 1"#),
            format!(r#"inbound_tcp_authz_terminate_total{{{srv},tls="no_identity"}} 1"#),
        ]);
    }
    assert_lines(&text, &lines);
    let text = scrape(&registry_open);
    let lines: Vec<String> = [9090, 9091]
        .map(|port| {
            format!(
                r#"inbound_tcp_authz_allow_total{{{},authz_group="",authz_kind="default",authz_name="all-unauthenticated",tls="no_identity"}} 1"#,
                default_server("all-unauthenticated", port)
            )
        })
        .into();
    assert_lines(&text, &lines);
}

#[test]
fn a_reload_keeps_each_ports_series() {
    let mut registry = Registry::default();
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut registry),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", POLICY)])
        .unwrap();
    let request = |port| {
        let req = Request::get("/").body(()).unwrap();
        let policy = store.load();
        let decision = policy.evaluate(port, &client(), &req);
        assert!(decision.is_allowed(), "{port}");
        decision.record(ClientTls::Plaintext);
    };
    request(9090);
    request(9091);
    // 9090 gets a Server of its own; 9091 stays the default server's.
    let covering = format!("{POLICY}{COVERING_9090}");
    store
        .reload(&[PolicySource::new("policy.yaml", &covering)])
        .unwrap();
    request(9090);
    request(9091);
    // And back: 9090 is the default server's again, under its port.
    store
        .reload(&[PolicySource::new("policy.yaml", POLICY)])
        .unwrap();
    request(9090);

    let text = scrape(&registry);
    let authz = r#"authz_group="",authz_kind="default",authz_name="all-unauthenticated""#;
    assert_lines(
        &text,
        &[
            format!(
                r#"inbound_http_authz_allow_total{{{},{ROUTE},{authz},tls="no_identity"}} 2"#,
                default_server("all-unauthenticated", 9090)
            ),
            format!(
                r#"inbound_http_authz_allow_total{{{},{ROUTE},{authz},tls="no_identity"}} 2"#,
                default_server("all-unauthenticated", 9091)
            ),
            format!(
                r#"inbound_http_authz_allow_total{{srv_group="policy.linkerd.io",srv_kind="server",srv_name="admin",srv_port="9090",{ROUTE},{authz},tls="no_identity"}} 1"#
            ),
        ],
    );
}

#[test]
fn asking_about_a_port_adds_no_series_for_it() {
    let mut registry = Registry::default();
    let policy = compile(&mut registry, DefaultPolicy::AllUnauthenticated);
    let explanation = policy.explain(&ExplainQuery::new(7777));
    assert_eq!(explanation.decision, "allow by all-unauthenticated");
    assert_eq!(
        policy.protocol(7777),
        mesh_policy::resource::ProxyProtocol::Unknown
    );
    let text = scrape(&registry);
    assert!(!text.contains(r#"srv_port="7777""#), "{text}");
}
