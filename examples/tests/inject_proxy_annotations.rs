//! Linkerd's `config.linkerd.io/*` proxy annotations that map onto the
//! sidecar's container are followed, as Linkerd's injector follows them
//! (`pkg/inject/inject.go`, `ApplyAnnotationOverrides`): the proxy's user
//! and group, its image pull policy, its inbound, outbound and admin
//! ports, its log format, the native sidecar (under all three of its
//! names) and the await. A value Linkerd would drop with a log line is an
//! error naming the annotation, the document and the value; an annotation
//! the sidecar cannot follow is warned about, never dropped silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use serde_yaml_ng::Value;
use support::sidecar_cli_with_input;

/// A Deployment `web` in `emojivoto` whose pod template carries
/// `annotations` (a flow mapping's entries) and whose container is `app`.
fn deployment(annotations: &str, app: &str) -> String {
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
      containers: [{app}]
"
    )
}

fn web(annotations: &str) -> String {
    deployment(annotations, "{name: web, image: web:v1}")
}

fn namespace(annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: emojivoto\n  annotations: {{{annotations}}}\n"
    )
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn inject_cli(input: &str) -> Run {
    let output = sidecar_cli_with_input(
        &["inject", "-", "--image", "ghcr.io/mesh/sidecar:0.1.0"],
        input,
    );
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The injected sidecar of the Deployment in `input`.
fn sidecar_of(input: &str) -> (Value, String) {
    let run = inject_cli(input);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&run.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let spec = &deployment["spec"]["template"]["spec"];
    let all = [&spec["containers"], &spec["initContainers"]];
    let proxy = all
        .iter()
        .filter_map(|list| list.as_sequence())
        .flatten()
        .find(|c| c["name"] == "mesh-proxy")
        .unwrap()
        .clone();
    (proxy, run.stderr)
}

/// The error of an input refused, and checks that nothing was written.
fn refused(input: &str) -> String {
    let run = inject_cli(input);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    run.stderr
}

#[test]
fn proxy_uid_and_gid_set_the_sidecars_user_and_group() {
    let (proxy, notes) = sidecar_of(&web(
        "config.linkerd.io/proxy-uid: '2200', config.linkerd.io/proxy-gid: '2300'",
    ));
    let security = &proxy["securityContext"];
    assert_eq!(security["runAsUser"], 2200, "{proxy:?}");
    assert_eq!(security["runAsGroup"], 2300, "{proxy:?}");
    assert_eq!(security["runAsNonRoot"], true);
    assert!(!notes.contains("warning"), "{notes}");

    // Linkerd's defaults: user 2102, no group.
    let (proxy, _) = sidecar_of(&web(""));
    assert_eq!(proxy["securityContext"]["runAsUser"], 2102);
    assert!(proxy["securityContext"].get("runAsGroup").is_none());

    // From the Namespace, when the pod template says nothing.
    let input = [namespace("config.linkerd.io/proxy-uid: '3000'"), web("")].join("---\n");
    assert_eq!(sidecar_of(&input).0["securityContext"]["runAsUser"], 3000);
}

#[test]
fn a_proxy_uid_that_is_not_a_user_other_than_root_is_refused() {
    for value in ["root", "0", "-1", "2102.5"] {
        let error = refused(&web(&format!("config.linkerd.io/proxy-uid: '{value}'")));
        assert!(
            error.contains("stdin: document 1 (Deployment emojivoto/web)"),
            "{error}"
        );
        assert!(
            error.contains("spec.template.metadata.annotations.config.linkerd.io/proxy-uid"),
            "{error}"
        );
        assert!(error.contains(&format!("{value:?}")), "{error}");
    }
    let error = refused(&web("config.linkerd.io/proxy-gid: 'wheel'"));
    assert!(
        error.contains("config.linkerd.io/proxy-gid") && error.contains("\"wheel\""),
        "{error}"
    );
}

#[test]
fn image_pull_policy_sets_the_sidecars() {
    let (proxy, _) = sidecar_of(&web("config.linkerd.io/image-pull-policy: Always"));
    assert_eq!(proxy["imagePullPolicy"], "Always");
    let (proxy, _) = sidecar_of(&web(""));
    assert!(proxy.get("imagePullPolicy").is_none());
    let error = refused(&web("config.linkerd.io/image-pull-policy: Sometimes"));
    assert!(
        error.contains("config.linkerd.io/image-pull-policy") && error.contains("\"Sometimes\""),
        "{error}"
    );
}

#[test]
fn port_annotations_move_the_sidecars_ports_and_probes() {
    let annotations = "config.linkerd.io/admin-port: '9990', config.linkerd.io/inbound-port: '9143', \
                       config.linkerd.io/outbound-port: '9140'";
    // The application may use 4191 once the admin port is elsewhere.
    let app = "{name: web, image: web:v1, ports: [{containerPort: 4191}]}";
    let (proxy, notes) = sidecar_of(&deployment(annotations, app));
    let ports: Vec<(String, u64)> = proxy["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("mesh-inbound".to_owned(), 9143),
            ("mesh-outbound".to_owned(), 9140),
            ("mesh-admin".to_owned(), 9990)
        ]
    );
    assert_eq!(proxy["livenessProbe"]["httpGet"]["port"], 9990);
    assert_eq!(proxy["readinessProbe"]["httpGet"]["port"], 9990);
    assert!(!notes.contains("warning"), "{notes}");

    // Its own ports, as declared, are still the application's to avoid.
    let error = refused(&deployment(
        "config.linkerd.io/admin-port: '9990'",
        "{name: web, image: web:v1, ports: [{containerPort: 9990}]}",
    ));
    assert!(
        error.contains("9990") && error.contains("admin port"),
        "{error}"
    );
}

