//! Bad input is rejected whole, with an error naming the document, the
//! resource's kind and name, the field path and the line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::{
    Compiled, Policy, PolicyConfig, PolicyMetrics, PolicySource, WarningKind, Workload,
};
use support::*;

const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
";

fn workload() -> Workload {
    Workload::new("ns").with_label("app", "web")
}

fn compile_err(text: &str) -> mesh_core::resource::ResourceError {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|_| ())
    .unwrap_err()
}

/// `text` compiled as `policy.yaml` for [`workload`]; fails the test if
/// it does not compile.
fn compile_ok(text: &str) -> Compiled {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap()
}

/// `SERVER`, then `doc` as the second document.
fn second(doc: &str) -> String {
    format!("{SERVER}---\n{doc}")
}

#[track_caller]
fn assert_error(
    err: &mesh_core::resource::ResourceError,
    kind: Kind,
    document: usize,
    resource: (&str, &str),
    field: &str,
    line: usize,
) {
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.document(), Some(document), "{err}");
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some(resource.0), Some(resource.1)),
        "{err}"
    );
    assert_eq!(err.field_path(), field, "{err}");
    assert_eq!(err.line(), Some(line), "{err}");
    assert_eq!(err.origin(), "policy.yaml");
}

#[test]
fn malformed_yaml_names_the_document_and_line() {
    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {name: n\nspec: {}\n",
    ));
    assert_eq!(err.kind(), Kind::Syntax);
    assert_eq!(err.document(), Some(2));
    assert!(err.line().unwrap() >= 10, "{err}");
    assert!(
        err.to_string().starts_with("policy.yaml: document 2: "),
        "{err}"
    );
}

#[test]
fn an_unknown_kind_is_a_warning_naming_it() {
    let text = second(
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: web.ns.svc.cluster.local}\nspec: {}\n",
    );
    let compiled = compile_ok(&text);
    let [warning] = compiled.warnings.iter().collect::<Vec<_>>()[..] else {
        panic!("{}", compiled.warnings)
    };
    assert_eq!(warning.kind, WarningKind::UnsupportedKind);
    assert_eq!(warning.document, 2);
    assert_eq!(warning.resource_kind, "ServiceProfile");
    assert_eq!(warning.name.as_deref(), Some("web.ns.svc.cluster.local"));
    assert_eq!(
        compiled.warnings.to_string(),
        "1 warning: policy.yaml: document 2 (ServiceProfile web.ns.svc.cluster.local): kind ServiceProfile (linkerd.io/v1alpha2) is not enforced by authorization"
    );
}

#[test]
fn a_missing_required_field() {
    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: ap, namespace: ns}\nspec:\n  requiredAuthenticationRefs: []\n",
    ));
    assert_error(
        &err,
        Kind::MissingField,
        2,
        ("AuthorizationPolicy", "ap"),
        "spec.targetRef",
        12,
    );
}

#[test]
fn a_bad_cidr() {
    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {name: nets, namespace: ns}\nspec:\n  networks:\n    - cidr: 10.0.0.0/8\n    - cidr: 10.0.0.0/33\n",
    ));
    assert_error(
        &err,
        Kind::InvalidValue,
        2,
        ("NetworkAuthentication", "nets"),
        "spec.networks[1].cidr",
        14,
    );
    assert!(
        err.message().contains("invalid cidr \"10.0.0.0/33\""),
        "{err}"
    );

    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {name: nets, namespace: ns}\nspec:\n  networks:\n    - cidr: 10.0.0.0/8\n      except: [192.168.0.0/16]\n",
    ));
    assert_error(
        &err,
        Kind::InvalidValue,
        2,
        ("NetworkAuthentication", "nets"),
        "spec.networks[0].except[0]",
        14,
    );
}

#[test]
fn a_bad_regex() {
    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\nspec:\n  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]\n  rules:\n    - matches:\n        - path: {type: RegularExpression, value: \"/books/(\"}\n",
    ));
    assert_error(
        &err,
        Kind::InvalidValue,
        2,
        ("HTTPRoute", "r"),
        "spec.rules[0].matches[0].path.value",
        15,
    );
    assert!(
        err.message().contains("invalid regular expression"),
        "{err}"
    );
}

#[test]
fn duplicate_names() {
    let err = compile_err(&second(&SERVER.replace("port: 80", "port: 81")));
    assert_error(
        &err,
        Kind::DuplicateName,
        2,
        ("Server", "web"),
        "metadata.name",
        10,
    );
    assert!(
        err.message()
            .contains("already defined in policy.yaml document 1"),
        "{err}"
    );
    // The same name in another namespace is another resource.
    let other_ns = SERVER.replace("namespace: ns", "namespace: other");
    compile(&second(&other_ns), &workload(), &PolicyConfig::default());
}

