//! `sidecar inject` warns of Linkerd's `config.linkerd.io/opaque-ports`,
//! `skip-inbound-ports` and `skip-outbound-ports`, which the injected
//! sidecar cannot follow: its configuration is a ConfigMap inject does
//! not write. A port Linkerd served opaque, silently left to protocol
//! detection, would stall a server-speaks-first protocol; the warning
//! says where to say the same thing, and the output is written all the
//! same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::inject::{self, Image, InjectConfig, Injected, Outcome, Unread};

fn config() -> InjectConfig {
    InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap())
}

/// A Deployment `web` in `emojivoto`, with `own` annotations on its
/// metadata and `template` ones on its pod template, after its Namespace
/// with `namespace` annotations.
fn manifest(namespace: &str, own: &str, template: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Namespace
metadata: {{name: emojivoto, annotations: {{{namespace}}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: emojivoto, annotations: {{{own}}}}}
spec:
  template:
    metadata:
      annotations: {{{template}}}
    spec:
      containers: [{{name: web, image: web}}]
"
    )
}

fn inject(text: &str) -> Injected {
    inject::inject("web.yaml", text, &config()).unwrap()
}

/// What the Deployment's warnings name: the annotation, the object and
/// the path.
fn warned(injected: &Injected) -> Vec<(Unread, String, String)> {
    injected.notes[1]
        .warnings
        .iter()
        .map(|w| (w.annotation.clone(), w.object.clone(), w.path.clone()))
        .collect()
}

#[test]
fn opaque_ports_on_the_pod_template_is_warned_of_and_the_sidecar_still_injected() {
    let injected = inject(&manifest(
        "",
        "",
        "config.linkerd.io/opaque-ports: '5432,6000'",
    ));
    let note = &injected.notes[1];
    assert_eq!(note.outcome, Outcome::Injected);
    assert!(injected.yaml.contains("name: mesh-proxy"));
    assert_eq!(
        warned(&injected),
        [(
            Unread::OpaquePorts,
            "Deployment emojivoto/web".to_owned(),
            "spec.template.metadata.annotations".to_owned()
        )]
    );
    assert_eq!(note.warnings[0].config_map, "web-mesh-config");
    // The note is the outcome's line, then the warning's.
    let text = note.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "web.yaml: document 2 (Deployment emojivoto/web): injected"
    );
    assert!(
        lines[1].starts_with(
            "web.yaml: document 2 (Deployment emojivoto/web): warning: \
             config.linkerd.io/opaque-ports on Deployment emojivoto/web \
             (at spec.template.metadata.annotations) is not read: "
        ),
        "{text}"
    );
    // Where the sidecar's file says the same, as the README says it.
    for place in ["web-mesh-config", "protocol: opaque", "inbound.ports"] {
        assert!(lines[1].contains(place), "{place}: {text}");
    }
    assert_eq!(lines.len(), 2, "{text}");
}

#[test]
fn the_nearest_annotation_is_the_one_named() {
    let skip = "config.linkerd.io/skip-inbound-ports: '4000'";
    let named = |namespace, own, template| {
        let warned = warned(&inject(&manifest(namespace, own, template)));
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert_eq!(warned[0].0, Unread::SkipInboundPorts);
        (warned[0].1.clone(), warned[0].2.clone())
    };
    let on_web = |path: &str| ("Deployment emojivoto/web".to_owned(), path.to_owned());
    assert_eq!(
        named(skip, skip, skip),
        on_web("spec.template.metadata.annotations")
    );
    assert_eq!(named(skip, skip, ""), on_web("metadata.annotations"));
    assert_eq!(
        named(skip, "", ""),
        (
            "Namespace emojivoto".to_owned(),
            "metadata.annotations".to_owned()
        )
    );
    assert_eq!(warned(&inject(&manifest("", "", ""))), []);
}

#[test]
fn each_unread_annotation_is_warned_of_once() {
    let all = "config.linkerd.io/opaque-ports: '3306', \
        config.linkerd.io/skip-inbound-ports: '4000', \
        config.linkerd.io/skip-outbound-ports: '25'";
    let warned = warned(&inject(&manifest(all, all, all)));
    let annotations: Vec<Unread> = warned.iter().map(|w| w.0.clone()).collect();
    assert_eq!(
        annotations,
        [
            Unread::OpaquePorts,
            Unread::SkipInboundPorts,
            Unread::SkipOutboundPorts
        ]
    );
    let messages = inject(&manifest(all, "", "")).notes[1].to_string();
    for annotation in annotations {
        assert!(messages.contains(annotation.annotation()), "{messages}");
    }
    assert!(messages.contains("nothing to skip"), "{messages}");
}

#[test]
fn a_workload_left_out_of_the_mesh_is_not_warned_of() {
    let opaque = "config.linkerd.io/opaque-ports: '5432'";
    // Disabled: it gets no sidecar.
    let disabled = format!("mesh.io/inject: disabled, {opaque}");
    let injected = inject(&manifest("", "", &disabled));
    assert!(matches!(injected.notes[1].outcome, Outcome::Disabled(_)));
    assert_eq!(warned(&injected), []);
    // Linkerd's injector will mesh it: the input is refused for it, with
    // no warning about annotations Linkerd reads.
    let linkerd = format!("linkerd.io/inject: enabled, {opaque}");
    let error = inject::inject("in.yaml", &manifest(&linkerd, "", ""), &config()).unwrap_err();
    let inject::InjectError::Refused(refused) = error else {
        panic!("{error:?}")
    };
    assert!(matches!(refused[0].outcome, Outcome::OtherProxy(_)));
    assert!(refused[0].warnings.is_empty());
}

#[test]
fn a_workload_injected_again_is_warned_again() {
    let once = inject(&manifest("", "", "config.linkerd.io/opaque-ports: '5432'"));
    let twice = inject(&once.yaml);
    assert_eq!(twice.notes[1].outcome, Outcome::AlreadyInjected);
    assert_eq!(twice.notes[1].warnings, once.notes[1].warnings);
    assert_eq!(twice.yaml, once.yaml);
}

#[test]
fn the_outbound_address_a_warning_names_is_where_the_sidecar_listens() {
    let injected = inject(&manifest(
        "",
        "",
        "config.linkerd.io/skip-outbound-ports: '25', config.linkerd.io/skip-subnets: 10.0.0.0/8, \
         config.linkerd.io/outbound-port: '5140'",
    ));
    let text = injected.notes[1].to_string();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.matches("127.0.0.1:5140").count() == 2 && !text.contains("4140"),
        "{text}"
    );
    // Without the annotation, the default.
    let injected = inject(&manifest(
        "",
        "",
        "config.linkerd.io/skip-outbound-ports: '25'",
    ));
    assert!(injected.notes[1].to_string().contains("127.0.0.1:4140"));
}
