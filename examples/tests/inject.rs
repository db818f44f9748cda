//! `sidecar inject`: golden files, idempotence, pass-through and errors.
//!
//! Each case is `tests/inject/<case>.in.yaml`, injected into
//! `<case>.out.yaml` (standard output) and `<case>.notes.txt` (standard
//! error), compared byte for byte. After a deliberate change, regenerate
//! them with `UPDATE_GOLDEN=1 cargo test -p mesh-examples --test inject`
//! and read the diff before committing it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    fs,
    path::{Path, PathBuf},
};

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{
    self, DisabledBy, Image, InjectConfig, InjectError, Injected, Outcome, Unread,
};
use serde_yaml_ng::Value;
use support::{sidecar_binary, sidecar_cli_with_input};

const IMAGE: &str = "ghcr.io/mesh/sidecar:0.1.0";
const CASES: &[&str] = &[
    "emojivoto",
    "workloads",
    "pod",
    "disabled",
    "namespace",
    "linkerd-annotations",
    "ports",
    "passthrough",
];

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse(IMAGE).unwrap())
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inject")
}

fn read(file: &str) -> String {
    fs::read_to_string(dir().join(file)).unwrap()
}

/// `actual` is the golden file's content, or becomes it with
/// `UPDATE_GOLDEN=1`.
fn assert_golden(file: &str, actual: &str) {
    let path = dir().join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{file} differs from what inject wrote:\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

/// Injects a case through the reader/writer entry point, as the CLI does,
/// and compares both outputs with its golden files.
fn golden(case: &str) -> Injected {
    let origin = format!("{case}.in.yaml");
    let input = read(&origin);
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let noted = inject::inject_io(
        &origin,
        &mut input.as_bytes(),
        &mut out,
        &mut notes,
        &config(),
    )
    .unwrap();
    let (yaml, notes) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(notes).unwrap(),
    );
    assert_golden(&format!("{case}.out.yaml"), &yaml);
    assert_golden(&format!("{case}.notes.txt"), &notes);
    Injected { yaml, notes: noted }
}

fn outcomes(injected: &Injected) -> Vec<(String, Outcome)> {
    injected
        .notes
        .iter()
        .map(|n| (n.name.clone().unwrap_or_default(), n.outcome.clone()))
        .collect()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn pod_spec<'v>(object: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(object, |v, key| &v[*key])
}

