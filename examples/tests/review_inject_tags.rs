//! A scalar tagged `!!str` is a string whatever it looks like: go-yaml v2,
//! which kubectl reads manifests with, takes any data tagged `!!str` as a
//! string ("Any data is accepted as a !!str or !!binary", its
//! `resolve.go`). Manifests use the tag where a quote would do, as in
//! `value: !!str 8080` for an environment variable, which the API server
//! wants as a string. Read as a plain scalar, it would be written back as
//! the number 8080 and the injected workload refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::inject::{self, InjectConfig, Outcome};
use serde_yaml_ng::Value;

/// A Deployment whose container `web` has `extra` (indented for its
/// mapping) after its image.
fn deployment(extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  template:
    spec:
      containers:
      - name: web
        image: web:1
{extra}"
    )
}

/// The container `web` of the injected Deployment, and the text written.
/// Injecting that text again changes nothing.
fn web(text: &str) -> (Value, String) {
    let injected = inject::inject("web.yaml", text, &InjectConfig::new()).unwrap();
    assert_eq!(injected.notes[0].outcome, Outcome::Injected);
    let again = inject::inject("web.yaml", &injected.yaml, &InjectConfig::new()).unwrap();
    assert_eq!(again.yaml, injected.yaml, "injecting twice changed it");
    let value: Value = serde_yaml_ng::from_str(&injected.yaml).unwrap();
    let containers = value["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .clone();
    let web = containers.into_iter().find(|c| c["name"] == "web").unwrap();
    (web, injected.yaml)
}

#[test]
fn a_str_tagged_number_stays_a_string() {
    let (web, text) = web(&deployment(
        "        env:
        - {name: PORT, value: !!str 8080}
        - {name: MODE, value: !!str 0644}
",
    ));
    assert_eq!(web["env"][0]["value"], Value::from("8080"), "{web:?}");
    assert_eq!(web["env"][1]["value"], Value::from("0644"), "{web:?}");
    // Quoted, so that YAML 1.1 reads them as strings too.
    assert!(text.contains("value: '8080'\n"), "{text}");
    assert!(text.contains("value: '0644'\n"), "{text}");
}

#[test]
fn a_str_tagged_boolean_stays_a_string() {
    let (web, text) = web(&deployment(
        "        env:
        - name: VERBOSE
          value: !!str yes
        - name: LEGACY
          value: !<tag:yaml.org,2002:str> off
",
    ));
    assert_eq!(web["env"][0]["value"], Value::from("yes"), "{web:?}");
    assert_eq!(web["env"][1]["value"], Value::from("off"), "{web:?}");
    assert!(text.contains("value: 'yes'\n"), "{text}");
    assert!(text.contains("value: 'off'\n"), "{text}");
}

#[test]
fn the_tag_may_come_with_an_anchor_or_on_the_line_before() {
    let (web, _) = web(&deployment(
        "        env:
        - name: A
          value: &port !!str 9090
        - name: B
          value: !!str &mode 0755
        - name: C
          value: !!str
            on
        - {name: D, value: *port}
",
    ));
    let values: Vec<&Value> = (0..4).map(|i| &web["env"][i]["value"]).collect();
    assert_eq!(values, ["9090", "0755", "on", "9090"], "{web:?}");
}

#[test]
fn a_str_tag_in_a_flow_list_is_kept() {
    let (web, _) = web(&deployment(
        "        args: [!!str 10, --flag, !!str true, 0x10]
",
    ));
    // The untagged plain `0x10` is still the number kubectl reads.
    assert_eq!(
        web["args"],
        serde_yaml_ng::from_str::<Value>("['10', --flag, 'true', 16]").unwrap(),
        "{web:?}"
    );
}

#[test]
fn an_untagged_plain_scalar_is_still_read_as_yaml_1_1() {
    // The change must not reach plain scalars whose line has a `!`
    // somewhere else, or anchors without tags.
    let (web, _) = web(&deployment(
        "        workingDir: /x!y
        env:
        - {name: A, value: &a 0644}
        - {name: 'B!', value: yes}
",
    ));
    assert_eq!(web["env"][0]["value"], Value::from(420));
    assert_eq!(web["env"][1]["value"], Value::Bool(true));
}
