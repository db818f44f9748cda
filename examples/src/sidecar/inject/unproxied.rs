//! Ports of the pod's own containers that the sidecar does not proxy:
//! those over UDP or SCTP, said on standard error.
//!
//! The sidecar proxies TCP. Traffic on a port declared over another
//! protocol goes to the container as it did before injection: no mutual
//! TLS, no authorization policy, no metrics. That is not a reason to
//! leave the workload out (its TCP ports are meshed, and a DNS server
//! answers over TCP too), but it is one to say so, as `linkerd inject`
//! says `‼ deployment/web uses "protocol: UDP"` and injects all the same
//! (`checkUDPPorts` in its `pkg/inject/report.go`, shown by
//! `cli/cmd/inject.go`, in `linkerd/linkerd2`). Here each port is named,
//! with its container and where it is written.

use std::fmt;

use serde_yaml_ng::{Mapping, Value};

use super::{proxy::CONTAINER_NAME, yaml::FieldPath};

/// A port one of an injected pod's containers declares over a protocol
/// the sidecar does not proxy (UDP or SCTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnproxiedPort {
    /// The workload: `Deployment kube/dns` (kind, `namespace/` when it
    /// has one, name).
    pub object: String,
    /// The container's name (empty when it has none).
    pub container: String,
    /// Whether the container is an init container.
    pub init: bool,
    /// Its `containerPort`.
    pub port: u64,
    /// Its `protocol`, as written: `UDP` or `SCTP`.
    pub protocol: String,
    /// Where it is written in the input document:
    /// `spec.template.spec.containers[0].ports[1]`.
    pub path: String,
}

impl fmt::Display for UnproxiedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            object,
            container,
            init,
            port,
            protocol,
            path,
        } = self;
        let kind = if *init { "init container" } else { "container" };
        write!(
            f,
            "warning: {kind} {container} of {object} declares port {port}/{protocol} (at \
             {path}), which the sidecar does not proxy: it proxies TCP only, so this port's \
             traffic reaches the container directly, without mutual TLS, authorization \
             policy or metrics"
        )
    }
}

/// Each port over UDP or SCTP that a container of the pod `spec` (at
/// `spec_path`) declares, init containers first, the sidecar's own left
/// out. `object` names the workload. A port without a `protocol` is TCP,
/// as Kubernetes reads it; one without a numeric `containerPort`, which
/// the API server refuses, is not named.
pub(super) fn unproxied_ports(
    spec: &Mapping,
    spec_path: &FieldPath,
    object: &str,
) -> Vec<UnproxiedPort> {
    let mut found = Vec::new();
    for key in ["initContainers", "containers"] {
        let Some(containers) = spec.get(key).and_then(Value::as_sequence) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            let name = container.get("name").and_then(Value::as_str);
            if name == Some(CONTAINER_NAME) {
                continue;
            }
            let Some(ports) = container.get("ports").and_then(Value::as_sequence) else {
                continue;
            };
            for (j, port) in ports.iter().enumerate() {
                let protocol = port.get("protocol").and_then(Value::as_str);
                let Some(protocol) = protocol.filter(|protocol| *protocol != "TCP") else {
                    continue;
                };
                let Some(number) = port.get("containerPort").and_then(Value::as_u64) else {
                    continue;
                };
                found.push(UnproxiedPort {
                    object: object.to_owned(),
                    container: name.unwrap_or_default().to_owned(),
                    init: key == "initContainers",
                    port: number,
                    protocol: protocol.to_owned(),
                    path: spec_path
                        .key(key)
                        .index(i)
                        .key("ports")
                        .index(j)
                        .to_string(),
                });
            }
        }
    }
    found
}
