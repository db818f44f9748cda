//! Chained YAML merge keys in policy and route resources: an anchor that
//! itself merges another (`&tighter {<<: *base, ...}`), merged into a third
//! mapping, reads as Kubernetes' YAML reader (and so `kubectl apply`)
//! reads it.

use std::time::Duration;

use mesh_core::resource::{HttpRoute, ResourceErrorKind, load};

/// Three rules: the second builds on the first's timeouts, the third takes
/// the second's whole.
const CHAINED: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs: [{name: web, kind: Service, group: core, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    timeouts: &base
      request: 10s
      backendRequest: 5s
  - matches: [{path: {type: PathPrefix, value: /b}}]
    timeouts: &tighter
      <<: *base
      backendRequest: 2s
  - matches: [{path: {type: PathPrefix, value: /c}}]
    timeouts:
      <<: *tighter
"#;

fn secs(duration: Option<mesh_core::resource::GatewayDuration>) -> Option<Duration> {
    duration.map(|d| d.get())
}

#[test]
fn a_chained_merge_is_read_as_kubectl_reads_it() {
    // serde_yaml_ng's `apply_merge` brought the second rule's `<<` into
    // the third unapplied: its request timeout was lost, and a field named
    // `<<` was reported as not read.
    let loaded = load::<HttpRoute>("routes.yaml", CHAINED).unwrap();
    assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
    let rules = &loaded.resources[0].spec.rules;
    let timeouts: Vec<_> = rules
        .iter()
        .map(|rule| {
            let t = rule.timeouts.unwrap();
            (secs(t.request), secs(t.backend_request))
        })
        .collect();
    let s = |n| Some(Duration::from_secs(n));
    assert_eq!(timeouts, [(s(10), s(5)), (s(10), s(2)), (s(10), s(2))]);
}

#[test]
fn a_list_of_merged_mappings_takes_the_first_one_first_through_a_chain() {
    let text = CHAINED.replace(
        "      <<: *tighter\n",
        "      <<: [*tighter, *base]\n      request: 4s\n",
    );
    let loaded = load::<HttpRoute>("routes.yaml", &text).unwrap();
    assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
    let t = loaded.resources[0].spec.rules[2].timeouts.unwrap();
    assert_eq!(secs(t.request), Some(Duration::from_secs(4)));
    assert_eq!(secs(t.backend_request), Some(Duration::from_secs(2)));
}

#[test]
fn an_error_in_a_merged_value_names_the_line_of_the_mapping_that_merges_it() {
    // The anchor is in a field the reader does not read, so the bad value
    // is read only where it is merged, at a path that is not written: the
    // line is that of the mapping whose `<<` brought it in, which starts
    // at its `<<`.
    let text = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
x-defaults:
  timeouts: &slow {request: 10s, backendRequest: soon}
spec:
  parentRefs: [{name: web, kind: Service, group: core, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    timeouts:
      <<: *slow
";
    let error = load::<HttpRoute>("routes.yaml", text).unwrap_err();
    assert_eq!(error.kind(), ResourceErrorKind::InvalidValue, "{error}");
    assert_eq!(error.field_path(), "spec.rules[0].timeouts.backendRequest");
    assert_eq!(error.line(), Some(12), "{error}");
    assert!(error.to_string().contains("HTTPRoute r"), "{error}");
}

#[test]
fn a_merge_key_that_names_no_mapping_names_its_mapping_and_line() {
    let text = CHAINED.replace("<<: *base", "<<: [*base, 3]");
    let error = load::<HttpRoute>("routes.yaml", &text).unwrap_err();
    assert_eq!(error.kind(), ResourceErrorKind::InvalidValue, "{error}");
    assert_eq!(error.field_path(), "spec.rules[1].timeouts", "{error}");
    assert_eq!(error.line(), Some(14), "{error}");
    assert!(error.to_string().contains("merge key"), "{error}");
}
