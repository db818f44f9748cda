//! `sidecar inject` reads the `kind: Namespace` objects of its input as
//! Linkerd's injector reads a pod's namespace: their annotations decide
//! for the workloads in them that say nothing themselves, whatever the
//! order of the documents. A namespace moved from Linkerd keeps the proxy
//! resources it gave its pods, and one that opts out keeps its workloads
//! out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, DisabledBy, Image, InjectConfig, Injected, Outcome};
use serde_yaml_ng::Value;

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

fn namespace(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\n"
    )
}

/// A Deployment `name`, with `namespace` as its `metadata.namespace` when
/// given, and `annotations` on its own metadata and on its pod template.
fn deployment(name: &str, namespace: Option<&str>, own: &str, template: &str) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!("  namespace: {ns:?}\n"));
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
{namespace}  annotations: {{{own}}}
spec:
  template:
    metadata:
      annotations: {{{template}}}
    spec:
      containers: [{{name: app, image: app}}]
"
    )
}

fn inject(documents: &[String]) -> Injected {
    inject::inject("all.yaml", &documents.join("---\n"), &config()).unwrap()
}

fn outcome(injected: &Injected, name: &str) -> Outcome {
    let note = injected
        .notes
        .iter()
        .find(|n| n.name.as_deref() == Some(name));
    note.unwrap().outcome.clone()
}

