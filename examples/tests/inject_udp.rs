//! `sidecar inject` warns of each port a workload's own containers
//! declare over UDP (or SCTP): the sidecar proxies TCP only, so that
//! traffic goes to the container directly, outside the mesh. `linkerd
//! inject` warns the same way (`deployment/dns uses "protocol: UDP"`) and
//! injects all the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::inject::{self, Image, InjectConfig, Outcome, UnproxiedPort};
use support::sidecar_cli_with_input;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

const DNS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: dns, namespace: kube}
spec:
  template:
    spec:
      initContainers:
      - {name: seed, image: seed, ports: [{containerPort: 5353, protocol: UDP}]}
      containers:
      - name: coredns
        image: coredns
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153}
      - name: sctp
        image: sctp
        ports: [{containerPort: 9899, protocol: SCTP}]
";

#[test]
fn each_port_over_udp_or_sctp_is_named_with_its_container() {
    let injected = inject::inject("dns.yaml", DNS, &config()).unwrap();
    let note = &injected.notes[0];
    assert_eq!(note.outcome, Outcome::Injected);
    let found: Vec<(&str, u64, &str, &str)> = note
        .unproxied
        .iter()
        .map(|p: &UnproxiedPort| {
            (
                p.container.as_str(),
                p.port,
                p.protocol.as_str(),
                p.path.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "seed",
                5353,
                "UDP",
                "spec.template.spec.initContainers[0].ports[0]"
            ),
            // Paths into the input, as the user wrote it.
            (
                "coredns",
                53,
                "UDP",
                "spec.template.spec.containers[0].ports[0]"
            ),
            (
                "sctp",
                9899,
                "SCTP",
                "spec.template.spec.containers[1].ports[0]"
            ),
        ]
    );
    assert!(
        note.unproxied
            .iter()
            .all(|p| p.object == "Deployment kube/dns")
    );
    // One line each on standard error, after the note's own.
    let text = note.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[2].contains("warning:")
            && lines[2].contains("container coredns")
            && lines[2].contains("53/UDP")
            && lines[2].contains("TCP only"),
        "{}",
        lines[2]
    );
    assert!(lines[1].contains("init container seed"), "{}", lines[1]);

    // The output is written, and injecting it again says the same.
    let again = inject::inject("dns.yaml", &injected.yaml, &config()).unwrap();
    assert_eq!(again.notes[0].outcome, Outcome::AlreadyInjected);
    let ports = |ports: &[UnproxiedPort]| -> Vec<(String, u64)> {
        ports
            .iter()
            .map(|p| (p.container.clone(), p.port))
            .collect()
    };
    assert_eq!(ports(&again.notes[0].unproxied), ports(&note.unproxied));
}

#[test]
fn tcp_ports_and_workloads_left_out_get_no_warning() {
    let tcp = DNS
        .replace("protocol: UDP", "protocol: TCP")
        .replace("protocol: SCTP", "protocol: TCP")
        .replace(
            "containerPort: 53, protocol: TCP",
            "containerPort: 5300, protocol: TCP",
        );
    let injected = inject::inject("dns.yaml", &tcp, &config()).unwrap();
    assert!(
        injected.notes[0].unproxied.is_empty(),
        "{:?}",
        injected.notes
    );

    let disabled = DNS.replace(
        "  template:\n",
        "  template:\n    metadata: {annotations: {mesh.io/inject: disabled}}\n",
    );
    let injected = inject::inject("dns.yaml", &disabled, &config()).unwrap();
    assert!(matches!(injected.notes[0].outcome, Outcome::Disabled(_)));
    assert!(injected.notes[0].unproxied.is_empty());
}

#[test]
fn the_command_writes_the_warning_and_the_manifest() {
    let output = sidecar_cli_with_input(&["inject", "-"], DNS);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("stdin: document 1 (Deployment kube/dns): warning: container coredns"),
        "{stderr}"
    );
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("mesh-proxy")
    );
}