#[test]
fn a_target_ref_to_nothing() {
    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: ap, namespace: ns}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: missing}\n  requiredAuthenticationRefs: [{kind: ServiceAccount, name: a}]\n",
    ));
    assert_error(
        &err,
        Kind::DanglingReference,
        2,
        ("AuthorizationPolicy", "ap"),
        "spec.targetRef.name",
        12,
    );
    assert_eq!(err.message(), "no Server named missing in namespace ns");

    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: ap, namespace: ns}\nspec:\n  targetRef: {group: policy.linkerd.io, kind: Server, name: web}\n  requiredAuthenticationRefs:\n    - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: nobody}\n",
    ));
    assert_error(
        &err,
        Kind::DanglingReference,
        2,
        ("AuthorizationPolicy", "ap"),
        "spec.requiredAuthenticationRefs[0].name",
        14,
    );

    let err = compile_err(&second(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\nspec:\n  parentRefs: [{group: policy.linkerd.io, kind: Server, name: gone}]\n",
    ));
    assert_error(
        &err,
        Kind::DanglingReference,
        2,
        ("HTTPRoute", "r"),
        "spec.parentRefs[0].name",
        12,
    );
}

/// Two Servers selecting one port are no error, as in Linkerd: the first
/// by name (neither has a creation time) takes it, and the other is
/// warned about by document, name and field, with the one that took it.
#[test]
fn two_servers_selecting_the_same_port() {
    let text = second(
        "apiVersion: policy.linkerd.io/v1beta1\nkind: Server\nmetadata: {name: web-too, namespace: ns}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: Exists}]}\n  port: 80\n",
    );
    let compiled = compile_ok(&text);
    let warnings: Vec<_> = compiled.warnings.iter().collect();
    assert_eq!(warnings.len(), 1, "{}", compiled.warnings);
    assert_eq!(warnings[0].kind, WarningKind::NotApplied);
    assert_eq!(warnings[0].document, 2);
    assert_eq!(warnings[0].name.as_deref(), Some("web-too"));
    assert_eq!(warnings[0].field_path, "spec.port");
    assert!(
        warnings[0].message.starts_with(
            "port 80 of the workload is also selected by Server web (policy.yaml document 1)"
        ),
        "{}",
        warnings[0]
    );
}

#[test]
fn two_servers_selecting_the_same_port_by_number_and_name() {
    let text = second(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web-too, namespace: ns}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: Exists}]}\n  port: http\n",
    );
    let named = workload().with_port("http", 80);
    let compiled = Policy::compile(
        &[PolicySource::new("policy.yaml", &text)],
        &named,
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    assert!(
        compiled.warnings.iter().any(|w| w.document == 2
            && w.field_path == "spec.port"
            && w.message.starts_with(
                "port http (80) of the workload is also selected by Server web (policy.yaml document 1)"
            )),
        "{}",
        compiled.warnings
    );
    // A workload whose ports do not collide compiles, and says the Server covers nothing.
    let compiled = compile_ok(&text);
    assert!(
        compiled.warnings.to_string().contains("no port named http"),
        "{}",
        compiled.warnings
    );
}

#[test]
fn other_invalid_values_are_named() {
    let cases = [
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: m, namespace: ns}\nspec:\n  identities: [\"spiffe://td/ns/../x\"]\n",
            "spec.identities[0]",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: m, namespace: ns}\nspec: {}\n",
            "spec",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: s, namespace: ns}\nspec:\n  server: {name: web, selector: {}}\n  client: {unauthenticated: true}\n",
            "spec.server",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: s, namespace: ns}\nspec:\n  server: {name: web}\n  client: {}\n",
            "spec.client",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: ap, namespace: ns}\nspec:\n  targetRef: {kind: Namespace, name: elsewhere}\n  requiredAuthenticationRefs: [{kind: ServiceAccount, name: a}]\n",
            "spec.targetRef.name",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: ap, namespace: ns}\nspec:\n  targetRef: {kind: Namespace, name: ns}\n  requiredAuthenticationRefs: []\n",
            "spec.requiredAuthenticationRefs",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: s, namespace: ns}\nspec:\n  podSelector: {matchExpressions: [{key: a, operator: In}]}\n  port: 81\n",
            "spec.podSelector.matchExpressions[0]",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: s, namespace: ns}\nspec:\n  podSelector: {}\n  port: 0\n",
            "spec.port",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: s, namespace: ns}\nspec:\n  podSelector: {}\n  port: 81\n  proxyProtocol: HTTP/3\n",
            "spec.proxyProtocol",
        ),
    ];
    for (doc, field) in cases {
        let err = compile_err(&second(doc));
        assert_eq!(err.document(), Some(2), "{err}");
        assert_eq!(err.field_path(), field, "{err}");
        assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
        assert!(err.line().is_some(), "{err}");
    }
}

