//! A native sidecar holds the pod's next containers back until it is
//! ready: with a startup probe, the kubelet starts the init containers
//! after it, and then the application's, only once the probe passes
//! (Kubernetes' sidecar containers, KEP-753). Without one, they start as
//! soon as its process does, and their first requests to 127.0.0.1:4140
//! are refused. Linkerd's proxy, as a native sidecar, has one on `/ready`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::inject::{self, InjectConfig, Outcome};
use serde_yaml_ng::Value;

const JOB: &str = "\
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers: [{name: wait-for-db, image: busybox}]
      containers: [{name: migrate, image: migrate:1}]
";

fn injected(manifest: &str) -> Value {
    let injected = inject::inject("job.yaml", manifest, &InjectConfig::new()).unwrap();
    serde_yaml_ng::from_str(&injected.yaml).unwrap()
}

#[test]
fn a_native_sidecar_holds_the_next_containers_until_it_is_ready() {
    let job = injected(JOB);
    let spec = &job["spec"]["template"]["spec"];
    let proxy = &spec["initContainers"][0];
    assert_eq!(proxy["name"], "mesh-proxy");
    assert_eq!(proxy["restartPolicy"], "Always");
    let probe = &proxy["startupProbe"];
    assert_eq!(probe["httpGet"]["path"], "/ready", "{proxy:?}");
    assert_eq!(probe["httpGet"]["port"], 4191);
    // Checked every second, for up to two minutes, as Linkerd's: the
    // certificate may take a moment to be mounted.
    assert_eq!(probe["periodSeconds"], 1);
    assert_eq!(probe["failureThreshold"], 120);
}

#[test]
fn the_startup_probe_is_kept_when_injected_again() {
    let once = inject::inject("job.yaml", JOB, &InjectConfig::new()).unwrap();
    let twice = inject::inject("job.yaml", &once.yaml, &InjectConfig::new()).unwrap();
    assert_eq!(twice.yaml, once.yaml);
    assert_eq!(twice.notes[0].outcome, Outcome::AlreadyInjected);
}

#[test]
fn a_plain_container_has_no_startup_probe() {
    // Nothing waits on a plain container's startup probe: it would only
    // hold back its own liveness and readiness probes.
    let deployment = injected(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    \
         spec:\n      containers: [{name: web, image: web:1}]\n",
    );
    let spec = &deployment["spec"]["template"]["spec"];
    let proxy = &spec["containers"][0];
    assert_eq!(proxy["name"], "mesh-proxy");
    assert!(proxy.get("startupProbe").is_none(), "{proxy:?}");
}