/// The `resources` of the sidecar of the Deployment `name`.
fn resources(injected: &Injected, name: &str) -> Value {
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&injected.yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let workload = documents
        .iter()
        .find(|d| d["metadata"]["name"] == name && d["kind"] == "Deployment")
        .unwrap();
    let containers = &workload["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "mesh-proxy");
    containers[0]["resources"].clone()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn a_namespaces_proxy_resources_are_the_defaults_of_its_workloads_written_before_it() {
    let annotations = "config.linkerd.io/proxy-cpu-request: 250m, \
        config.linkerd.io/proxy-cpu-limit: '1', \
        config.linkerd.io/proxy-memory-request: 64Mi, \
        config.linkerd.io/proxy-memory-limit: 1Gi";
    let injected = inject(&[
        deployment("web", Some("emojivoto"), "", ""),
        deployment(
            "voting",
            Some("emojivoto"),
            "",
            "config.linkerd.io/proxy-cpu-limit: 500m",
        ),
        deployment("elsewhere", Some("other"), "", ""),
        namespace("emojivoto", annotations),
    ]);
    assert_eq!(
        resources(&injected, "web"),
        yaml("{requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: '1', memory: 1Gi}}")
    );
    // The pod template's own annotation is nearer; the rest still come
    // from the namespace.
    assert_eq!(
        resources(&injected, "voting"),
        yaml("{requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: 500m, memory: 1Gi}}")
    );
    assert_eq!(
        resources(&injected, "elsewhere"),
        yaml("{requests: {cpu: 100m, memory: 20Mi}, limits: {memory: 250Mi}}")
    );
}

#[test]
fn the_workloads_own_resource_annotations_do_not_hide_its_namespaces_as_in_linkerd() {
    // Linkerd's injector reads the pod and its namespace: the workload's
    // own metadata never reaches the pods it creates.
    let injected = inject(&[
        namespace("emojivoto", "config.linkerd.io/proxy-memory-limit: 1Gi"),
        deployment(
            "web",
            Some("emojivoto"),
            "config.linkerd.io/proxy-memory-limit: 512Mi",
            "",
        ),
    ]);
    assert_eq!(resources(&injected, "web")["limits"], yaml("{memory: 1Gi}"));
}

#[test]
fn a_pod_takes_its_namespaces_resources_too() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: debug, namespace: tools}\nspec:\n  containers: [{name: sh, image: busybox}]\n";
    let text = format!(
        "{pod}---\n{}",
        namespace("tools", "config.linkerd.io/proxy-cpu-request: 10m")
    );
    let injected = inject::inject("pod.yaml", &text, &config()).unwrap();
    let document: Value = serde_yaml_ng::Deserializer::from_str(&injected.yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .next()
        .unwrap();
    assert_eq!(
        document["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "10m"
    );
}

#[test]
fn a_namespace_written_after_its_workloads_keeps_them_out() {
    let injected = inject(&[
        deployment("billing", Some("legacy"), "", ""),
        namespace("legacy", "mesh.io/inject: disabled"),
    ]);
    assert_eq!(
        outcome(&injected, "billing"),
        Outcome::Disabled(DisabledBy::Namespace("legacy".into()))
    );
    // Left alone, it is written back byte for byte.
    assert!(
        injected
            .yaml
            .starts_with(&deployment("billing", Some("legacy"), "", ""))
    );
}

#[test]
fn a_workload_without_a_namespace_is_in_the_inputs_namespace_default() {
    let default = namespace("default", "mesh.io/inject: disabled");
    let injected = inject(&[
        default.clone(),
        deployment("unnamed", None, "", ""),
        deployment("empty", Some(""), "", ""),
        deployment("elsewhere", Some("emojivoto"), "", ""),
    ]);
    let by_default = Outcome::Disabled(DisabledBy::Namespace("default".into()));
    assert_eq!(outcome(&injected, "unnamed"), by_default);
    assert_eq!(outcome(&injected, "empty"), by_default);
    assert_eq!(outcome(&injected, "elsewhere"), Outcome::Injected);

    // Linkerd's injector would mesh it there: it cannot take the sidecar.
    let linkerd = namespace("default", "linkerd.io/inject: enabled");
    let text = [linkerd, deployment("unnamed", None, "", "")].join("---\n");
    let error = inject::inject("all.yaml", &text, &config()).unwrap_err();
    let inject::InjectError::Refused(refused) = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        refused[0].outcome,
        Outcome::OtherProxy("linkerd.io/inject: enabled on namespace default".into())
    );

    // And in no other Namespace of the input.
    let injected = inject(&[
        namespace("emojivoto", "mesh.io/inject: disabled"),
        deployment("unnamed", None, "", ""),
    ]);
    assert_eq!(outcome(&injected, "unnamed"), Outcome::Injected);
}

#[test]
fn a_namespaces_memory_request_over_the_default_limit_is_refused_at_the_workload() {
    let ns = namespace("emojivoto", "config.linkerd.io/proxy-memory-request: 512Mi");
    let web = deployment("web", Some("emojivoto"), "", "");
    let error = inject::inject("all.yaml", &format!("{ns}---\n{web}"), &config()).unwrap_err();
    let manifest = error.as_manifest().unwrap();
    assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(manifest.document(), Some(2));
    let message = error.to_string();
    assert!(message.contains("from namespace emojivoto"), "{message}");
    assert!(
        message.contains("config.linkerd.io/proxy-memory-limit"),
        "{message}"
    );

    // A limit on the pod template answers it.
    let limited = deployment(
        "web",
        Some("emojivoto"),
        "",
        "config.linkerd.io/proxy-memory-limit: 1Gi",
    );
    let injected = inject(&[ns, limited]);
    assert_eq!(
        resources(&injected, "web"),
        yaml("{requests: {cpu: 100m, memory: 512Mi}, limits: {memory: 1Gi}}")
    );
}

#[test]
fn a_namespace_annotation_that_is_not_a_quantity_is_refused_in_its_own_document() {
    let text = [
        deployment("web", Some("emojivoto"), "", ""),
        namespace("emojivoto", "config.linkerd.io/proxy-cpu-limit: lots"),
    ]
    .join("---\n");
    let error = inject::inject("all.yaml", &text, &config()).unwrap_err();
    let manifest = error.as_manifest().unwrap();
    assert_eq!(manifest.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(manifest.document(), Some(2));
    assert!(error.to_string().contains("\"lots\""), "{error}");
}