fn names(list: &Value) -> Vec<&str> {
    list.as_sequence()
        .map(|items| items.iter().map(|i| i["name"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn linkerds_port_annotations_reach_the_sidecars_environment_and_udp_is_warned_of() {
    let injected = golden("ports");
    assert_eq!(
        outcomes(&injected),
        ["web", "dns"].map(|n| (n.to_owned(), Outcome::Injected))
    );
    let documents = documents(&injected.yaml);
    let proxy = |document: &Value| {
        pod_spec(document, &["spec", "template", "spec", "containers"])[0].clone()
    };
    let web = proxy(&documents[0]);
    assert_eq!(web["name"], "mesh-proxy");
    let env: Vec<(&str, &str)> = web["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        env,
        [
            ("MESH_INBOUND_LISTEN_ADDR", "0.0.0.0:5143"),
            ("MESH_ADMIN_LISTEN_ADDR", "0.0.0.0:5191"),
        ]
    );
    assert_eq!(web["readinessProbe"]["httpGet"]["port"], 5191);
    // Without an annotation, no variable: the file decides.
    let dns = proxy(&documents[1]);
    assert_eq!(dns["name"], "mesh-proxy");
    assert!(dns["env"].is_null(), "{dns:?}");
    assert!(injected.notes[0].unproxied.is_empty());
    let udp = &injected.notes[1].unproxied;
    assert_eq!(udp.len(), 1, "{udp:?}");
    assert_eq!((udp[0].container.as_str(), udp[0].port), ("coredns", 53));
}

#[test]
fn the_guides_kubectl_list_of_emojivoto_deployments_is_injected() {
    let injected = golden("emojivoto");
    assert_eq!(
        outcomes(&injected),
        ["emoji", "vote-bot", "voting", "web"].map(|n| (n.to_owned(), Outcome::Injected))
    );
    let list = &documents(&injected.yaml)[0];
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_sequence().unwrap();
    for (item, (app, account)) in items.iter().zip([
        ("emoji-svc", "emoji"),
        ("vote-bot", "default"),
        ("voting-svc", "voting"),
        ("web-svc", "web"),
    ]) {
        let spec = pod_spec(item, &["spec", "template", "spec"]);
        // First: its postStart await holds the application back.
        assert_eq!(names(&spec["containers"]), ["mesh-proxy", app]);
        let proxy = &spec["containers"][0];
        assert_eq!(proxy["image"], IMAGE);
        assert_eq!(proxy["livenessProbe"]["httpGet"]["path"], "/live");
        assert_eq!(proxy["readinessProbe"]["httpGet"]["port"], 4191);
        let name = item["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            spec["volumes"][0]["configMap"]["name"],
            format!("{name}-mesh-config").as_str()
        );
        assert_eq!(
            spec["volumes"][1]["secret"]["secretName"],
            format!("{account}-mesh-identity").as_str()
        );
        let annotations = &item["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["mesh.io/injected"], "true");
        assert_eq!(annotations["mesh.io/proxy-version"], "0.1.0");
        // What the API server wrote passes through.
        assert_eq!(item["status"]["replicas"], 1);
    }
}

#[test]
fn an_api_list_kind_is_injected_as_kubectl_applies_its_items() {
    // What the API server answers a list request with (`kubectl get
    // --raw`, a client's dump) is a `DeploymentList`, not a `List`: kubectl
    // applies its items all the same, so inject reaches them too.
    let text = "\
apiVersion: apps/v1
kind: DeploymentList
metadata: {resourceVersion: \"42\"}
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: emojivoto}
  spec:
    template:
      spec:
        containers: [{name: web, image: web:v1}]
";
    let injected = inject::inject("list.yaml", text, &config()).unwrap();
    assert_eq!(injected.notes.len(), 1);
    assert_eq!(injected.notes[0].item, Some(0));
    assert_eq!(injected.notes[0].kind, "Deployment");
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    let list = &documents(&injected.yaml)[0];
    assert_eq!(list["kind"], "DeploymentList");
    let spec = pod_spec(&list["items"][0], &["spec", "template", "spec"]);
    assert_eq!(names(&spec["containers"]), ["mesh-proxy", "web"]);

    // A kind named so without a list of items is an object of its own.
    let text =
        "apiVersion: example.com/v1\nkind: ShoppingList\nmetadata: {name: l}\nitems: {milk: 1}\n";
    let injected = inject::inject("list.yaml", text, &config()).unwrap();
    assert_eq!(injected.notes[0].kind, "ShoppingList");
    assert_eq!(injected.notes[0].item, None);
    assert_eq!(injected.notes[0].outcome, Outcome::NotAWorkload);
}

#[test]
fn a_list_inside_a_list_is_injected_as_kubectl_applies_its_items() {
    // kubectl flattens Lists within Lists, and applies every item: their
    // workloads get the sidecar too, and a Namespace there decides for
    // its workloads. Notes name the item of the outer List they are in.
    let text = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Namespace
    metadata: {name: ops, annotations: {mesh.io/inject: disabled}}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: emojivoto}
    spec:
      template:
        spec:
          containers: [{name: web, image: web:v1}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: report, namespace: ops}
  spec:
    template:
      spec:
        containers: [{name: report, image: report:v1}]
";
    let injected = inject::inject("list.yaml", text, &config()).unwrap();
    let notes: Vec<_> = injected
        .notes
        .iter()
        .map(|n| (n.item, n.kind.as_str(), n.outcome.clone()))
        .collect();
    assert_eq!(
        notes,
        [
            (Some(0), "Service", Outcome::NotAWorkload),
            (Some(1), "Namespace", Outcome::NotAWorkload),
            (Some(1), "Deployment", Outcome::Injected),
            (
                Some(2),
                "Deployment",
                Outcome::Disabled(DisabledBy::Namespace("ops".to_owned()))
            ),
        ]
    );
    let list = &documents(&injected.yaml)[0];
    let inner = &list["items"][1]["items"][1];
    let spec = pod_spec(inner, &["spec", "template", "spec"]);
    assert_eq!(names(&spec["containers"]), ["mesh-proxy", "web"]);

    // An error there says where, in the outer List and the inner one.
    let bad = text.replace(
        "image: web:v1}]",
        "image: web:v1}]\n          hostNetwork: maybe",
    );
    let (message, _, _, _) = manifest_error(&bad);
    assert!(
        message.starts_with("bad.yaml: document 1 (Deployment emojivoto/web): items[1].items[1].spec.template.spec.hostNetwork: "),
        "{message}"
    );
}

#[test]
fn every_workload_kind_is_injected_and_jobs_get_a_native_sidecar() {
    let injected = golden("workloads");
    let kinds: Vec<_> = injected.notes.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "CronJob",
            "Pod"
        ]
    );
    assert!(
        injected
            .notes
            .iter()
            .all(|n| n.outcome == Outcome::Injected)
    );
    let docs = documents(&injected.yaml);
    let template = ["spec", "template", "spec"];
    let web = pod_spec(&docs[0], &template);
    assert_eq!(names(&web["containers"]), ["mesh-proxy", "web"]);
    assert_eq!(
        names(&web["volumes"]),
        ["assets", "mesh-config", "mesh-identity"]
    );
    let agent = pod_spec(&docs[2], &template);
    assert_eq!(
        agent["volumes"][1]["secret"]["secretName"],
        "agent-mesh-identity"
    );
    let job = pod_spec(&docs[4], &template);
    assert_eq!(names(&job["containers"]), ["migrate"]);
    assert_eq!(names(&job["initContainers"]), ["mesh-proxy", "wait-for-db"]);
    assert_eq!(job["initContainers"][0]["restartPolicy"], "Always");
    let cron = pod_spec(
        &docs[5],
        &["spec", "jobTemplate", "spec", "template", "spec"],
    );
    assert_eq!(names(&cron["initContainers"]), ["mesh-proxy"]);
    assert_eq!(
        cron["volumes"][0]["configMap"]["name"],
        "report-mesh-config"
    );
    let pod = &docs[6];
    assert_eq!(names(&pod["spec"]["containers"]), ["mesh-proxy", "shell"]);
    assert_eq!(pod["metadata"]["annotations"]["mesh.io/injected"], "true");
}

#[test]
fn a_sidecar_that_fails_to_start_says_why_in_the_pods_status() {
    // The sidecar writes why it cannot start (a bad sidecar.yaml, a
    // missing certificate) to its log, not to a termination-message
    // file: with FallbackToLogsOnError, as Linkerd's proxy has it, the
    // kubelet puts the log's tail in the container's status, where
    // `kubectl describe pod` shows it. Both placements get it.
    let injected = golden("workloads");
    let docs = documents(&injected.yaml);
    let template = ["spec", "template", "spec"];
    let web = pod_spec(&docs[0], &template);
    let job = pod_spec(&docs[4], &template);
    for sidecar in [&web["containers"][0], &job["initContainers"][0]] {
        assert_eq!(sidecar["name"], "mesh-proxy");
        assert_eq!(
            sidecar["terminationMessagePolicy"], "FallbackToLogsOnError",
            "{sidecar:?}"
        );
    }
    // The application's containers are left as they were.
    assert!(
        web["containers"][1]
            .get("terminationMessagePolicy")
            .is_none()
    );
}

#[test]
fn a_replication_controller_is_injected_as_linkerd_injects_it() {
    let text = "\
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy, namespace: emojivoto}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: legacy, image: legacy:v1}]
";
    let injected = inject::inject("rc.yaml", text, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    let docs = documents(&injected.yaml);
    let spec = pod_spec(&docs[0], &["spec", "template", "spec"]);
    assert_eq!(names(&spec["containers"]), ["mesh-proxy", "legacy"]);
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"],
        "legacy-mesh-config"
    );
}

#[test]
fn linkerds_native_sidecar_annotation_makes_the_sidecar_a_native_one() {
    // An application whose init containers call other services needs the
    // sidecar started first; Linkerd users ask for that with this
    // annotation on the pod template.
    let text = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata:
      annotations: {config.alpha.linkerd.io/proxy-enable-native-sidecar: 'true'}
    spec:
      initContainers: [{name: fetch-config, image: curl}]
      containers: [{name: web, image: web}]
";
    let injected = inject::inject("web.yaml", text, &config()).unwrap();
    let docs = documents(&injected.yaml);
    let spec = pod_spec(&docs[0], &["spec", "template", "spec"]);
    assert_eq!(names(&spec["containers"]), ["web"]);
    assert_eq!(
        names(&spec["initContainers"]),
        ["mesh-proxy", "fetch-config"]
    );
    assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");

    let off = text.replace("'true'", "'false'");
    let injected = inject::inject("web.yaml", &off, &config()).unwrap();
    let docs = documents(&injected.yaml);
    let spec = pod_spec(&docs[0], &["spec", "template", "spec"]);
    assert_eq!(names(&spec["containers"]), ["mesh-proxy", "web"]);
}

#[test]
fn a_pod_is_injected_in_its_own_metadata_and_spec() {
    let injected = golden("pod");
    assert_eq!(
        outcomes(&injected),
        [("curl".to_owned(), Outcome::Injected)]
    );
    let pod = &documents(&injected.yaml)[0];
    assert_eq!(names(&pod["spec"]["containers"]), ["mesh-proxy", "curl"]);
    assert_eq!(
        pod["spec"]["volumes"][1]["secret"]["secretName"],
        "curl-mesh-identity"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["mesh.io/proxy-version"],
        "0.1.0"
    );
}

#[test]
fn mesh_inject_disabled_keeps_a_workload_out_and_the_nearest_annotation_wins() {
    let injected = golden("disabled");
    assert_eq!(
        outcomes(&injected),
        [
            (
                "legacy".to_owned(),
                Outcome::Disabled(DisabledBy::PodTemplate)
            ),
            (
                "batch-exporter".to_owned(),
                Outcome::Disabled(DisabledBy::Workload)
            ),
            ("canary".to_owned(), Outcome::Injected),
            ("probe".to_owned(), Outcome::Disabled(DisabledBy::Pod)),
        ]
    );
    let input = documents(&read("disabled.in.yaml"));
    let output = documents(&injected.yaml);
    for i in [0, 1, 3] {
        assert_eq!(output[i], input[i], "document {}", i + 1);
    }
}

#[test]
fn a_namespace_in_the_input_decides_for_workloads_that_say_nothing() {
    let injected = golden("namespace");
    let namespace = |name: &str| Outcome::Disabled(DisabledBy::Namespace(name.to_owned()));
    assert_eq!(
        outcomes(&injected),
        [
            ("emojivoto".to_owned(), Outcome::NotAWorkload),
            ("legacy".to_owned(), Outcome::NotAWorkload),
            ("web".to_owned(), Outcome::Injected),
            (
                "vote-bot".to_owned(),
                Outcome::Disabled(DisabledBy::PodTemplate)
            ),
            ("billing".to_owned(), namespace("legacy")),
            ("invoices".to_owned(), Outcome::Injected),
            ("tools".to_owned(), Outcome::Injected),
        ]
    );
}

#[test]
fn a_namespaces_linkerd_annotations_reach_its_workloads_wherever_it_is_written() {
    let injected = golden("linkerd-annotations");
    assert_eq!(
        outcomes(&injected),
        [
            ("web".to_owned(), Outcome::Injected),
            ("db".to_owned(), Outcome::Injected),
            (
                "batch".to_owned(),
                Outcome::Disabled(DisabledBy::PodTemplate)
            ),
            ("emojivoto".to_owned(), Outcome::NotAWorkload),
        ]
    );
    // The Namespace's resources are the defaults; the pod template's
    // memory limit is nearer.
    let output = documents(&injected.yaml);
    let resources =
        |i: usize| output[i]["spec"]["template"]["spec"]["containers"][0]["resources"].clone();
    let yaml = |text| serde_yaml_ng::from_str::<Value>(text).unwrap();
    assert_eq!(
        resources(0),
        yaml("{requests: {cpu: 200m, memory: 20Mi}, limits: {memory: 1Gi}}")
    );
    assert_eq!(
        resources(1),
        yaml("{requests: {cpu: 200m, memory: 20Mi}, limits: {memory: 512Mi}}")
    );
    // Each injected sidecar is warned of what it does not follow, named
    // where the nearest annotation is; the one left out is not.
    let warned = |i: usize| -> Vec<(Unread, String, String, String)> {
        injected.notes[i]
            .warnings
            .iter()
            .map(|w| {
                (
                    w.annotation.clone(),
                    w.object.clone(),
                    w.path.clone(),
                    w.config_map.clone(),
                )
            })
            .collect()
    };
    let skip = |config_map: &str| {
        (
            Unread::SkipOutboundPorts,
            "Namespace emojivoto".to_owned(),
            "metadata.annotations".to_owned(),
            config_map.to_owned(),
        )
    };
    assert_eq!(warned(0), [skip("web-mesh-config")]);
    assert_eq!(
        warned(1),
        [
            (
                Unread::OpaquePorts,
                "StatefulSet emojivoto/db".to_owned(),
                "spec.template.metadata.annotations".to_owned(),
                "db-mesh-config".to_owned(),
            ),
            skip("db-mesh-config"),
        ]
    );
    assert_eq!(warned(2), []);
    // The Namespace, after them, is written as it was.
    let input = read("linkerd-annotations.in.yaml");
    let namespace = &input[input.rfind("# Passed through").unwrap()..];
    assert!(injected.yaml.ends_with(namespace), "{}", injected.yaml);
}

#[test]
fn other_kinds_pass_through_whole_with_a_note() {
    let injected = golden("passthrough");
    assert!(
        injected
            .notes
            .iter()
            .all(|n| n.outcome == Outcome::NotAWorkload)
    );
    let kinds: Vec<_> = injected.notes.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["Service", "ConfigMap", "Deployment", "Server"]);
    // The empty document is dropped; the others read back as they were.
    let input: Vec<Value> = documents(&read("passthrough.in.yaml"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    assert_eq!(documents(&injected.yaml), input);
    // They are written as they were, comments and quotes and all.
    assert_eq!(
        injected.yaml,
        read("passthrough.in.yaml").replace("---\n\n", "")
    );
}

#[test]
fn unquoted_octal_modes_and_yaml11_scalars_are_read_as_kubectl_reads_them() {
    // kubectl (YAML 1.1) reads `0644` as the mode 420 and `yes` as true;
    // written back as the strings '0644' and 'yes', the API server would
    // refuse the Deployment. Quoted, they stay strings.
    let manifest = "\
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1_0
  template:
    spec:
      automountServiceAccountToken: no
      containers:
      - name: web
        image: web
        env: [{name: MODE, value: '0644'}]
      volumes:
      - name: config
        configMap: {name: web, defaultMode: 0644, items: [{key: k, path: k, mode: 0400}]}
";
    let injected = inject::inject("web.yaml", manifest, &config()).unwrap();
    let deployment = &documents(&injected.yaml)[1];
    let spec = pod_spec(deployment, &["spec", "template", "spec"]);
    let config_map = &spec["volumes"][0]["configMap"];
    assert_eq!(config_map["defaultMode"], Value::from(420));
    assert_eq!(config_map["items"][0]["mode"], Value::from(256));
    assert_eq!(spec["automountServiceAccountToken"], Value::Bool(false));
    assert_eq!(deployment["spec"]["replicas"], Value::from(10));
    assert_eq!(
        spec["containers"][1]["env"][0]["value"],
        Value::from("0644")
    );
    assert!(injected.yaml.contains("value: '0644'"), "{}", injected.yaml);
}

#[test]
fn merge_keys_are_merged_so_the_sidecars_volumes_do_not_hide_the_merged_ones() {
    // kubectl merges `<<`; a `volumes` key written next to it wins over the
    // merged one, so adding the sidecar's volumes there would drop `data`.
    let manifest = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      <<: &common
        volumes: [{name: data, emptyDir: {}}]
      containers: [{name: web, image: web}]
";
    let injected = inject::inject("web.yaml", manifest, &config()).unwrap();
    let deployment = &documents(&injected.yaml)[0];
    let spec = pod_spec(deployment, &["spec", "template", "spec"]);
    assert_eq!(
        names(&spec["volumes"]),
        ["data", "mesh-config", "mesh-identity"]
    );
    assert!(!injected.yaml.contains("<<"), "{}", injected.yaml);

    let scalar = manifest.replace(
        "<<: &common\n        volumes: [{name: data, emptyDir: {}}]",
        "<<: 1",
    );
    let (message, kind, document, _) = manifest_error(&scalar);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!(document, Some(1));
    assert!(message.contains("<<"), "{message}");
}

#[test]
fn documents_inject_leaves_alone_are_written_byte_for_byte_as_linkerd_writes_them() {
    let service = "\
# The web service, with its comments.
apiVersion: v1
kind: Service
metadata: {name: web}   # flow style stays
spec:
  ports:
    - port: 80 # indented list stays
      targetPort: \"mesh-inbound\"
";
    let disabled = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
  annotations: {mesh.io/inject: disabled}
spec:
  template:
    spec:
      containers: [{name: legacy, image: legacy}]  # not meshed
";
    let web = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: web}]\n";
    let text = format!("{service}---\n{web}--- # legacy\n{disabled}");
    let injected = inject::inject("app.yaml", &text, &config()).unwrap();
    let pieces: Vec<&str> = injected.yaml.split("---\n").collect();
    assert_eq!(pieces.len(), 3, "{}", injected.yaml);
    assert_eq!(pieces[0], service);
    assert!(pieces[1].contains("mesh-proxy"), "{}", pieces[1]);
    assert_eq!(pieces[2], disabled);

    let again = inject::inject("app.yaml", &injected.yaml, &config()).unwrap();
    assert_eq!(again.yaml, injected.yaml);
}

#[test]
fn injecting_a_golden_output_again_changes_nothing() {
    for case in CASES {
        let first = read(&format!("{case}.out.yaml"));
        let again = inject::inject(case, &first, &config()).unwrap();
        assert!(
            again.yaml == first,
            "{case}: second pass changed:\n{}",
            again.yaml
        );
        assert!(
            again.notes.iter().all(|n| n.outcome != Outcome::Injected),
            "{case}: {:?}",
            again.notes
        );
    }
}

/// The output without what inject added: what must equal the input.
fn strip(value: &mut Value) {
    match value {
        Value::Mapping(mapping) => {
            for list in ["containers", "initContainers", "volumes"] {
                if let Some(Value::Sequence(items)) = mapping.get_mut(list) {
                    items.retain(|i| {
                        !matches!(
                            i["name"].as_str(),
                            Some("mesh-proxy" | "mesh-config" | "mesh-identity")
                        )
                    });
                    if items.is_empty() {
                        mapping.remove(list);
                    }
                }
            }
            if let Some(Value::Mapping(annotations)) = mapping.get_mut("annotations") {
                annotations.remove("mesh.io/injected");
                annotations.remove("mesh.io/proxy-version");
                // Set beside the sidecar, when the template names none.
                annotations.remove("kubectl.kubernetes.io/default-container");
                if annotations.is_empty() {
                    mapping.remove("annotations");
                }
            }
            for (_, v) in mapping.iter_mut() {
                strip(v);
            }
            mapping.retain(|k, v| {
                !(k == "metadata" && v.as_mapping().is_some_and(serde_yaml_ng::Mapping::is_empty))
            });
        }
        Value::Sequence(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

#[test]
fn fields_inject_does_not_own_pass_through_unchanged_and_in_order() {
    for case in CASES {
        let input: Vec<Value> = documents(&read(&format!("{case}.in.yaml")))
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        let mut output = documents(&read(&format!("{case}.out.yaml")));
        output.iter_mut().for_each(strip);
        // Written out, mappings compare in order too.
        let text = |docs: &[Value]| serde_yaml_ng::to_string(docs).unwrap();
        assert_eq!(text(&output), text(&input), "{case}");
    }
    // Keys keep the order they were written in, not an alphabetical one.
    let workloads = documents(&read("workloads.out.yaml"));
    let keys: Vec<_> = workloads[0]["metadata"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["name", "namespace", "labels"]);
    let container: Vec<_> = workloads[0]["spec"]["template"]["spec"]["containers"][1]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(container, ["name", "image", "ports", "env"]);
}

#[test]
fn a_new_image_upgrades_an_injected_sidecar_in_place() {
    let input = read("workloads.in.yaml");
    let old = InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.0.9").unwrap());
    let injected_old = inject::inject("w", &input, &old).unwrap();
    let upgraded = inject::inject("w", &injected_old.yaml, &config()).unwrap();
    assert!(
        upgraded
            .notes
            .iter()
            .all(|n| n.outcome == Outcome::Injected)
    );
    assert_eq!(upgraded.yaml, read("workloads.out.yaml"));
}

#[test]
fn the_default_image_is_this_version_of_the_sidecar() {
    let text = read("pod.in.yaml");
    let injected = inject::inject("pod", &text, &InjectConfig::new()).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        injected
            .yaml
            .contains(&format!("image: ghcr.io/mesh/sidecar:{version}\n"))
    );
    assert!(
        injected
            .yaml
            .contains(&format!("mesh.io/proxy-version: {version}\n"))
    );
}

#[test]
fn no_documents_give_no_output() {
    for text in ["", "---\n", "# nothing\n---\n---\n"] {
        let injected = inject::inject("empty", text, &config()).unwrap();
        assert_eq!(injected.yaml, "");
        assert!(injected.notes.is_empty());
    }
}

/// The error `inject` gives for `text`, as a manifest error.
fn manifest_error(text: &str) -> (String, ResourceErrorKind, Option<usize>, Option<usize>) {
    let error = inject::inject("bad.yaml", text, &config()).unwrap_err();
    let manifest = error.as_manifest().expect("a manifest error");
    (
        error.to_string(),
        manifest.kind(),
        manifest.document(),
        manifest.line(),
    )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";

#[test]
fn text_that_is_not_yaml_is_refused_with_its_document_and_line() {
    let text = format!("{DEPLOYMENT}---\napiVersion: v1\nkind: Service\nspec: type: ClusterIP\n");
    let (message, kind, document, line) = manifest_error(&text);
    assert_eq!(kind, ResourceErrorKind::Syntax);
    assert_eq!((document, line), (Some(2), Some(7)));
    assert_eq!(
        message,
        "bad.yaml: document 2: mapping values are not allowed in this context at line 7 column 11"
    );
}

#[test]
fn a_document_without_kind_is_refused_with_its_document_and_line() {
    let text = format!("{DEPLOYMENT}spec: {{}}\n---\napiVersion: v1\nmetadata: {{name: x}}\n");
    let (message, kind, document, _) = manifest_error(&text);
    assert_eq!(kind, ResourceErrorKind::MissingField);
    assert_eq!(document, Some(2));
    assert_eq!(
        message,
        "bad.yaml: document 2: kind: missing field `kind` at line 6 column 1"
    );
}

#[test]
fn a_list_item_without_kind_is_refused_at_the_item() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  metadata: {name: x}\n";
    let (message, kind, document, line) = manifest_error(text);
    assert_eq!(kind, ResourceErrorKind::MissingField);
    assert_eq!((document, line), (Some(1), Some(4)));
    assert_eq!(
        message,
        "bad.yaml: document 1 (List): items[0].kind: missing field `kind` at line 4 column 3"
    );
}

#[test]
fn an_error_in_a_list_item_names_the_item_not_only_the_list() {
    // A `kubectl get -A -o yaml` List holds hundreds of workloads: the
    // error says which one holds the bad annotation.
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: web}\n- apiVersion: batch/v1\n  kind: CronJob\n  metadata: {name: report, namespace: ops}\n  spec:\n    jobTemplate:\n      spec:\n        template:\n          metadata:\n            annotations: {config.linkerd.io/proxy-await: maybe}\n          spec:\n            restartPolicy: Never\n            containers: [{name: report, image: report}]\n";
    let (message, kind, document, line) = manifest_error(text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!((document, line), (Some(1), Some(15)));
    assert_eq!(
        message,
        "bad.yaml: document 1 (CronJob ops/report): items[1].spec.jobTemplate.spec.template.metadata.annotations.config.linkerd.io/proxy-await: config.linkerd.io/proxy-await is enabled or disabled, not \"maybe\" at line 15 column 58"
    );
}

#[test]
fn a_workload_without_a_pod_template_is_refused() {
    let text = format!("{DEPLOYMENT}spec:\n  replicas: 1\n");
    let (message, kind, _, line) = manifest_error(&text);
    assert_eq!(kind, ResourceErrorKind::MissingField);
    assert_eq!(line, Some(5));
    assert_eq!(
        message,
        "bad.yaml: document 1 (Deployment web): spec.template: a Deployment needs a pod template at spec.template at line 5 column 3"
    );
}

#[test]
fn containers_that_are_not_a_list_are_refused_where_they_are() {
    let text = format!("{DEPLOYMENT}spec:\n  template:\n    spec:\n      containers: web\n");
    let (message, kind, _, line) = manifest_error(&text);
    assert_eq!(kind, ResourceErrorKind::InvalidType);
    assert_eq!(line, Some(7));
    assert_eq!(
        message,
        "bad.yaml: document 1 (Deployment web): spec.template.spec.containers: expected a list at line 7 column 19"
    );
}

#[test]
fn an_unknown_inject_annotation_is_refused() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    mesh.io/inject: sometimes\nspec:\n  containers: []\n";
    let (message, kind, _, line) = manifest_error(text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!(line, Some(6));
    assert!(
        message
            .contains(r#"mesh.io/inject is "enabled", "ingress" or "disabled", not "sometimes""#),
        "{message}"
    );
}

#[test]
fn a_workload_created_by_generate_name_is_named_after_its_stem() {
    // `kubectl create` names each such pod or job anew; the pods of one
    // manifest share its configuration, named after the stem.
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: db-migrate-\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: migrate, image: migrate}]\n";
    let injected = inject::inject("job.yaml", text, &config()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    let docs = documents(&injected.yaml);
    let spec = pod_spec(&docs[0], &["spec", "template", "spec"]);
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"],
        "db-migrate-mesh-config"
    );
}

#[test]
fn a_workload_without_a_name_is_refused() {
    let text =
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {app: p}\nspec:\n  containers: []\n";
    let (message, kind, _, line) = manifest_error(text);
    assert_eq!(kind, ResourceErrorKind::MissingField);
    assert_eq!(line, Some(4));
    assert!(
        message.contains("metadata.name: a workload needs a name"),
        "{message}"
    );
}

#[test]
fn a_name_too_long_for_the_config_map_is_refused() {
    let name = "w".repeat(250);
    let text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers: []\n"
    );
    let (message, kind, _, line) = manifest_error(&text);
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!(line, Some(4));
    assert!(
        message.contains("metadata.name: ") && message.contains("would exceed 253 characters"),
        "{message}"
    );
}

#[test]
fn input_that_is_not_utf8_is_a_read_error() {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let error = inject::inject_io(
        "stdin",
        &mut &b"kind: \xff\n"[..],
        &mut out,
        &mut notes,
        &config(),
    )
    .unwrap_err();
    assert!(matches!(error, InjectError::Read { .. }), "{error:?}");
    assert_eq!(error.to_string(), "cannot read stdin");
    assert!(std::error::Error::source(&error).is_some());
    assert!(out.is_empty() && notes.is_empty());
}

#[test]
fn a_byte_order_mark_is_read_as_kubectl_reads_it() {
    // Editors on Windows save YAML with a UTF-8 byte order mark; kubectl
    // skips it.
    let text = format!("\u{feff}{}", read("pod.in.yaml"));
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let injected = inject::inject_io(
        "stdin",
        &mut text.as_bytes(),
        &mut out,
        &mut notes,
        &config(),
    )
    .unwrap();
    assert_eq!(injected[0].outcome, Outcome::Injected);
    assert_eq!(String::from_utf8(out).unwrap(), read("pod.out.yaml"));
}

#[test]
fn nothing_is_written_when_a_later_document_is_bad() {
    let text = format!("{}---\nkind: [\n", read("pod.in.yaml"));
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let result = inject::inject_io(
        "stdin",
        &mut text.as_bytes(),
        &mut out,
        &mut notes,
        &config(),
    );
    assert!(result.is_err());
    assert!(out.is_empty() && notes.is_empty());
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let path = dir().join("no-such-file.yaml");
    let error = inject::inject_file(&path, &mut out, &mut notes, &config()).unwrap_err();
    assert_eq!(error.to_string(), format!("cannot read {}", path.display()));
}

#[test]
fn the_cli_reads_standard_input_and_notes_on_standard_error() {
    let run = |stdin: &str| sidecar_cli_with_input(&["inject", "-", "--image", IMAGE], stdin);

    let output = run(&read("emojivoto.in.yaml"));
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        read("emojivoto.out.yaml")
    );
    let notes = String::from_utf8(output.stderr).unwrap();
    assert!(
        notes.contains("stdin: document 1, items[3] (Deployment emojivoto/web): injected\n"),
        "{notes}"
    );

    let output = run("apiVersion: v1\nmetadata: {}\n");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("error: stdin: document 1"), "{error}");
}

