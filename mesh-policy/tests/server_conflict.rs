//! Two Servers that select one port of the workload: as Linkerd's policy
//! controller gives a pod's port to one of them, the oldest by
//! `metadata.creationTimestamp` (one without a timestamp after those with
//! one), then the first by name, takes it whatever the order of the
//! documents, and each other one is warned about: it covers nothing, and
//! what targets it applies to nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::{
    Compiled, Policy, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, WarningKind, Workload,
};
use support::{T::*, Want::*, *};

fn workload() -> Workload {
    Workload::new("ns")
        .with_label("app", "web")
        .with_port("http", 80)
}

/// A Server `name` for port 80 of `app: web`, created at `created` when
/// given, whose `accessPolicy` is `access`.
fn server(name: &str, created: Option<&str>, access: &str) -> String {
    let created = created
        .map(|t| format!("  creationTimestamp: \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata:\n  name: {name}\n  namespace: ns\n{created}spec:\n  podSelector: {{matchLabels: {{app: web}}}}\n  port: 80\n  accessPolicy: {access}\n"
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

/// What a plaintext `GET /` from 10.1.2.3 to port 80 gets.
fn at_80(policy: &Policy) -> Want {
    decide(policy, 80, Plain, Some("10.1.2.3"), "GET", "/", &[])
}

/// The warnings about port 80 being taken, as text.
fn lost(compiled: &Compiled) -> Vec<String> {
    compiled
        .warnings
        .iter()
        .filter(|w| w.field_path == "spec.port" && w.message.contains("also selected"))
        .inspect(|w| assert_eq!(w.kind, WarningKind::NotApplied, "{w}"))
        .map(ToString::to_string)
        .collect()
}

/// `a` and `b` compiled in both orders: what port 80 gets, the same both
/// ways, and the warnings of each order.
fn both_orders(a: &str, b: &str) -> (Want, [Vec<String>; 2]) {
    let first = compiled(&[a, b]);
    let second = compiled(&[b, a]);
    let want = at_80(&first.policy);
    assert_eq!(
        want,
        at_80(&second.policy),
        "the order of the documents decided"
    );
    (want, [lost(&first), lost(&second)])
}

const OPEN: &str = "all-unauthenticated";

#[test]
fn the_older_by_creation_timestamp_wins_in_either_order() {
    // By name, `a-new` would win; it is a day younger.
    let old = server("web-old", Some("2024-05-01T12:00:00Z"), "deny");
    let new = server("a-new", Some("2024-05-02T12:00:00Z"), OPEN);
    let (want, warnings) = both_orders(&old, &new);
    assert_eq!(want, Deny("web-old"));
    for w in &warnings {
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].contains("(Server ns/a-new)"), "{w:#?}");
    }

    // Times are compared as instants, whatever their offsets: 13:00 at
    // +02:00 is an hour before 12:00Z.
    let earlier = server("z-earlier", Some("2024-05-01T13:00:00+02:00"), OPEN);
    let (want, _) = both_orders(&old, &earlier);
    assert_eq!(want, Allow("z-earlier", "default", OPEN));
}

#[test]
fn a_tie_on_creation_timestamp_goes_to_the_first_by_name() {
    let at = Some("2024-05-01T12:00:00Z");
    let (want, warnings) = both_orders(&server("b", at, OPEN), &server("a", at, "deny"));
    assert_eq!(want, Deny("a"));
    for w in &warnings {
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].contains("(Server ns/b)"), "{w:#?}");
    }
}

#[test]
fn without_creation_timestamps_the_first_by_name_wins() {
    let (want, _) = both_orders(&server("b", None, "deny"), &server("a", None, OPEN));
    assert_eq!(want, Allow("a", "default", OPEN));
}

#[test]
fn a_server_with_a_creation_timestamp_wins_over_one_without() {
    // One without a timestamp would be the newest once applied.
    let (want, _) = both_orders(
        &server("z", Some("2024-05-01T12:00:00Z"), "deny"),
        &server("a", None, OPEN),
    );
    assert_eq!(want, Deny("z"));
}

