//! An SMI `TrafficSplit`, read as the `dstOverrides` linkerd-smi writes
//! into its apex service's ServiceProfile: backends in the split's
//! namespace, weights as quantities (`v1alpha1`) or whole numbers
//! (`v1alpha2`), the profile's own overrides replaced with a warning, two
//! splits for one apex refused, and bad fields refused at their line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config::{self, DstBackend, Unmatched};

/// A `TrafficSplit` `name` of `emoji` in `emojivoto`, at `version`, with
/// `backends` as its flow sequence entries (from line 7).
fn split(version: &str, name: &str, backends: &[&str]) -> String {
    let mut text = format!(
        "apiVersion: split.smi-spec.io/{version}
kind: TrafficSplit
metadata: {{name: {name}, namespace: emojivoto}}
spec:
  service: emoji
  backends:
"
    );
    for entry in backends {
        text.push_str(&format!("  - {entry}\n"));
    }
    text
}

const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  dstOverrides:
  - {authority: emoji-v9.emojivoto.svc.cluster.local:8080, weight: 1}
";

/// The overrides of `emoji` in `emojivoto` in force after reading `text`.
fn overrides(text: &str) -> Vec<(String, Option<String>, u32)> {
    let loaded = config::load("split.yaml", text).unwrap();
    shares(
        loaded
            .service("emoji", Some("emojivoto"))
            .unwrap()
            .dst_overrides(),
    )
}

fn shares(backends: &[DstBackend]) -> Vec<(String, Option<String>, u32)> {
    backends
        .iter()
        .map(|b| (b.name.clone(), b.namespace.clone(), b.weight.get()))
        .collect()
}

fn share(name: &str, weight: u32) -> (String, Option<String>, u32) {
    (name.to_owned(), Some("emojivoto".to_owned()), weight)
}