#[test]
fn a_port_annotation_that_is_not_a_port_or_repeats_another_is_refused() {
    for value in ["0", "70000", "http", "-1"] {
        let error = refused(&web(&format!("config.linkerd.io/admin-port: '{value}'")));
        assert!(error.contains("config.linkerd.io/admin-port"), "{error}");
        assert!(error.contains(&format!("{value:?}")), "{error}");
    }
    let error = refused(&web("config.linkerd.io/inbound-port: '4191'"));
    assert!(error.contains("config.linkerd.io/inbound-port"), "{error}");
    assert!(error.contains("admin"), "{error}");
}

#[test]
fn proxy_log_format_plain_is_the_sidecars_json_is_warned_and_another_refused() {
    let (_, notes) = sidecar_of(&web("config.linkerd.io/proxy-log-format: plain"));
    assert!(!notes.contains("warning"), "{notes}");
    let (_, notes) = sidecar_of(&web("config.linkerd.io/proxy-log-format: json"));
    assert!(
        notes.contains("warning: config.linkerd.io/proxy-log-format on Deployment emojivoto/web"),
        "{notes}"
    );
    let error = refused(&web("config.linkerd.io/proxy-log-format: xml"));
    assert!(
        error.contains("config.linkerd.io/proxy-log-format") && error.contains("\"xml\""),
        "{error}"
    );
}

#[test]
fn the_native_sidecar_is_asked_for_under_any_of_its_three_names() {
    for key in [
        "config.linkerd.io/proxy-enable-native-sidecar",
        "config.beta.linkerd.io/proxy-enable-native-sidecar",
        "config.alpha.linkerd.io/proxy-enable-native-sidecar",
    ] {
        let (proxy, _) = sidecar_of(&web(&format!("{key}: 'true'")));
        assert_eq!(proxy["restartPolicy"], "Always", "{key}");
    }
    // The stable name first, then beta, then alpha, as in Linkerd.
    let (proxy, _) = sidecar_of(&web(
        "config.linkerd.io/proxy-enable-native-sidecar: 'false', \
         config.alpha.linkerd.io/proxy-enable-native-sidecar: 'true'",
    ));
    assert!(proxy.get("restartPolicy").is_none(), "{proxy:?}");
    // Go's booleans, as Linkerd reads them.
    let (proxy, _) = sidecar_of(&web(
        "config.linkerd.io/proxy-enable-native-sidecar: 'True'",
    ));
    assert_eq!(proxy["restartPolicy"], "Always");
    let error = refused(&web("config.linkerd.io/proxy-enable-native-sidecar: 'yes'"));
    assert!(
        error.contains("config.linkerd.io/proxy-enable-native-sidecar")
            && error.contains("\"yes\""),
        "{error}"
    );
}

