//! `sidecar inject` leaves pods on the host's network alone, as `linkerd
//! inject` does: their sidecar would listen on the node's own ports 4143,
//! 4140 and 4191, where a second such pod on the node, or the node's own
//! services, would share or take them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::inject::{self, Image, InjectConfig, Outcome};

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

const DAEMON_SET: &str = "\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: monitoring}
spec:
  template:
    spec:
      hostNetwork: true
      containers: [{name: agent, image: agent:v1}]
";

#[test]
fn a_pod_on_the_host_network_is_not_injected() {
    let injected = inject::inject("ds.yaml", DAEMON_SET, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::HostNetwork);
    assert!(!injected.yaml.contains("mesh-proxy"), "{}", injected.yaml);
    assert!(
        !injected.yaml.contains("mesh.io/injected"),
        "{}",
        injected.yaml
    );
    let note = injected.notes[0].to_string();
    assert!(
        note.contains("not injected") && note.contains("hostNetwork"),
        "{note}"
    );

    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: a}]\n";
    let injected = inject::inject("pod.yaml", pod, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::HostNetwork);
}

#[test]
fn a_pod_on_its_own_network_is_injected() {
    let text = DAEMON_SET.replace("hostNetwork: true", "hostNetwork: false");
    let injected = inject::inject("ds.yaml", &text, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
}

#[test]
fn a_host_network_that_is_not_a_boolean_is_refused() {
    let text = DAEMON_SET.replace("hostNetwork: true", "hostNetwork: 'yes'");
    let error = inject::inject("ds.yaml", &text, &config()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("spec.template.spec.hostNetwork"),
        "{message}"
    );
    assert!(message.contains("line 7"), "{message}");
}
