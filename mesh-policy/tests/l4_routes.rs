//! `TLSRoute` and `TCPRoute`: outbound routes of connections, which the
//! sidecar's outbound routing reads from the same files (and warns about
//! where it does not apply them). Authorization has no use for them and
//! does not warn about them, as it does not about an `HTTPRoute` whose
//! parents are Services; a kind neither reads is still warned about once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind as Kind;
use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, WarningKind, Workload};

/// Linkerd's egress walkthrough (its network, `HTTPRoute` and
/// `TLSRoute`), and a `TCPRoute` beside it.
const ROUTES: &str = concat!(
    include_str!("../../mesh-retry/tests/fixtures/egress-walkthrough.yaml"),
    "---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: egress-test}
spec:
  parentRefs: [{name: pg, kind: Service, port: 5432}]
  rules:
  - backendRefs: [{name: pg, port: 5432}]
"
);

fn sources(text: &str) -> [PolicySource<'_>; 1] {
    [PolicySource::new("egress.yaml", text)]
}

#[test]
fn tls_and_tcp_routes_are_not_warned_about_by_authorization() {
    let warnings = mesh_policy::resource::read_sources(&sources(ROUTES)).unwrap();
    assert!(warnings.is_empty(), "{warnings}");
    let compiled = Policy::compile(
        &sources(ROUTES),
        &Workload::new("egress-test"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap();
    assert!(compiled.warnings.is_empty(), "{}", compiled.warnings);
}

#[test]
fn a_kind_no_reader_reads_is_still_warned_about_and_a_linkerd_one_refused() {
    let udp = ROUTES.replace("kind: TCPRoute", "kind: UDPRoute");
    let warnings = mesh_policy::resource::read_sources(&sources(&udp)).unwrap();
    let [warning] = warnings.iter().collect::<Vec<_>>()[..] else {
        panic!("{warnings}")
    };
    assert_eq!(warning.kind, WarningKind::UnsupportedKind);
    assert_eq!(warning.resource_kind, "UDPRoute");
    // policy.linkerd.io has no TLSRoute: a mistake, as before.
    let linkerd = ROUTES.replace(
        "gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute",
        "policy.linkerd.io/v1beta3\nkind: TLSRoute",
    );
    let err = mesh_policy::resource::read_sources(&sources(&linkerd)).unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
    assert_eq!(err.field_path(), "kind", "{err}");
}
