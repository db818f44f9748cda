//! A route attached to an `EgressNetwork` that does not apply to the
//! workload is logged when the policy is loaded at start and when a
//! reload puts it in force, as `sidecar check` shows it.

use mesh_core::client::ClientConfig;
use mesh_metrics::{HttpMetrics, TcpMetrics};
use mesh_policy::PolicyMetrics;
use mesh_retry::RetryMetrics;
use mesh_tls::{CredentialStore, StoreConfig};
use prometheus_client::registry::Registry;

use super::{RouteReloads, load, reload};
use crate::sidecar::config::SidecarConfig;
use crate::sidecar::log::captured::Lines;
use crate::sidecar::outbound::{BackendMetrics, Outbound, OutboundMetrics, ResolveMetrics};

/// The network `local` of `emojivoto`, and an `HTTPRoute` attached to the
/// network `parent` (`name` or `namespace/name`) of `emojivoto`.
fn policy(parent: &str) -> String {
    let (namespace, name) = parent.split_once('/').unwrap_or(("emojivoto", parent));
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {{name: local, namespace: emojivoto}}
spec: {{trafficPolicy: Allow}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {{name: theirs, namespace: books}}
spec: {{trafficPolicy: Allow}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: get, namespace: emojivoto}}
spec:
  parentRefs:
  - {{group: policy.linkerd.io, kind: EgressNetwork, name: {name}, namespace: {namespace}}}
  rules: [{{matches: [{{path: {{value: /get}}}}]}}]
"
    )
}

#[test]
fn a_route_on_a_network_that_does_not_apply_is_logged_at_start_and_on_reload() {
    let lines = Lines::default();
    let _default = lines.capture();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("egress.yaml");
    std::fs::write(&path, policy("lokal")).unwrap();
    let yaml = format!(
        "outbound: {{listen: 127.0.0.1:0}}\n\
         policy:\n  workload: {{namespace: emojivoto}}\n  files: [{}]\n",
        path.display()
    );
    let config = SidecarConfig::from_yaml(&yaml, "sidecar.yaml").unwrap();
    let loaded = load(&config.policy, PolicyMetrics::default()).unwrap();
    let logged = lines.take();
    let line = logged
        .lines()
        .find(|l| l.contains("egress routes: network does not apply to this workload"))
        .unwrap_or_else(|| panic!("nothing logged at start:\n{logged}"));
    assert!(
        line.contains(
            "(HTTPRoute emojivoto/get): spec.parentRefs[0]: no EgressNetwork emojivoto/lokal \
             is in the policy"
        ),
        "{line}"
    );

    let mut registry = Registry::default();
    let outbound = Outbound::new(
        &config.outbound,
        &loaded.routes,
        &config.policy.workload.namespace,
        &CredentialStore::new(StoreConfig::default()),
        &ClientConfig::default(),
        &OutboundMetrics {
            http: &HttpMetrics::register(&mut registry),
            tcp: &TcpMetrics::register(&mut registry),
            retry: &RetryMetrics::register(&mut registry),
            backend: &BackendMetrics::register(&mut registry),
            resolve: &ResolveMetrics::register(&mut registry),
        },
    )
    .unwrap();
    let reloads = RouteReloads::register(&mut registry);
    let reload_with = |parent: &str| {
        std::fs::write(&path, policy(parent)).unwrap();
        let texts = config.policy.sources.read_blocking().unwrap();
        assert!(reload(
            &texts,
            &config.policy,
            &loaded.store,
            &outbound,
            &reloads
        ));
        lines.take()
    };

    // A reload to a network of another namespace says so, in its words.
    let logged = reload_with("books/theirs");
    let line = logged
        .lines()
        .find(|l| l.contains("egress routes: network does not apply to this workload"))
        .unwrap_or_else(|| panic!("nothing logged on reload:\n{logged}"));
    assert!(
        line.contains(
            "spec.parentRefs[0]: EgressNetwork books/theirs does not apply to this workload: \
             a workload in emojivoto is served the EgressNetworks of its own namespace"
        ),
        "{line}"
    );
    // One that puts the route on the workload's own network says nothing.
    let logged = reload_with("local");
    assert!(logged.contains("outbound routes reloaded"), "{logged}");
    assert!(!logged.contains("does not apply"), "{logged}");
}
