//! Two Servers on one port, at the edges of what selects a port: a port
//! selected by name and by number is one port; a Server that does not
//! select the workload (another `podSelector`, another namespace) takes no
//! port from one that does; and a file without the Server that took the
//! port hands it to the one that lost it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_policy::{Compiled, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};
use support::{T::*, Want::*, *};

fn workload() -> Workload {
    Workload::new("ns")
        .with_label("app", "web")
        .with_port("http", 80)
}

/// A Server `name` in `namespace` for `port` of the pods `selector`
/// selects, created at `created`, whose `accessPolicy` is `access`.
fn server(namespace: &str, name: &str, selector: &str, port: &str, access: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  creationTimestamp: \"2024-05-01T12:00:00Z\"\nspec:\n  podSelector: {{matchLabels: {{app: {selector}}}}}\n  port: {port}\n  accessPolicy: {access}\n"
    )
}

fn compiled(docs: &[&str]) -> Compiled {
    let text = docs.join("---\n");
    Policy::compile(
        &[PolicySource::new("policy.yaml", &text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn at_80(policy: &Policy) -> Want {
    decide(policy, 80, Plain, Some("10.1.2.3"), "GET", "/", &[])
}

/// The warnings about a port being taken, as text.
fn lost(compiled: &Compiled) -> Vec<String> {
    compiled
        .warnings
        .iter()
        .filter(|w| w.message.contains("also selected"))
        .map(ToString::to_string)
        .collect()
}

const OPEN: &str = "all-unauthenticated";

#[test]
fn a_port_selected_by_name_and_by_number_is_one_port() {
    let by_number = server("ns", "a-number", "web", "80", OPEN);
    let by_name = server("ns", "b-name", "web", "http", "deny");
    for docs in [[&by_name, &by_number], [&by_number, &by_name]] {
        let c = compiled(&docs.map(String::as_str));
        assert_eq!(at_80(&c.policy), Allow("a-number", "default", OPEN));
        let lost = lost(&c);
        assert_eq!(lost.len(), 1, "{lost:#?}");
        assert!(lost[0].contains("ns/b-name"), "{lost:#?}");
        assert!(lost[0].contains("port http (80)"), "{lost:#?}");
    }
}

#[test]
fn a_server_that_does_not_select_the_workload_takes_no_port() {
    // Older by name than `b-web`, but for other pods or in another
    // namespace: it selects nothing of this workload.
    for other in [
        server("ns", "a-api", "api", "80", "deny"),
        server("other", "a-web", "web", "80", "deny"),
    ] {
        let web = server("ns", "b-web", "web", "http", OPEN);
        for docs in [[&other, &web], [&web, &other]] {
            let c = compiled(&docs.map(String::as_str));
            assert_eq!(at_80(&c.policy), Allow("b-web", "default", OPEN));
            assert!(lost(&c).is_empty(), "{:#?}", c.warnings);
        }
    }
}

#[test]
fn without_the_server_that_took_it_the_port_goes_to_the_one_that_lost_it() {
    let winner = server("ns", "a", "web", "80", "deny");
    let loser = server("ns", "b", "web", "http", OPEN);
    let both = compiled(&[&winner, &loser]);
    assert_eq!(at_80(&both.policy), Deny("a"));
    let alone = compiled(&[&loser]);
    assert_eq!(at_80(&alone.policy), Allow("b", "default", OPEN));
    assert!(lost(&alone).is_empty(), "{:#?}", alone.warnings);
}