#[test]
fn the_server_that_loses_the_port_is_warned_about_by_name_and_document() {
    let older = compiled(&[
        &server("web", Some("2024-05-01T12:00:00Z"), "deny"),
        &server("a-web", Some("2024-05-02T12:00:00Z"), OPEN),
    ]);
    assert_eq!(
        lost(&older),
        [
            "policy.yaml: document 2 (Server ns/a-web): spec.port: port 80 of the workload is also \
          selected by Server web (policy.yaml document 1), which takes it as the older by \
          metadata.creationTimestamp; this Server covers nothing, so what targets it \
          (authorizations, routes, rate limits) applies to nothing"
        ]
    );

    let stamped = compiled(&[
        &server("a-web", None, OPEN),
        &server("web", Some("2024-05-01T12:00:00Z"), "deny"),
    ]);
    assert_eq!(
        lost(&stamped),
        [
            "policy.yaml: document 1 (Server ns/a-web): spec.port: port 80 of the workload is also \
          selected by Server web (policy.yaml document 2), which takes it as the one with a \
          metadata.creationTimestamp; this Server covers nothing, so what targets it \
          (authorizations, routes, rate limits) applies to nothing"
        ]
    );

    // A Server that names the port says so; the other is named as written.
    let named = server("web-too", None, OPEN).replace("port: 80", "port: http");
    let by_name = compiled(&[&named, &server("web", None, "deny")]);
    assert_eq!(
        lost(&by_name),
        [
            "policy.yaml: document 1 (Server ns/web-too): spec.port: port http (80) of the workload \
          is also selected by Server web (policy.yaml document 2), which takes it as the first \
          by name; this Server covers nothing, so what targets it (authorizations, routes, rate \
          limits) applies to nothing"
        ]
    );
    assert_eq!(at_80(&by_name.policy), Deny("web"));
}

#[test]
fn three_servers_on_one_port_leave_two_warnings() {
    let c = compiled(&[
        &server("c", None, OPEN),
        &server("b", None, OPEN),
        &server("a", None, "deny"),
    ]);
    assert_eq!(at_80(&c.policy), Deny("a"));
    let warnings = lost(&c);
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].contains("(Server ns/c)") && warnings[1].contains("(Server ns/b)"),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().all(|w| w.contains("selected by Server a ")),
        "{warnings:#?}"
    );
}

/// What targets the Server that lost the port (by name, as an
/// `AuthorizationPolicy`, a `ServerAuthorization` or a route's parent
/// does) applies to nothing, as in Linkerd, whose controller builds no
/// server of it for the pod: it does not open the port the other one
/// took. A `ServerAuthorization` that selects both by label applies to
/// the one that took it.
#[test]
fn what_targets_the_server_that_lost_the_port_applies_to_nothing() {
    let old = server("web", Some("2024-05-01T12:00:00Z"), "deny");
    let new = server("web-new", Some("2024-05-02T12:00:00Z"), "deny");
    let targets = "apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: everyone, namespace: ns}
spec: {networks: [{cidr: 0.0.0.0/0}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: new-open, namespace: ns}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-new}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: everyone}]
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: new-by-name, namespace: ns}
spec:
  server: {name: web-new}
  client: {unauthenticated: true, networks: [{cidr: 0.0.0.0/0}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: new-route, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-new}]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]
";
    let c = compiled(&[&new, &old, targets]);
    assert_eq!(at_80(&c.policy), Deny("web"));
    assert_eq!(lost(&c).len(), 1, "{}", c.warnings);

    let by_label = "apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: both, namespace: ns}
spec:
  server: {selector: {matchLabels: {tier: web}}}
  client: {unauthenticated: true, networks: [{cidr: 10.0.0.0/8}]}
";
    let labelled = |s: &str| {
        s.replace(
            "  namespace: ns\n",
            "  namespace: ns\n  labels: {tier: web}\n",
        )
    };
    let c = compiled(&[&labelled(&new), &labelled(&old), by_label]);
    assert_eq!(at_80(&c.policy), Allow("web", "default", "both"));
}

