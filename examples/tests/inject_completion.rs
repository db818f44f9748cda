//! `sidecar inject` on pods that run to completion: a bare `Pod` with
//! `restartPolicy: Never` or `OnFailure` takes the sidecar as a native
//! sidecar, as a Job's pods do, or the pod would never complete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::inject::{self, CONTAINER_NAME, Image, InjectConfig, Outcome};
use serde_yaml_ng::Value;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

fn pod(restart_policy: Option<&str>) -> String {
    let policy = restart_policy.map_or(String::new(), |p| format!("  restartPolicy: {p}\n"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: migrate}}\nspec:\n{policy}  containers: [{{name: migrate, image: migrate:v1}}]\n"
    )
}

fn names(spec: &Value, list: &str) -> Vec<String> {
    spec.get(list)
        .and_then(Value::as_sequence)
        .map(|items| {
            items
                .iter()
                .map(|item| item["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn spec(yaml: &str) -> Value {
    let document: Value = serde_yaml_ng::from_str(yaml).unwrap();
    document["spec"].clone()
}

#[test]
fn a_pod_that_runs_to_completion_gets_a_native_sidecar() {
    for policy in ["Never", "OnFailure"] {
        let injected = inject::inject("pod.yaml", &pod(Some(policy)), &config()).unwrap();
        assert_eq!(injected.notes[0].outcome, Outcome::Injected);
        let spec = spec(&injected.yaml);
        assert_eq!(names(&spec, "containers"), ["migrate"], "{policy}");
        assert_eq!(names(&spec, "initContainers"), [CONTAINER_NAME], "{policy}");
        assert_eq!(
            spec["initContainers"][0]["restartPolicy"].as_str(),
            Some("Always"),
            "{policy}"
        );

        let again = inject::inject("pod.yaml", &injected.yaml, &config()).unwrap();
        assert_eq!(again.yaml, injected.yaml);
        assert_eq!(again.notes[0].outcome, Outcome::AlreadyInjected);
    }
}

#[test]
fn a_pod_that_restarts_keeps_the_sidecar_among_its_containers() {
    for policy in [None, Some("Always")] {
        let injected = inject::inject("pod.yaml", &pod(policy), &config()).unwrap();
        let spec = spec(&injected.yaml);
        assert_eq!(
            names(&spec, "containers"),
            [CONTAINER_NAME, "migrate"],
            "{policy:?}"
        );
        assert!(names(&spec, "initContainers").is_empty(), "{policy:?}");
    }
}

#[test]
fn a_restart_policy_that_is_not_a_string_is_refused() {
    let text = pod(Some("[Never]"));
    let error = inject::inject("pod.yaml", &text, &config()).unwrap_err();
    assert!(error.to_string().contains("spec.restartPolicy"), "{error}");
}
