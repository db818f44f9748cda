//! The egress tests' shared setup: Linkerd's `EgressNetwork` and the
//! routes attached to one, a sidecar in `emojivoto` that reads them from a
//! policy file, and the parent and route labels Linkerd's route families
//! give egress traffic.

use std::path::{Path, PathBuf};

use mesh_examples::sidecar::Running;

/// An `EgressNetwork` `name` of `emojivoto` with `policy`, and `networks`
/// (YAML, one line) when not empty: without it the network captures every
/// address outside the cluster networks (127.0.0.1 included).
pub fn network(name: &str, policy: &str, networks: &str) -> String {
    let networks = if networks.is_empty() {
        String::new()
    } else {
        format!("  networks: {networks}\n")
    };
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\n\
         metadata: {{name: {name}, namespace: emojivoto}}\n\
         spec:\n  trafficPolicy: {policy}\n{networks}"
    )
}

/// A backend that is the parent network `net`: the original destination.
pub const TO_NETWORK: &str = "[{kind: EgressNetwork, group: policy.linkerd.io, name: net}]";

/// A `TLSRoute` `name` for `hostnames` on `port` of network `net`, to
/// `backends`.
pub fn tls_route(name: &str, hostnames: &str, port: u16, backends: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\n\
         metadata: {{name: {name}, namespace: emojivoto}}\n\
         spec:\n  hostnames: {hostnames}\n\
         \x20 parentRefs: [{{name: net, kind: EgressNetwork, group: policy.linkerd.io, port: {port}}}]\n\
         \x20 rules: [{{backendRefs: {backends}}}]\n"
    )
}

/// A `TCPRoute` `name` on `port` of network `net`, to `backends`.
pub fn tcp_route(name: &str, port: u16, backends: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n\
         metadata: {{name: {name}, namespace: emojivoto}}\n\
         spec:\n\
         \x20 parentRefs: [{{name: net, kind: EgressNetwork, group: policy.linkerd.io, port: {port}}}]\n\
         \x20 rules: [{{backendRefs: {backends}}}]\n"
    )
}

/// A sidecar started from `config` (YAML: the sections before `policy`),
/// in `emojivoto`, whose policy file is `policy`, written to `policy.yaml`
/// in `dir` and read again every 50 ms; and that file, for a test that
/// rewrites it.
pub fn sidecar(dir: &Path, config: &str, policy: &str) -> (Running, PathBuf) {
    let file = dir.join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let running = super::sidecar(&format!(
        "{config}policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n  \
         watch_interval: 50ms\n",
        file.display()
    ));
    (running, file)
}

/// The parent labels of network `network` in `emojivoto` for traffic to
/// `port`.
pub fn parent_labels(network: &str, port: u16) -> String {
    format!(
        "parent_group=\"policy.linkerd.io\",parent_kind=\"EgressNetwork\",\
         parent_namespace=\"emojivoto\",parent_name=\"{network}\",\
         parent_port=\"{port}\",parent_section_name=\"\""
    )
}

/// The parent and route labels of route `route` of network `network`, to
/// `port`: `kind` is a route's kind (a resource of `emojivoto`), or
/// `default` for the network's own route.
pub fn route_labels(network: &str, port: u16, kind: &str, route: &str) -> String {
    let (group, namespace) = if kind == "default" {
        ("", "")
    } else {
        ("gateway.networking.k8s.io", "emojivoto")
    };
    format!(
        "{},route_group=\"{group}\",route_kind=\"{kind}\",\
         route_namespace=\"{namespace}\",route_name=\"{route}\"",
        parent_labels(network, port)
    )
}

/// Fails the test unless each of `lines` is a whole line of `metrics`.
pub fn assert_lines(metrics: &str, lines: &[String]) {
    for line in lines {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in {metrics}"
        );
    }
}