#[test]
fn a_v1alpha2_split_is_read_as_the_overrides_linkerd_smi_writes() {
    let text = split(
        "v1alpha2",
        "canary",
        &[
            "{service: emoji, weight: 3}",
            "{service: emoji-v2, weight: 1}",
            "{service: emoji-v3, weight: 0}",
        ],
    );
    assert_eq!(
        overrides(&text),
        [share("emoji", 30_000), share("emoji-v2", 10_000)]
    );
    let loaded = config::load("split.yaml", &text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let service = loaded.service("emoji", Some("emojivoto")).unwrap();
    // Served by the profile linkerd-smi would create: no route, the
    // default route takes every request.
    assert!(service.served_by_profile());
    assert_eq!(service.unmatched(), Unmatched::Service);
    let backend = &service.dst_overrides()[1];
    assert_eq!(
        backend.authority.to_string(),
        "emoji-v2.emojivoto.svc.cluster.local"
    );
    assert_eq!(
        backend.source,
        "split.yaml: document 1 (TrafficSplit emojivoto/canary): spec.backends[1]"
    );
}

#[test]
fn a_v1alpha1_split_takes_quantities() {
    let text = split(
        "v1alpha1",
        "canary",
        &[
            "{service: emoji, weight: 900m}",
            "{service: emoji-v2, weight: '100m'}",
            "{service: emoji-v3, weight: 1}",
        ],
    );
    assert_eq!(
        overrides(&text),
        [
            share("emoji", 9_000),
            share("emoji-v2", 1_000),
            share("emoji-v3", 10_000)
        ]
    );
    // Every weight 0: no split, and nothing served by a profile.
    let text = split("v1alpha1", "off", &["{service: emoji-v2, weight: 0m}"]);
    assert!(overrides(&text).is_empty());
    let loaded = config::load("split.yaml", &text).unwrap();
    let service = loaded.service("emoji", Some("emojivoto")).unwrap();
    assert!(!service.served_by_profile());
}

#[test]
fn a_bad_field_is_refused_at_its_entry_and_line() {
    for (version, entry, field, says, kind) in [
        (
            "v1alpha2",
            "{service: emoji, weight: 500m}",
            "weight",
            "is a string, not a number",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha2",
            "{service: emoji, weight: '3'}",
            "weight",
            "write it unquoted (weight: 3)",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha2",
            "{service: emoji, weight: -1.5}",
            "weight",
            "is negative",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha2",
            "{service: emoji, weight: -1}",
            "weight",
            "is negative",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha2",
            "{service: emoji, weight: 500000}",
            "weight",
            "wrap around",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha1",
            "{service: emoji, weight: ten}",
            "weight",
            "not a Kubernetes quantity",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha1",
            "{service: emoji, weight: 1.5}",
            "weight",
            "write \"1.5\"",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha1",
            "{service: emoji, weight: [1]}",
            "weight",
            "invalid type",
            ResourceErrorKind::InvalidType,
        ),
        (
            "v1alpha2",
            "{service: Emoji_V2, weight: 1}",
            "service",
            "not a Service's name",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha2",
            "{service: emoji-v2.emojivoto, weight: 1}",
            "service",
            "not a Service's name",
            ResourceErrorKind::InvalidValue,
        ),
        (
            "v1alpha2",
            "{service: emoji}",
            "weight",
            "missing field",
            ResourceErrorKind::MissingField,
        ),
    ] {
        let text = split(version, "bad", &["{service: emoji-v2, weight: 1}", entry]);
        let err = config::load("split.yaml", &text).unwrap_err();
        assert_eq!(
            err.field_path(),
            format!("spec.backends[1].{field}"),
            "{entry}: {err}"
        );
        assert_eq!(err.line(), Some(8), "{entry}: {err}");
        let shown = err.to_string();
        assert!(
            shown.contains("split.yaml: document 1") && shown.contains(says),
            "{entry}: {shown}"
        );
        assert_eq!(err.kind(), kind, "{entry}: {err}");
    }
    // A v1alpha2 weight is a number, whole or not, as linkerd-smi's CRD
    // types it; its adaptor reads 1.5 as the quantity 1500m.
    let text = split(
        "v1alpha2",
        "fraction",
        &["{service: emoji-v2, weight: 1.5}"],
    );
    assert_eq!(overrides(&text), [share("emoji-v2", 15_000)]);
    // The apex, at its own line.
    let text = split("v1alpha2", "bad", &["{service: emoji-v2, weight: 1}"])
        .replace("service: emoji\n", "service: Emoji\n");
    let err = config::load("split.yaml", &text).unwrap_err();
    assert_eq!(err.field_path(), "spec.service", "{err}");
    assert_eq!(err.line(), Some(5), "{err}");
    // A version SMI never had is refused as any kind's would be.
    let text = split("v1alpha9", "bad", &["{service: emoji-v2, weight: 1}"]);
    let err = config::load("split.yaml", &text).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::UnsupportedVersion, "{err}");
}

#[test]
fn the_split_replaces_the_profiles_own_overrides_with_a_warning() {
    let ts = split("v1alpha2", "canary", &["{service: emoji-v2, weight: 1}"]);
    for text in [format!("{PROFILE}---\n{ts}"), format!("{ts}---\n{PROFILE}")] {
        assert_eq!(overrides(&text), [share("emoji-v2", 10_000)]);
        let loaded = config::load("split.yaml", &text).unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(
                "(TrafficSplit emojivoto/canary): spec.service: replaces the \
                 dstOverrides of split.yaml: document"
            ) && warnings[0]
                .contains("(ServiceProfile emojivoto/emoji.emojivoto.svc.cluster.local)"),
            "{warnings:?}"
        );
    }
    // A profile without overrides of its own: nothing to warn of.
    let budget = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 10s}