#[test]
fn proxy_await_disabled_takes_the_native_sidecars_startup_probe_off() {
    let native = "config.linkerd.io/proxy-enable-native-sidecar: 'true'";
    let (proxy, _) = sidecar_of(&web(native));
    assert_eq!(proxy["startupProbe"]["httpGet"]["path"], "/ready");
    let (proxy, notes) = sidecar_of(&web(&format!(
        "{native}, config.linkerd.io/proxy-await: disabled"
    )));
    assert!(proxy.get("startupProbe").is_none(), "{proxy:?}");
    assert!(!notes.contains("warning"), "{notes}");
    // On an ordinary container: nothing to take off, nothing to say.
    let (proxy, notes) = sidecar_of(&web("config.linkerd.io/proxy-await: disabled"));
    assert!(proxy.get("lifecycle").is_none(), "{proxy:?}");
    assert!(!notes.contains("warning"), "{notes}");
    let error = refused(&web("config.linkerd.io/proxy-await: maybe"));
    assert!(
        error.contains("config.linkerd.io/proxy-await") && error.contains("\"maybe\""),
        "{error}"
    );
}

#[test]
fn every_other_linkerd_proxy_annotation_is_warned_about_by_name() {
    let annotations = [
        "config.linkerd.io/control-port: '4190'",
        "config.linkerd.io/proxy-image: cr.l5d.io/linkerd/proxy",
        "config.linkerd.io/access-log: apache",
        "config.linkerd.io/proxy-outbound-connect-timeout: 1s",
        "config.alpha.linkerd.io/something-new: x",
    ];
    let (_, notes) = sidecar_of(&web(&annotations.join(", ")));
    for annotation in annotations {
        let key = annotation.split(':').next().unwrap();
        assert!(
            notes.contains(&format!("warning: {key} on Deployment emojivoto/web")),
            "{key}: {notes}"
        );
    }
    assert!(notes.contains("--image"), "{notes}");
    assert!(notes.contains("access_log"), "{notes}");
    // And on the Namespace, named there.
    let input = [namespace("config.linkerd.io/control-port: '4190'"), web("")].join("---\n");
    let (_, notes) = sidecar_of(&input);
    assert!(
        notes.contains("warning: config.linkerd.io/control-port on Namespace emojivoto (at metadata.annotations)"),
        "{notes}"
    );
}

#[test]
fn the_annotations_inject_follows_are_not_warned_about() {
    let annotations = [
        "config.linkerd.io/proxy-cpu-request: 200m",
        "config.linkerd.io/proxy-memory-limit: 1Gi",
        "config.linkerd.io/proxy-log-level: warn",
        "config.linkerd.io/proxy-log-format: plain",
        "config.linkerd.io/proxy-uid: '2102'",
        "config.linkerd.io/proxy-gid: '2102'",
        "config.linkerd.io/image-pull-policy: IfNotPresent",
        "config.linkerd.io/admin-port: '4191'",
        "config.linkerd.io/proxy-await: disabled",
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds: '5'",
    ];
    let (_, notes) = sidecar_of(&web(&annotations.join(", ")));
    assert!(!notes.contains("warning"), "{notes}");
}

#[test]
fn a_followed_annotation_on_the_workloads_own_metadata_is_warned_as_not_read() {
    // Its pods do not carry it: neither Linkerd's injector nor inject
    // reads it there, and the sidecar keeps Linkerd's user.
    let input = web("").replace(
        "metadata: {name: web, namespace: emojivoto}",
        "metadata: {name: web, namespace: emojivoto, annotations: {config.linkerd.io/proxy-uid: '3000'}}",
    );
    let (proxy, notes) = sidecar_of(&input);
    assert_eq!(proxy["securityContext"]["runAsUser"], 2102);
    assert!(
        notes.contains(
            "warning: config.linkerd.io/proxy-uid on Deployment emojivoto/web (at metadata.annotations) is not read"
        ),
        "{notes}"
    );
    assert!(notes.contains("put it on the pod template"), "{notes}");
}
