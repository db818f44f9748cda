//! `sidecar inject` refuses pods on the host's network, as `linkerd
//! inject` does: their sidecar would listen on the node's own ports 4143,
//! 4140 and 4191, where a second such pod on the node, or the node's own
//! services, would share or take them. Like `linkerd inject` (which fails
//! with `failed to inject daemonset/node-agent: hostNetwork is enabled`
//! and exits 1), it writes nothing to standard output, so a pipeline into
//! `kubectl apply` applies nothing, and names every such workload of the
//! input on standard error. `mesh.io/inject: disabled` leaves one out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::inject::{self, Image, InjectConfig, InjectError, Outcome};
use support::sidecar_cli_with_input;

const IMAGE: &str = "ghcr.io/mesh/sidecar:0.1.0";

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse(IMAGE).unwrap())
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

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: emojivoto}
spec:
  template:
    spec:
      containers: [{name: web, image: web:v1}]
";

fn inject_cli(input: &str) -> (Option<i32>, String, String) {
    let output = sidecar_cli_with_input(&["inject", "-", "--image", IMAGE], input);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_pod_on_the_host_network_fails_the_whole_input_and_nothing_is_written() {
    let (code, stdout, stderr) = inject_cli(&format!("{WEB}---\n{DAEMON_SET}"));
    assert_eq!(code, Some(1), "{stderr}");
    // Not even the Deployment that could be injected: half an input
    // applied is a mesh half moved.
    assert_eq!(stdout, "", "{stderr}");
    assert!(
        stderr.contains(
            "stdin: document 2 (DaemonSet monitoring/node-agent): cannot inject: the pod uses the \
             host's network (hostNetwork: true)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("mesh.io/inject: disabled"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    // No note of the workloads that were fine: nothing was written.
    assert!(!stderr.contains("(Deployment emojivoto/web)"), "{stderr}");
}

#[test]
fn every_workload_that_cannot_be_injected_is_named_not_only_the_first() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: a}]\n";
    let (code, stdout, stderr) = inject_cli(&format!("{DAEMON_SET}---\n{WEB}---\n{pod}"));
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert!(stderr.contains("2 workloads"), "{stderr}");
    assert!(
        stderr.contains("document 1 (DaemonSet monitoring/node-agent)"),
        "{stderr}"
    );
    assert!(stderr.contains("document 3 (Pod p)"), "{stderr}");

    let error =
        inject::inject("in.yaml", &format!("{DAEMON_SET}---\n{pod}"), &config()).unwrap_err();
    let InjectError::Refused(refused) = error else {
        panic!("{error:?}")
    };
    let outcomes: Vec<_> = refused.iter().map(|note| note.outcome.clone()).collect();
    assert_eq!(outcomes, [Outcome::HostNetwork, Outcome::HostNetwork]);
}

#[test]
fn mesh_inject_disabled_leaves_a_pod_on_the_host_network_out_and_the_rest_is_injected() {
    // `kubectl get -A -o yaml` holds node agents on the host's network:
    // annotated `disabled`, they pass through and the rest is injected.
    let disabled = DAEMON_SET.replace(
        "  template:\n",
        "  template:\n    metadata:\n      annotations: {mesh.io/inject: disabled}\n",
    );
    let (code, stdout, stderr) = inject_cli(&format!("{disabled}---\n{WEB}"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("mesh-proxy"), "{stdout}");
    assert!(
        stderr.contains(
            "document 1 (DaemonSet monitoring/node-agent): not injected: mesh.io/inject is disabled"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("document 2 (Deployment emojivoto/web): injected"),
        "{stderr}"
    );
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