";
    let loaded = config::load("split.yaml", &format!("{budget}---\n{ts}")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // A profile linkerd-smi is told to skip keeps its own, and the split
    // is set aside.
    let skipped = PROFILE.replace(
        "namespace: emojivoto}",
        "namespace: emojivoto, annotations: {smi.linkerd.io/skip: 'true'}}",
    );
    assert_ne!(skipped, PROFILE);
    let text = format!("{skipped}---\n{ts}");
    assert_eq!(overrides(&text), [share("emoji-v9", 10_000)]);
    let loaded = config::load("split.yaml", &text).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].to_string().contains("set aside")
            && loaded.warnings[0]
                .to_string()
                .contains("smi.linkerd.io/skip"),
        "{}",
        loaded.warnings[0]
    );
}

#[test]
fn two_splits_for_one_apex_are_refused_in_one_text_and_the_later_served_across_two() {
    let a = split("v1alpha2", "a", &["{service: emoji-v2, weight: 1}"]);
    let b = split("v1alpha2", "b", &["{service: emoji-v3, weight: 1}"]);
    let err = config::load("split.yaml", &format!("{a}---\n{b}")).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateName, "{err}");
    assert_eq!(err.field_path(), "spec.service", "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("document 2")
            && shown.contains("after split.yaml: document 1 (TrafficSplit emojivoto/a)"),
        "{shown}"
    );
    // Splits of two apexes, or of one name in two namespaces, are apart.
    let other = b.replace("service: emoji\n", "service: web\n");
    let apart = config::load("split.yaml", &format!("{a}---\n{other}")).unwrap();
    let web = apart.service("web", Some("emojivoto")).unwrap();
    assert_eq!(shares(web.dst_overrides()), [share("emoji-v3", 10_000)]);
    let elsewhere = b.replace("namespace: emojivoto}", "namespace: books}");
    let apart = config::load("split.yaml", &format!("{a}---\n{elsewhere}")).unwrap();
    let books = apart.service("emoji", Some("books")).unwrap();
    assert_eq!(
        shares(books.dst_overrides()),
        [("emoji-v3".to_owned(), Some("books".to_owned()), 10_000)]
    );
    let emoji = apart.service("emoji", Some("emojivoto")).unwrap();
    assert_eq!(shares(emoji.dst_overrides()), [share("emoji-v2", 10_000)]);

    // In two files: the later one is served, with a warning naming both.
    let mut loaded = config::load("a.yaml", &a).unwrap();
    loaded.merge(config::load("b.yaml", &b).unwrap());
    let service = loaded.service("emoji", Some("emojivoto")).unwrap();
    assert_eq!(shares(service.dst_overrides()), [share("emoji-v3", 10_000)]);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "b.yaml: document 1 (TrafficSplit emojivoto/b): spec.service: a second TrafficSplit"
        ) && warnings[0].contains("after a.yaml: document 1 (TrafficSplit emojivoto/a)"),
        "{warnings:?}"
    );
}

#[test]
fn a_split_without_a_namespace_splits_its_apex_in_the_namespace_it_is_applied_to() {
    // Beside a profile and a route of the service written with its
    // namespace: the reader keeps the two spellings apart, as it does
    // routes, for a client to merge in its own namespace.
    let text = split("v1alpha2", "canary", &["{service: emoji-v2, weight: 1}"])
        .replace(", namespace: emojivoto}", "}");
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: Exact, value: /x}}]
";
    let loaded = config::load("split.yaml", &format!("{route}---\n{PROFILE}---\n{text}")).unwrap();
    let service = loaded.service("emoji", None).unwrap();
    assert_eq!(
        shares(service.dst_overrides()),
        [("emoji-v2".to_owned(), None, 10_000)]
    );
    assert_eq!(service.dst_overrides()[0].authority.to_string(), "emoji-v2");
    let named = loaded.service("emoji", Some("emojivoto")).unwrap();
    assert_eq!(shares(named.dst_overrides()), [share("emoji-v9", 10_000)]);
}
