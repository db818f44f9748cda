//! The loop guard of [`Outbound`] over the addresses the listeners were
//! bound to: a listener configured on port 0 gets its port only then.

use std::net::{SocketAddr, TcpListener};

use mesh_core::client::ClientConfig;
use mesh_metrics::{HttpMetrics, TcpMetrics};
use mesh_retry::RetryMetrics;
use mesh_tls::{CredentialStore, StoreConfig};
use prometheus_client::{encoding::text::encode, registry::Registry};

use super::{BackendMetrics, Outbound, OutboundMetrics, ResolveMetrics};
use crate::sidecar::config::SidecarConfig;

/// The `outbound_endpoints` of each service of the sidecar configured by
/// `yaml`, its outbound listeners bound to `bound` (as `run` passes
/// them), one `service count` a line.
fn endpoints(yaml: &str, bound: &[SocketAddr]) -> Vec<String> {
    let config = SidecarConfig::from_yaml(yaml, "sidecar.yaml").unwrap();
    let mut registry = Registry::default();
    let _outbound = Outbound::listening_on(
        &config.outbound,
        bound,
        &[],
        false,
        &Default::default(),
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
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("outbound_endpoints{service=\""))
        .map(|rest| rest.replace("\"} ", " "))
        .collect();
    lines.sort_unstable();
    lines
}

#[test]
fn a_listener_configured_on_port_0_is_left_out_at_the_port_it_was_bound_to() {
    // Stands in for the sidecar's outbound listener, configured on port 0
    // and bound by `run` before the outbound side is built.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = listener.local_addr().unwrap();
    let port = bound.port();
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: by-address\n      endpoints: [127.0.0.1:{port}, 10.0.0.7:8080]\n\
         \x20   - name: by-name\n      endpoints: [\"localhost:{port}\"]\n"
    );
    // `localhost` may answer ::1 too, where the listener is not: only its
    // 127.0.0.1 answer is left out.
    let by_name = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))
        .unwrap()
        .filter(|addr| *addr != bound)
        .count();
    assert_eq!(
        endpoints(&yaml, &[bound]),
        ["by-address 1".to_owned(), format!("by-name {by_name}")]
    );
}
