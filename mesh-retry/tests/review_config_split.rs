//! An SMI `TrafficSplit` as linkerd-smi serves it: only the versions its
//! CRD serves, each refusal saying why and what to write instead; the
//! split's namespace is its apex's and its backends'; and whether a
//! service's split comes from a `TrafficSplit` or from its profile's own
//! `dstOverrides`, which messages about a backend name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config;

/// A `TrafficSplit` of `emoji` in `namespace` at `version`, with `extra`
/// at the end of its `spec`.
fn split(version: &str, namespace: &str, extra: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/{version}
kind: TrafficSplit
metadata: {{name: emoji-split, namespace: {namespace}}}
spec:
  service: emoji
  backends:
  - {{service: emoji, weight: 3}}
  - {{service: emoji-v2, weight: 1}}
{extra}"
    )
}

#[test]
fn smi_versions_linkerd_smi_does_not_serve_are_refused_saying_which_it_serves() {
    // SMI's v1alpha3 and v1alpha4 add `matches`; linkerd-smi's CRD serves
    // neither version, so a cluster running it refuses the object.
    for version in ["v1alpha3", "v1alpha4"] {
        let matches = "  matches: [{kind: HTTPRouteGroup, name: list}]\n";
        let text = split(version, "emojivoto", matches);
        let err = config::load("split.yaml", &text).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::UnsupportedVersion, "{err}");
        assert_eq!(err.field_path(), "apiVersion", "{err}");
        assert_eq!(err.line(), Some(1), "{err}");
        let shown = err.to_string();
        for says in [
            "split.yaml: document 1",
            &format!("split.smi-spec.io/{version}"),
            "linkerd-smi",
            "split.smi-spec.io/v1alpha2",
        ] {
            assert!(shown.contains(says), "{version}: no {says:?} in {shown}");
        }
    }
}

#[test]
fn a_v1alpha2_weight_written_as_a_string_is_refused_as_a_string() {
    let text = split("v1alpha2", "emojivoto", "").replace("weight: 1}", "weight: '1'}");
    let err = config::load("split.yaml", &text).unwrap_err();
    assert_eq!(err.field_path(), "spec.backends[1].weight", "{err}");
    let shown = err.to_string();
    // Not "weight \"1\" is not a whole number", which it is.
    assert!(shown.contains("a string"), "{shown}");
    assert!(shown.contains("unquoted"), "{shown}");
}

#[test]
fn a_split_in_another_namespace_splits_the_apex_of_that_namespace() {
    let loaded = config::load("split.yaml", &split("v1alpha2", "canary", "")).unwrap();
    assert!(loaded.service("emoji", Some("emojivoto")).is_none());
    let apex = loaded.service("emoji", Some("canary")).unwrap();
    let backends: Vec<_> = apex
        .dst_overrides()
        .iter()
        .map(|b| (b.name.as_str(), b.namespace.as_deref(), b.weight.get()))
        .collect();
    assert_eq!(
        backends,
        [
            ("emoji", Some("canary"), 30_000),
            ("emoji-v2", Some("canary"), 10_000)
        ]
    );
}

#[test]
fn a_split_in_force_is_told_apart_from_the_profiles_own_overrides() {
    let profile = |annotations: &str| {
        format!(
            "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: emoji.emojivoto.svc.cluster.local
  namespace: emojivoto
  annotations: {{{annotations}}}
spec:
  dstOverrides: [{{authority: emoji-v9.emojivoto.svc.cluster.local, weight: 1}}]
"
        )
    };
    let from_split = |text: &str| {
        let loaded = config::load("split.yaml", text).unwrap();
        let service = loaded.service("emoji", Some("emojivoto")).unwrap();
        let first = service.dst_overrides()[0].name.clone();
        (service.dst_overrides_from_traffic_split(), first)
    };
    let split = split("v1alpha2", "emojivoto", "");
    assert_eq!(from_split(&split), (true, "emoji".to_owned()));
    assert_eq!(from_split(&profile("")), (false, "emoji-v9".to_owned()));
    let both = format!("{}---\n{split}", profile(""));
    assert_eq!(from_split(&both), (true, "emoji".to_owned()));
    // linkerd-smi leaves a profile annotated smi.linkerd.io/skip alone.
    let skipped = format!("{}---\n{split}", profile("smi.linkerd.io/skip: 'true'"));
    assert_eq!(from_split(&skipped), (false, "emoji-v9".to_owned()));
}

#[test]
fn load_leaves_a_split_services_rules_until_they_are_set_aside() {
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-stable, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /list}}]
";
    let text = format!("{route}---\n{}", split("v1alpha2", "emojivoto", ""));
    let loaded = config::load("split.yaml", &text).unwrap();
    let mut service = loaded.service("emoji", Some("emojivoto")).unwrap().clone();
    // As read: the rule, and its 404 for the rest, though the split
    // serves the service for a client that serves it as Linkerd does.
    assert!(service.served_by_profile());
    assert_eq!(service.routes.len(), 1);
    assert_eq!(service.unmatched(), config::Unmatched::NotFound);
    let aside = service.set_aside_for_profile();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // The warning names the split, and says how a TrafficSplit comes to
    // be served as a profile: the user wrote no ServiceProfile.
    let shown = aside[0].to_string();
    assert!(
        shown.contains(
            "set aside for split.yaml: document 2 (TrafficSplit emojivoto/emoji-split), which \
             serves service emojivoto/emoji alone: linkerd-smi writes a TrafficSplit's backends \
             into its apex service's ServiceProfile as dstOverrides"
        ),
        "{shown}"
    );
    assert!(service.routes.is_empty());
    assert_eq!(service.unmatched(), config::Unmatched::Service);
}
