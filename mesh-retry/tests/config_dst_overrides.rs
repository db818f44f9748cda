//! A ServiceProfile's `dstOverrides`, Linkerd's traffic split of a whole
//! service: read as Linkerd's destination controller and proxy read them
//! (weights as Kubernetes quantities, in ten-thousandths; weight 0 dropped;
//! no split when none is left), and refused where they name no service or
//! no weight, at the entry's field and line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config::{self, DstBackend};

/// A profile for `emoji` in `emojivoto` with `overrides` as its
/// `dstOverrides` (flow sequence entries, from line 6).
fn profile(overrides: &[&str]) -> String {
    let mut text = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  dstOverrides:
"
    .to_owned();
    for entry in overrides {
        text.push_str(&format!("  - {entry}\n"));
    }
    text
}

/// The overrides of `emoji` in force after reading `text`.
fn overrides(text: &str) -> Vec<DstBackend> {
    let loaded = config::load("profile.yaml", text).unwrap();
    loaded
        .service("emoji", Some("emojivoto"))
        .unwrap()
        .dst_overrides()
        .to_vec()
}

fn shares(backends: &[DstBackend]) -> Vec<(String, Option<String>, u32)> {
    backends
        .iter()
        .map(|b| (b.name.clone(), b.namespace.clone(), b.weight.get()))
        .collect()
}

#[test]
fn a_canary_split_is_read_in_linkerds_ten_thousandths() {
    let text = profile(&[
        "{authority: emoji.emojivoto.svc.cluster.local:8080, weight: 900m}",
        "{authority: emoji-v2.emojivoto.svc.cluster.local:8080, weight: 100m}",
    ]);
    let read = overrides(&text);
    assert_eq!(
        shares(&read),
        [
            ("emoji".to_owned(), Some("emojivoto".to_owned()), 9_000),
            ("emoji-v2".to_owned(), Some("emojivoto".to_owned()), 1_000),
        ]
    );
    assert_eq!(
        read[1].source,
        "profile.yaml: document 1 (ServiceProfile emojivoto/emoji.emojivoto.svc.cluster.local): \
         spec.dstOverrides[1]"
    );
    assert_eq!(read[1].authority.port(), Some(8080));
    // The field is read, not warned about as unknown.
    let loaded = config::load("profile.yaml", &text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn weights_are_quantities_as_the_crd_takes_them() {
    let text = profile(&[
        "{authority: a, weight: 1}",
        "{authority: b, weight: '1.5'}",
        "{authority: c, weight: 10k}",
        "{authority: d, weight: 1e3}",
        "{authority: e, weight: \"2\"}",
        "{authority: f.other, weight: 1Ki}",
    ]);
    assert_eq!(
        shares(&overrides(&text)),
        [
            ("a".to_owned(), Some("emojivoto".to_owned()), 10_000),
            ("b".to_owned(), Some("emojivoto".to_owned()), 15_000),
            ("c".to_owned(), Some("emojivoto".to_owned()), 100_000_000),
            ("d".to_owned(), Some("emojivoto".to_owned()), 10_000_000),
            ("e".to_owned(), Some("emojivoto".to_owned()), 20_000),
            ("f".to_owned(), Some("other".to_owned()), 10_240_000),
        ]
    );
}

#[test]
fn weight_zero_is_dropped_and_none_left_is_no_split() {
    let some = profile(&[
        "{authority: emoji, weight: 0}",
        "{authority: emoji-v2, weight: 1}",
    ]);
    assert_eq!(
        shares(&overrides(&some)),
        [("emoji-v2".to_owned(), Some("emojivoto".to_owned()), 10_000)]
    );
    assert_eq!(
        overrides(&some)[0].source.rsplit(": ").next(),
        Some("spec.dstOverrides[1]")
    );
    let all_zero = profile(&[
        "{authority: emoji, weight: 0}",
        "{authority: emoji-v2, weight: 0m}",
    ]);
    assert!(overrides(&all_zero).is_empty());
    let empty = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local}
spec:
  dstOverrides: []
";
    assert!(overrides(empty).is_empty());
}

#[test]
fn a_bad_weight_or_authority_is_refused_at_its_entry_and_line() {
    for (entry, field, says) in [
        ("{authority: emoji, weight: -1}", "weight", "is negative"),
        (
            "{authority: emoji, weight: one}",
            "weight",
            "not a Kubernetes quantity",
        ),
        (
            "{authority: emoji, weight: 50%}",
            "weight",
            "not a Kubernetes quantity",
        ),
        ("{authority: emoji, weight: 1.5}", "weight", "write \"1.5\""),
        ("{authority: emoji, weight: 500k}", "weight", "wrap around"),
        ("{authority: emoji, weight: [1]}", "weight", "invalid type"),
        (
            "{authority: '10.0.0.1:80', weight: 1}",
            "authority",
            "IP address",
        ),
        ("{authority: 'emoji:0', weight: 1}", "authority", "port"),
        ("{authority: emoji_v2, weight: 1}", "authority", "label"),
        ("{authority: emoji}", "weight", "missing field"),
        ("{weight: 1}", "authority", "missing field"),
    ] {
        let text = profile(&["{authority: emoji-v2, weight: 1}", entry]);
        let err = config::load("profile.yaml", &text).unwrap_err();
        assert_eq!(
            err.field_path(),
            format!("spec.dstOverrides[1].{field}"),
            "{entry}: {err}"
        );
        assert_eq!(err.line(), Some(7), "{entry}: {err}");
        let shown = err.to_string();
        assert!(
            shown.contains("profile.yaml: document 1") && shown.contains(says),
            "{entry}: {shown}"
        );
        let kind = match says {
            "missing field" => ResourceErrorKind::MissingField,
            "invalid type" => ResourceErrorKind::InvalidType,
            _ => ResourceErrorKind::InvalidValue,
        };
        assert_eq!(err.kind(), kind, "{entry}: {err}");
    }
}

#[test]
fn the_split_of_the_profile_in_force_is_kept_through_merges() {
    let first = profile(&["{authority: emoji-v2, weight: 1}"]);
    let second = profile(&["{authority: emoji-v3, weight: 1}"]);
    let mut merged = config::load("a.yaml", &first).unwrap();
    // An HTTPRoute of the service from another file leaves the split as
    // it is.
    merged.merge(
        config::load(
            "routes.yaml",
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - backendRefs: [{name: emoji-v9, weight: 1}]
",
        )
        .unwrap(),
    );
    let service = merged.service("emoji", Some("emojivoto")).unwrap();
    assert_eq!(service.dst_overrides()[0].name, "emoji-v2");
    // A second profile for the service, applied last, is the one in force.
    merged.merge(config::load("b.yaml", &second).unwrap());
    let service = merged.service("emoji", Some("emojivoto")).unwrap();
    assert_eq!(shares(service.dst_overrides()).len(), 1);
    assert_eq!(service.dst_overrides()[0].name, "emoji-v3");
    assert!(service.dst_overrides()[0].source.starts_with("b.yaml: "));
    // A service without a profile has none.
    let plain = config::load("plain.yaml", "").unwrap();
    assert!(plain.service("emoji", Some("emojivoto")).is_none());
}