#[test]
fn an_unserved_version_is_read_with_a_warning_and_unknown_ones_fail() {
    let compiled = Policy::compile(
        &[PolicySource::new("guide.yaml", GUIDE)],
        &Workload::new("emojivoto").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    let kinds: Vec<_> = compiled
        .warnings
        .iter()
        .map(|w| (w.kind, w.name.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (WarningKind::UnservedVersion, Some("web-server-80-auth")),
            (WarningKind::Deviation, Some("web-server-80-auth")),
        ]
    );
    let err = compile_err(&SERVER.replace("v1beta3", "v1alpha9"));
    assert_eq!(
        (err.kind(), err.field_path(), err.line()),
        (Kind::UnsupportedVersion, "apiVersion", Some(1))
    );
}

#[test]
fn unsupported_fields_and_filters_are_warned_about_by_name() {
    let text = second(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\ncolour: blue\nspec:\n  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]\n  rules:\n    - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: x}}}]\n      timeouts: {request: 1s}\n",
    );
    let compiled = Policy::compile(
        &[PolicySource::new("p.yaml", &text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    let seen: Vec<_> = compiled
        .warnings
        .iter()
        .map(|w| (w.kind, w.field_path.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            // Outside `spec`: in it, a route under a Server fails on a
            // field it does not read (strict_fields.rs).
            (WarningKind::IgnoredField, "colour"),
            (WarningKind::UnsupportedFilter, "spec.rules[0].filters[0]"),
            (WarningKind::NotApplied, "spec.rules[0]"),
        ]
    );
    assert!(
        compiled
            .warnings
            .to_string()
            .contains("filter RequestMirror is not applied"),
        "{}",
        compiled.warnings
    );
}

/// A ServerAuthorization names its Servers by a selector, and one that
/// selects none (a typo in a label) authorizes nothing: the clients it was
/// written for are refused, and nothing says why. It is reported, as a
/// `server.name` naming no Server is (there, an error).
#[test]
fn a_server_authorization_whose_selector_selects_no_server_is_a_warning() {
    let text = second(
        "apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: web-clients, namespace: ns}
spec:
  server: {selector: {matchLabels: {app: wbe}}}
  client: {unauthenticated: true}
",
    );
    let compiled = Policy::compile(
        &[PolicySource::new("p.yaml", &text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    let seen: Vec<_> = compiled
        .warnings
        .iter()
        .map(|w| (w.kind, w.name.as_deref(), w.field_path.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(
            WarningKind::NotApplied,
            Some("web-clients"),
            "spec.server.selector"
        )],
        "{}",
        compiled.warnings
    );
    assert!(
        compiled.warnings.to_string().contains("selects no Server"),
        "{}",
        compiled.warnings
    );
}

#[test]
fn a_list_of_resources_is_refused_rather_than_skipped() {
    // `kubectl get servers,authorizationpolicies -o yaml` writes a List.
    // Skipped as a kind authorization does not use, its Server would not
    // cover port 80, which the default policy would then leave open to
    // every client.
    let text = "apiVersion: v1
kind: List
metadata: {resourceVersion: \"\"}
items:
  - apiVersion: policy.linkerd.io/v1beta3
    kind: Server
    metadata: {name: web, namespace: ns}
    spec:
      podSelector: {matchLabels: {app: web}}
      port: 80
";
    let err = compile_err(text);
    assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
    assert_eq!(err.document(), Some(1), "{err}");
    assert_eq!(err.resource_kind(), Some("List"), "{err}");
    assert_eq!(err.field_path(), "items", "{err}");
    // The first item's line.
    assert_eq!(err.line(), Some(5), "{err}");
    assert!(
        err.message()
            .contains("a List is not read, and its items (1) would be ignored"),
        "{err}"
    );
    // So is a list of one kind, as the API server answers one.
    let err = compile_err(&text.replace("kind: List", "kind: ServerList"));
    assert_eq!(err.resource_kind(), Some("ServerList"), "{err}");
    assert_eq!(err.field_path(), "items", "{err}");
    // A document of another kind that happens to end in List, without
    // items, is still just a kind authorization does not use.
    let other = "apiVersion: example.com/v1\nkind: AllowList\nmetadata: {name: a}\nspec: {}\n";
    let compiled = compile_ok(other);
    assert_eq!(compiled.warnings.len(), 1, "{}", compiled.warnings);
}

#[test]
fn a_kind_linkerds_policy_group_does_not_have_is_refused() {
    // A misspelt `Server` skipped as a kind authorization does not use
    // would leave its port to the default policy, open to every client;
    // the API server would refuse it ("no matches for kind").
    let text = SERVER.replace("kind: Server", "kind: Sever");
    let err = compile_err(&text);
    assert_error(&err, Kind::InvalidValue, 1, ("Sever", "web"), "kind", 2);
    assert!(
        err.message().contains(
            "policy.linkerd.io has no kind Sever: its kinds authorization reads are Server,"
        ),
        "{err}"
    );
    // Linkerd's kinds that authorization does not enforce are warnings.
    // So is a ServiceProfile in this group, as published guides write it.
    for kind in ["HTTPLocalConcurrencyLimitPolicy", "ServiceProfile"] {
        let doc = format!(
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: {kind}\nmetadata: {{name: x, namespace: ns}}\nspec: {{}}\n"
        );
        let compiled = Policy::compile(
            &[PolicySource::new("policy.yaml", &second(&doc))],
            &workload(),
            &PolicyConfig::default(),
            &PolicyMetrics::default(),
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let [warning] = compiled.warnings.iter().collect::<Vec<_>>()[..] else {
            panic!("{}", compiled.warnings)
        };
        assert_eq!(warning.kind, WarningKind::UnsupportedKind, "{kind}");
    }
}