#[test]
fn a_creation_timestamp_that_is_not_rfc_3339_is_an_error_naming_it() {
    let text = [
        server("web", None, "deny"),
        server("web-too", Some("yesterday"), OPEN),
    ]
    .join("---\n");
    let err = Policy::compile(
        &[PolicySource::new("policy.yaml", &text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
    assert_eq!(err.document(), Some(2), "{err}");
    assert_eq!(err.name(), Some("web-too"), "{err}");
    assert_eq!(err.field_path(), "metadata.creationTimestamp", "{err}");
}

#[test]
fn servers_on_other_ports_are_not_warned_about() {
    let other = server("web-81", None, OPEN).replace("port: 80", "port: 81");
    let c = compiled(&[&server("web", None, "deny"), &other]);
    assert!(c.warnings.is_empty(), "{}", c.warnings);
    assert_eq!(at_80(&c.policy), Deny("web"));
    assert_eq!(
        decide(&c.policy, 81, Plain, Some("10.1.2.3"), "GET", "/", &[]),
        Allow("web-81", "default", OPEN)
    );
}

/// A reload that adds a newer Server for a port keeps the port with the
/// one that had it, as Linkerd keeps a port with its Server rather than
/// let it flap to each Server created after; removing that one gives the
/// port to the other.
#[test]
fn a_reload_that_adds_a_newer_server_keeps_the_port_with_the_older() {
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    let old = server("web", Some("2024-05-01T12:00:00Z"), "deny");
    let warnings = store
        .reload(&[PolicySource::new("old.yaml", &old)])
        .unwrap();
    assert!(warnings.is_empty(), "{warnings}");
    assert_eq!(at_80(&store.load()), Deny("web"));

    // The new file sorts first, and the new Server first by name.
    let new = server("a-web", Some("2024-06-01T12:00:00Z"), OPEN);
    let warnings = store
        .reload(&[
            PolicySource::new("a-new.yaml", &new),
            PolicySource::new("old.yaml", &old),
        ])
        .unwrap();
    assert_eq!(at_80(&store.load()), Deny("web"));
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].starts_with("a-new.yaml: document 1 (Server ns/a-web): spec.port: ")
            && text[0].contains("selected by Server web (old.yaml document 1)"),
        "{text:#?}"
    );

    let warnings = store
        .reload(&[PolicySource::new("a-new.yaml", &new)])
        .unwrap();
    assert!(warnings.is_empty(), "{warnings}");
    assert_eq!(at_80(&store.load()), Allow("a-web", "default", OPEN));
}

/// A Server `name` in `namespace` for `port` (a number or a name) of the
/// pods whose `app` is `selector`, whose `accessPolicy` is `access`.
fn server_selecting(
    namespace: &str,
    name: &str,
    selector: &str,
    port: &str,
    access: &str,
) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  creationTimestamp: \"2024-05-01T12:00:00Z\"\nspec:\n  podSelector: {{matchLabels: {{app: {selector}}}}}\n  port: {port}\n  accessPolicy: {access}\n"
    )
}

// At the edges of what selects a port: a port selected by name and by
// number is one port; a Server that does not select the workload (another
// `podSelector`, another namespace) takes no port from one that does; and
// a file without the Server that took the port hands it to the one that
// lost it.

#[test]
fn a_port_selected_by_name_and_by_number_is_one_port() {
    let by_number = server_selecting("ns", "a-number", "web", "80", OPEN);
    let by_name = server_selecting("ns", "b-name", "web", "http", "deny");
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
        server_selecting("ns", "a-api", "api", "80", "deny"),
        server_selecting("other", "a-web", "web", "80", "deny"),
    ] {
        let web = server_selecting("ns", "b-web", "web", "http", OPEN);
        for docs in [[&other, &web], [&web, &other]] {
            let c = compiled(&docs.map(String::as_str));
            assert_eq!(at_80(&c.policy), Allow("b-web", "default", OPEN));
            assert!(lost(&c).is_empty(), "{:#?}", c.warnings);
        }
    }
}

#[test]
fn without_the_server_that_took_it_the_port_goes_to_the_one_that_lost_it() {
    let winner = server_selecting("ns", "a", "web", "80", "deny");
    let loser = server_selecting("ns", "b", "web", "http", OPEN);
    let both = compiled(&[&winner, &loser]);
    assert_eq!(at_80(&both.policy), Deny("a"));
    let alone = compiled(&[&loser]);
    assert_eq!(at_80(&alone.policy), Allow("b", "default", OPEN));
    assert!(lost(&alone).is_empty(), "{:#?}", alone.warnings);
}