#[test]
fn the_cli_warns_on_standard_error_and_writes_the_manifests_all_the_same() {
    // Run where the golden files are, so that it names its input as they do.
    let output = std::process::Command::new(sidecar_binary())
        .args(["inject", "linkerd-annotations.in.yaml", "--image", IMAGE])
        .current_dir(dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the sidecar example is built: `cargo build -p mesh-examples --example sidecar`");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        read("linkerd-annotations.out.yaml")
    );
    let notes = String::from_utf8(output.stderr).unwrap();
    assert_eq!(notes, read("linkerd-annotations.notes.txt"));
    assert!(
        notes.contains("(StatefulSet emojivoto/db): warning: config.linkerd.io/opaque-ports on StatefulSet emojivoto/db (at spec.template.metadata.annotations) is not read"),
        "{notes}"
    );
}

#[test]
fn inject_without_a_file_is_a_usage_error_not_a_wait_on_standard_input() {
    // As `linkerd inject` asks for its file: a bare `sidecar inject` typed
    // at a terminal would otherwise sit reading standard input, silently.
    let output = std::process::Command::new(sidecar_binary())
        .arg("inject")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the sidecar example is built: `cargo build -p mesh-examples --example sidecar`");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("<FILE>"), "{error}");
    assert!(output.stdout.is_empty());
}
