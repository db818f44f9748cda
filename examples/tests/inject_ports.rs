//! `sidecar inject` refuses a pod whose own containers declare one of the
//! sidecar's ports: the containers of a pod share one network namespace,
//! so of the application and the sidecar one could not listen on it, and
//! the pod would never be ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, Image, InjectConfig, Outcome};

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

fn deployment(ports: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  template:
    spec:
      initContainers: [{{name: setup, image: setup}}]
      containers:
      - name: web
        image: web
        ports: {ports}
"
    )
}

#[test]
fn an_application_port_that_is_the_sidecars_is_refused_where_it_is() {
    for (port, what) in [(4191, "admin"), (4143, "inbound"), (4140, "outbound")] {
        let text = deployment(&format!(
            "[{{name: http, containerPort: 8080}}, {{containerPort: {port}}}]"
        ));
        let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
        let manifest = error.as_manifest().unwrap();
        assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue, "{port}");
        assert_eq!(
            manifest.field_path(),
            "spec.template.spec.containers[0].ports[1].containerPort",
            "{port}"
        );
        assert_eq!(manifest.line(), Some(11), "{port}");
        let message = error.to_string();
        assert!(
            message.contains(&port.to_string())
                && message.contains(what)
                && message.contains("web"),
            "{message}"
        );
    }
}

#[test]
fn an_init_containers_port_is_checked_too() {
    let text = deployment("[{containerPort: 8080}]").replace(
        "{name: setup, image: setup}",
        "{name: setup, image: setup, ports: [{containerPort: 4191}]}",
    );
    let error = inject::inject("web.yaml", &text, &config()).unwrap_err();
    assert_eq!(
        error.as_manifest().unwrap().field_path(),
        "spec.template.spec.initContainers[0].ports[0].containerPort"
    );
}

#[test]
fn a_udp_port_of_the_same_number_is_no_conflict() {
    let text = deployment("[{containerPort: 4191, protocol: UDP}, {containerPort: 8080}]");
    let injected = inject::inject("web.yaml", &text, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
}

#[test]
fn the_sidecars_own_ports_are_no_conflict() {
    let text = deployment("[{containerPort: 8080}]");
    let once = inject::inject("web.yaml", &text, &config()).unwrap();
    let twice = inject::inject("web.yaml", &once.yaml, &config()).unwrap();
    assert_eq!(twice.notes[0].outcome, Outcome::AlreadyInjected);
}

#[test]
fn a_workload_left_out_is_not_checked() {
    let text = deployment("[{containerPort: 4191}]").replace(
        "metadata: {name: web, namespace: shop}",
        "metadata: {name: web, namespace: shop, annotations: {mesh.io/inject: disabled}}",
    );
    let injected = inject::inject("web.yaml", &text, &config()).unwrap();
    assert!(matches!(injected.notes[0].outcome, Outcome::Disabled(_)));
}
