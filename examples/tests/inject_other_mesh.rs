//! `sidecar inject` refuses a pod that has, or will get, another mesh's
//! proxy, as `linkerd inject` fails on a pod with a known sidecar
//! (`pod has a sidecar injected already`, exit 1, nothing written).
//! Linkerd's proxy listens on 4143, 4140 and 4191, the sidecar's own
//! ports, so of two proxies in one pod one cannot bind and the pod never
//! becomes ready; Istio's init container redirects the sidecar's own
//! traffic. A workload whose pod template says `linkerd.io/inject:
//! enabled` gets Linkerd's proxy from its injector when the pod is created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::inject::{self, Image, InjectConfig, InjectError, Outcome};
use support::sidecar_cli_with_input;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

fn deployment(template: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: emojivoto}}
spec:
  template:
{template}"
    )
}

/// What was done to the last object, its note, and the output; for an
/// input refused, the refused workload's outcome and note, and no output.
fn outcome(text: &str) -> (Outcome, String, String) {
    match inject::inject("web.yaml", text, &config()) {
        Ok(injected) => {
            let note = injected.notes.last().unwrap();
            (note.outcome.clone(), note.to_string(), injected.yaml)
        }
        Err(InjectError::Refused(refused)) => {
            let note = refused.last().unwrap();
            (note.outcome.clone(), note.to_string(), String::new())
        }
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn a_pod_with_linkerds_proxy_is_refused() {
    let text = deployment(
        "    spec:
      containers:
      - {name: web, image: web}
      - {name: linkerd-proxy, image: cr.l5d.io/linkerd/proxy:edge-24.1.1}
      initContainers:
      - {name: linkerd-init, image: cr.l5d.io/linkerd/proxy-init:v2.2.3}
",
    );
    let (outcome, note, yaml) = outcome(&text);
    assert_eq!(
        outcome,
        Outcome::OtherProxy("container linkerd-proxy".into())
    );
    assert!(!yaml.contains("mesh-proxy") && !yaml.contains("mesh.io/injected"));
    assert!(
        note.contains("cannot inject") && note.contains("linkerd-proxy"),
        "{note}"
    );
}

#[test]
fn the_cli_exits_1_and_writes_nothing_for_a_pod_with_another_proxy() {
    let proxied = deployment(
        "    spec:
      containers:
      - {name: web, image: web}
      - {name: istio-proxy, image: istio/proxyv2}
",
    );
    let plain =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";
    let output = sidecar_cli_with_input(
        &["inject", "-", "--image", "ghcr.io/mesh/sidecar:0.1.0"],
        &format!("{plain}---\n{proxied}"),
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "{stderr}");
    assert!(
        stderr.contains(
            "stdin: document 2 (Deployment emojivoto/web): cannot inject: another mesh's proxy is in \
             the pod or will be (container istio-proxy)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_pod_with_istios_proxy_or_init_container_is_not_injected() {
    let native = "    spec:
      initContainers: [{name: istio-proxy, image: istio/proxyv2, restartPolicy: Always}]
      containers: [{name: web, image: web}]
";
    assert_eq!(
        outcome(&deployment(native)).0,
        Outcome::OtherProxy("init container istio-proxy".into())
    );
    let init = "    spec:
      initContainers: [{name: istio-init, image: istio/proxyv2}]
      containers: [{name: web, image: web}]
";
    assert_eq!(
        outcome(&deployment(init)).0,
        Outcome::OtherProxy("init container istio-init".into())
    );
}

#[test]
fn a_pod_template_linkerd_will_inject_is_refused() {
    for mode in ["enabled", "ingress"] {
        let text = deployment(&format!(
            "    metadata:
      annotations: {{linkerd.io/inject: {mode}}}
    spec:
      containers: [{{name: web, image: web}}]
"
        ));
        let (outcome, note, yaml) = outcome(&text);
        assert_eq!(
            outcome,
            Outcome::OtherProxy(format!("linkerd.io/inject: {mode} on the pod template"))
        );
        assert!(!yaml.contains("mesh-proxy"), "{yaml}");
        assert!(note.contains("linkerd.io/inject"), "{note}");
    }
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {linkerd.io/inject: enabled}\nspec:\n  containers: [{name: a, image: a}]\n";
    assert_eq!(
        outcome(pod).0,
        Outcome::OtherProxy("linkerd.io/inject: enabled on the pod".into())
    );
}

#[test]
fn a_namespace_linkerd_injects_refuses_its_workloads_unless_the_pod_says_disabled() {
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: emojivoto\n  annotations: {linkerd.io/inject: enabled}\n---\n";
    let plain = deployment("    spec:\n      containers: [{name: web, image: web}]\n");
    assert_eq!(
        outcome(&format!("{namespace}{plain}")).0,
        Outcome::OtherProxy("linkerd.io/inject: enabled on namespace emojivoto".into())
    );
    // Linkerd's injector reads the pod's annotation before its namespace's.
    let opted_out = deployment(
        "    metadata:
      annotations: {linkerd.io/inject: disabled}
    spec:
      containers: [{name: web, image: web}]
",
    );
    assert_eq!(
        outcome(&format!("{namespace}{opted_out}")).0,
        Outcome::Injected
    );
}

#[test]
fn linkerds_annotations_that_do_not_inject_leave_the_workload_to_be_injected() {
    let text = deployment(
        "    metadata:
      annotations: {linkerd.io/inject: disabled, config.linkerd.io/skip-inbound-ports: '4222'}
    spec:
      containers: [{name: web, image: web}]
",
    );
    assert_eq!(outcome(&text).0, Outcome::Injected);
}

#[test]
fn mesh_inject_disabled_is_reported_before_another_proxy() {
    let text = deployment(
        "    metadata:
      annotations: {mesh.io/inject: disabled, linkerd.io/inject: enabled}
    spec:
      containers: [{name: web, image: web}]
",
    );
    assert!(matches!(outcome(&text).0, Outcome::Disabled(_)));
}
