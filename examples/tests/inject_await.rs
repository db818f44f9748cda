//! A sidecar injected as an ordinary container holds the application back
//! until it is ready, as Linkerd's proxy does with
//! `config.linkerd.io/proxy-await` (on unless `disabled`): it goes first
//! among the containers with a `postStart` hook running `sidecar await`
//! on its admin port, and the kubelet starts the next container only once
//! that hook has returned. kubectl's default container stays the
//! application's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use serde_yaml_ng::Value;
use support::sidecar_cli_with_input;

fn web(annotations: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: emojivoto}}
spec:
  template:
    metadata:
      annotations: {{{annotations}}}
    spec:
      containers: [{{name: web, image: web:v1}}, {{name: log, image: log:v1}}]
"
    )
}

fn namespace(annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: emojivoto\n  annotations: {{{annotations}}}\n"
    )
}

/// The output of inject, and its notes.
fn inject(input: &str) -> (String, String) {
    let output = sidecar_cli_with_input(
        &["inject", "-", "--image", "ghcr.io/mesh/sidecar:0.1.0"],
        input,
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    (String::from_utf8(output.stdout).unwrap(), stderr)
}

/// The pod template of the Deployment inject wrote for `input`, and the
/// notes.
fn template_of(input: &str) -> (Value, String) {
    let (stdout, notes) = inject(input);
    let deployment = serde_yaml_ng::Deserializer::from_str(&stdout)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    (deployment["spec"]["template"].clone(), notes)
}

fn names(containers: &Value) -> Vec<&str> {
    containers
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

fn await_command(container: &Value, admin_port: u16) -> Value {
    let binary = container["command"][0].clone();
    assert!(binary.as_str().unwrap().starts_with('/'), "{container:?}");
    let command: Vec<Value> = [
        "await",
        "--admin",
        &format!("127.0.0.1:{admin_port}"),
        "--timeout",
        "2m",
    ]
    .into_iter()
    .map(|arg| Value::String(arg.to_owned()))
    .collect();
    Value::Sequence([vec![binary], command].concat())
}

#[test]
fn an_ordinary_sidecar_goes_first_and_awaits_its_readiness_after_it_starts() {
    let (template, notes) = template_of(&web(""));
    let containers = &template["spec"]["containers"];
    assert_eq!(names(containers), ["mesh-proxy", "web", "log"]);
    let proxy = &containers[0];
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        await_command(proxy, 4191),
        "{proxy:?}"
    );
    assert!(proxy["lifecycle"].get("preStop").is_none(), "{proxy:?}");
    // `kubectl logs` and `exec` without `-c` still reach the application.
    assert_eq!(
        template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "web"
    );
    assert!(!notes.contains("warning"), "{notes}");
}

#[test]
fn the_await_asks_the_admin_port_the_sidecar_listens_on() {
    let (template, _) = template_of(&web("config.linkerd.io/admin-port: '4999'"));
    let proxy = &template["spec"]["containers"][0];
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        await_command(proxy, 4999)
    );
}

#[test]
fn proxy_await_enabled_is_followed_without_a_warning() {
    let (template, notes) = template_of(&web("config.linkerd.io/proxy-await: enabled"));
    let proxy = &template["spec"]["containers"][0];
    assert_eq!(proxy["name"], "mesh-proxy");
    assert!(proxy["lifecycle"].get("postStart").is_some(), "{proxy:?}");
    assert!(!notes.contains("warning"), "{notes}");
}

#[test]
fn proxy_await_disabled_leaves_the_sidecar_last_without_the_hook() {
    let (template, notes) = template_of(&web("config.linkerd.io/proxy-await: disabled"));
    let containers = &template["spec"]["containers"];
    assert_eq!(names(containers), ["web", "log", "mesh-proxy"]);
    assert!(containers[2].get("lifecycle").is_none(), "{containers:?}");
    assert!(
        template["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/default-container")
            .is_none()
    );
    assert!(!notes.contains("warning"), "{notes}");

    // Said on the Namespace, as Linkerd reads it there.
    let input = [
        namespace("config.linkerd.io/proxy-await: disabled"),
        web(""),
    ]
    .join("---\n");
    let (template, _) = template_of(&input);
    let containers = &template["spec"]["containers"];
    assert_eq!(names(containers), ["web", "log", "mesh-proxy"]);
    assert!(containers[2].get("lifecycle").is_none(), "{containers:?}");
    // The pod template's own `enabled` wins over its Namespace's.
    let input = [
        namespace("config.linkerd.io/proxy-await: disabled"),
        web("config.linkerd.io/proxy-await: enabled"),
    ]
    .join("---\n");
    let (template, _) = template_of(&input);
    let proxy = &template["spec"]["containers"][0];
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        await_command(proxy, 4191)
    );
}

#[test]
fn the_wait_before_exit_stays_beside_the_await() {
    let (template, _) = template_of(&web(
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '5'",
    ));
    let proxy = &template["spec"]["containers"][0];
    assert_eq!(proxy["lifecycle"]["preStop"]["sleep"]["seconds"], 5);
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        await_command(proxy, 4191)
    );
}

#[test]
fn a_native_sidecar_has_its_startup_probe_and_no_hook() {
    let (template, _) = template_of(&web(
        "config.linkerd.io/proxy-enable-native-sidecar: 'true'",
    ));
    let proxy = &template["spec"]["initContainers"][0];
    assert_eq!(proxy["name"], "mesh-proxy");
    assert!(proxy.get("lifecycle").is_none(), "{proxy:?}");
    assert_eq!(proxy["startupProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(names(&template["spec"]["containers"]), ["web", "log"]);
    assert!(
        template["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/default-container")
            .is_none()
    );
}

#[test]
fn injecting_again_changes_nothing_and_keeps_a_chosen_default_container() {
    let (once, _) = inject(&web(""));
    let (twice, notes) = inject(&once);
    assert_eq!(once, twice);
    assert!(notes.contains("already injected"), "{notes}");

    let (template, _) = template_of(&web("kubectl.kubernetes.io/default-container: log"));
    assert_eq!(
        template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "log"
    );

    // A sidecar an older inject put last moves first.
    let disabled = web("config.linkerd.io/proxy-await: disabled");
    let (last, _) = inject(&disabled);
    let (template, _) = template_of(&last.replace(
        "config.linkerd.io/proxy-await: disabled",
        "config.linkerd.io/proxy-await: enabled",
    ));
    assert_eq!(
        names(&template["spec"]["containers"]),
        ["mesh-proxy", "web", "log"]
    );
}
