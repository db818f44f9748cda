//! Which Servers select the workload: a Server selects pods with
//! `podSelector` or, since Linkerd 2.15 (`policy.linkerd.io/v1beta2`),
//! external workloads with `externalWorkloadSelector`; exactly one of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, WarningKind, Workload};
use support::{T::*, Want::*, *};

const WEB: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
";

const VM: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: vm}
spec:
  externalWorkloadSelector: {matchLabels: {app: web}}
  port: 80
  accessPolicy: all-unauthenticated
";

fn workload() -> Workload {
    Workload::new("ns").with_label("app", "web")
}

fn compiled(text: &str) -> Result<mesh_policy::Compiled, mesh_core::resource::ResourceError> {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
}

#[test]
fn a_server_for_external_workloads_does_not_select_the_workload() {
    let text = format!("{WEB}---\n{VM}");
    let compiled = compiled(&text).unwrap_or_else(|e| panic!("{e}"));
    // Port 80 is `web`'s: its default `deny` decides, not `vm`'s access policy.
    assert_eq!(
        as_want(&compiled.policy.evaluate(
            80,
            &mesh_policy::Client::unknown(),
            &http::Request::get("/").body(()).unwrap()
        )),
        Deny("web")
    );
    let warning = compiled
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::NotApplied)
        .expect("a warning about the vm Server");
    assert_eq!(warning.field_path, "spec.externalWorkloadSelector");

    // Alone, it leaves port 80 to the default policy.
    let policy = compile(VM, &workload(), &PolicyConfig::default());
    assert_eq!(
        decide(&policy, 80, Plain, None, "GET", "/", &[]),
        Allow("all-unauthenticated", "default", "all-unauthenticated")
    );
}

#[test]
fn a_server_needs_exactly_one_selector() {
    for spec in [
        "spec:\n  port: 80\n",
        "spec:\n  podSelector: {}\n  externalWorkloadSelector: {}\n  port: 80\n",
    ] {
        let text = format!(
            "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: s}}\n{spec}"
        );
        let err = compiled(&text).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
        assert_eq!(err.field_path(), "spec", "{err}");
        assert!(
            err.message()
                .contains("exactly one of podSelector and externalWorkloadSelector"),
            "{err}"
        );
    }
}

/// `port: "8080"` is a port name in YAML, and no pod port can have it:
/// Kubernetes requires a letter in a port name. Taking it as a name would
/// leave port 8080 to the default policy, open by default, when the
/// Server meant to close it.
#[test]
fn a_quoted_port_number_is_an_error_not_a_name_that_selects_nothing() {
    for port in ["\"8080\"", "'80'"] {
        let text = WEB.replace("port: 80", &format!("port: {port}"));
        let err = compiled(&text).map(|_| ()).unwrap_err();
        assert_eq!(err.field_path(), "spec.port", "{err}");
        assert!(err.message().contains("letter"), "{err}");
    }
    // A real name still reads as one.
    let named = WEB.replace("port: 80", "port: http");
    let workload = workload().with_port("http", 8080);
    let policy = compile(&named, &workload, &PolicyConfig::default());
    assert_eq!(
        decide(&policy, 8080, Plain, None, "GET", "/", &[]),
        Deny("web")
    );
}

/// A port range (`8080-8090`) is no port name either: Linkerd's Server
/// covers one port. Read as a name, it would select nothing and leave
/// every port of the range to the default policy.
#[test]
fn a_port_range_is_an_error_not_a_name_that_selects_nothing() {
    for port in ["8080-8090", "\"80-90\"", "'80:90'"] {
        let text = WEB.replace("port: 80", &format!("port: {port}"));
        let err = compiled(&text).map(|_| ()).unwrap_err();
        assert_eq!(err.field_path(), "spec.port", "{err}");
        assert!(err.message().contains("letter"), "{err}");
    }
    // A name with digits and a hyphen is still a name.
    let named = WEB.replace("port: 80", "port: http-8080");
    let workload = workload().with_port("http-8080", 8080);
    let policy = compile(&named, &workload, &PolicyConfig::default());
    assert_eq!(
        decide(&policy, 8080, Plain, None, "GET", "/", &[]),
        Deny("web")
    );
}

#[test]
fn a_route_under_an_opaque_server_is_a_warning() {
    // An opaque Server's connections are decided whole, by the Server's
    // own authorizations: a route there matches no request, so what
    // targets it (an AuthorizationPolicy, a filter) admits nothing.
    let text = format!(
        "{}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: admin}}
spec:
  parentRefs:
    - {{group: policy.linkerd.io, kind: Server, name: web}}
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /admin}}}}]}}]
",
        WEB.replace("port: 80\n", "port: 80\n  proxyProtocol: opaque\n")
    );
    let opaque = compiled(&text).unwrap_or_else(|e| panic!("{e}"));
    let [warning] = opaque.warnings.iter().collect::<Vec<_>>()[..] else {
        panic!("{}", opaque.warnings)
    };
    assert_eq!(warning.kind, WarningKind::NotApplied);
    assert_eq!(warning.document, 2);
    assert_eq!(warning.name.as_deref(), Some("admin"));
    assert_eq!(warning.field_path, "spec.parentRefs[0]");
    assert!(
        warning
            .message
            .contains("Server web is opaque: its connections are decided whole"),
        "{warning}"
    );
    // Under an HTTP Server, the same route is read without a warning.
    let text = text.replace("  proxyProtocol: opaque\n", "");
    assert!(compiled(&text).unwrap().warnings.is_empty());
}
