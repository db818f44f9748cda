use super::{Segment, locate, parse_path};

/// The line and column of `path` in `text`.
fn at(text: &str, path: &str) -> Option<(usize, usize)> {
    locate(text, 1, path).map(|location| (location.line, location.column))
}

const BLOCK: &str = "\
# the sidecar
inbound:
  app: 127.0.0.1:8080

  ports:
    - listen: 0.0.0.0:4144
      app: 127.0.0.1:5432
    -
      listen: 0.0.0.0:4145   # a comment
      app: 127.0.0.1:6379
outbound:
  listen: 127.0.0.1:4140
  services:
  - name: emoji
    endpoints:
      - 127.0.0.1:8081
      - 127.0.0.1:8082
  - name: 'web'
    endpoints: []
  - name: vote
    endpoints:
admin:
  listen: >-
    0.0.0.0:4191
";

#[test]
fn finds_scalars_in_block_style() {
    assert_eq!(at(BLOCK, "inbound.app"), Some((3, 8)));
    assert_eq!(at(BLOCK, "outbound.listen"), Some((12, 11)));
    assert_eq!(at(BLOCK, "admin.listen"), Some((23, 11)));
}

#[test]
fn finds_list_items_and_their_fields() {
    assert_eq!(at(BLOCK, "inbound.ports[0].listen"), Some((6, 15)));
    assert_eq!(at(BLOCK, "inbound.ports[1].listen"), Some((9, 15)));
    assert_eq!(at(BLOCK, "inbound.ports[1].app"), Some((10, 12)));
    assert_eq!(at(BLOCK, "outbound.services[1].name"), Some((18, 11)));
    assert_eq!(
        at(BLOCK, "outbound.services[0].endpoints[1]"),
        Some((17, 9))
    );
}

#[test]
fn finds_empty_and_missing_values_on_their_key_line() {
    assert_eq!(at(BLOCK, "outbound.services[1].endpoints"), Some((19, 16)));
    assert_eq!(
        at(BLOCK, "outbound.services[2].endpoints").map(|(line, _)| line),
        Some(21)
    );
}

#[test]
fn finds_mappings_at_their_first_key() {
    assert_eq!(at(BLOCK, "inbound").map(|(line, _)| line), Some(3));
    assert_eq!(at(BLOCK, "outbound.services[0]"), Some((14, 5)));
}

#[test]
fn finds_values_in_flow_style() {
    let text = "outbound: {listen: 127.0.0.1:4140,\n  services: [{name: a, endpoints: [1.1.1.1:1]},\n    {name: b, endpoints: [2.2.2.2:2, 3.3.3.3:3]}]}\n";
    assert_eq!(at(text, "outbound.listen"), Some((1, 20)));
    assert_eq!(at(text, "outbound.services[1].name"), Some((3, 12)));
    assert_eq!(at(text, "outbound.services[1].endpoints[1]"), Some((3, 38)));
}

#[test]
fn answers_none_for_what_is_not_written() {
    assert_eq!(at(BLOCK, "admin.port"), None);
    assert_eq!(at(BLOCK, "server"), None);
    assert_eq!(at(BLOCK, "outbound.services[3].name"), None);
    assert_eq!(at(BLOCK, "outbound.listen.port"), None);
    assert_eq!(at(BLOCK, "outbound[0]"), None);
    assert_eq!(at("", "admin.listen"), None);
    assert_eq!(at("admin: [\n", "admin.listen"), None);
}

#[test]
fn does_not_match_keys_by_prefix_or_in_other_sections() {
    let text = "admin:\n  listener: 1\nother:\n  listen: 2\nadmin2:\n  listen: 3\n";
    assert_eq!(at(text, "admin.listen"), None);
}

#[test]
fn points_an_alias_at_its_key_not_at_its_anchor() {
    let text = "admin:\n  listen: &port 0.0.0.0:4191\noutbound:\n  listen: *port\n";
    assert_eq!(at(text, "admin.listen"), Some((2, 11)));
    assert_eq!(at(text, "outbound.listen"), Some((4, 3)));
}

#[test]
fn gives_up_below_an_aliased_mapping() {
    let text = "admin: &admin\n  listen: 0.0.0.0:4191\noutbound: *admin\n";
    assert_eq!(at(text, "admin.listen"), Some((2, 11)));
    assert_eq!(at(text, "outbound.listen"), None);
}

#[test]
fn skips_keys_that_are_not_strings() {
    let text = "? [a, b]\n: 1\n8080: 2\ntrue: 3\nlisten: 4\n";
    assert_eq!(at(text, "listen"), Some((5, 9)));
}

#[test]
fn finds_fields_in_later_documents() {
    let text = "kind: A\nspec: {x: 1}\n---\nkind: B\nspec:\n  x: 2\n";
    assert_eq!(at_in(text, 2, "spec.x"), Some((6, 6)));
    assert_eq!(at_in(text, 3, "spec.x"), None);
    assert_eq!(at_in(text, 0, "spec.x"), None);
}

/// The line and column of `path` in document `document` of `text`.
fn at_in(text: &str, document: usize, path: &str) -> Option<(usize, usize)> {
    locate(text, document, path).map(|location| (location.line, location.column))
}

#[test]
fn parses_paths() {
    assert_eq!(
        parse_path("outbound.services[12].endpoints[0]"),
        Some(vec![
            Segment::Key("outbound"),
            Segment::Key("services"),
            Segment::Index(12),
            Segment::Key("endpoints"),
            Segment::Index(0),
        ])
    );
    assert_eq!(parse_path("admin"), Some(vec![Segment::Key("admin")]));
    for bad in ["", ".admin", "admin.", "a[", "a[x]", "a[0]b", "[0]"] {
        assert_eq!(parse_path(bad), None, "{bad:?}");
    }
}

#[test]
fn a_text_too_deep_to_parse_quickly_is_not_looked_into() {
    let text = format!("spec:\n  rules: {}", "{a: ".repeat(100_000));
    assert_eq!(at(&text, "spec"), None);
    let shallow = format!("spec:\n  rules: {}1{}", "{a: ".repeat(100), "}".repeat(100));
    assert_eq!(at(&shallow, "spec.rules"), Some((2, 10)));
}

#[test]
fn finds_keys_that_hold_dots_such_as_annotations() {
    // Annotation and label keys are dotted domain names; the field path
    // joins them with the same `.` as its other keys.
    let text = "\
metadata:
  name: r
  annotations:
    retry.linkerd.io/http: 5xx
    retry.linkerd.io/limit: \"two\"
    config.alpha.linkerd.io/proxy-wait-before-exit-seconds: x
spec: {}
";
    assert_eq!(
        at(text, "metadata.annotations.retry.linkerd.io/limit"),
        Some((5, 29))
    );
    assert_eq!(
        at(
            text,
            "metadata.annotations.config.alpha.linkerd.io/proxy-wait-before-exit-seconds"
        ),
        Some((6, 61))
    );
    assert_eq!(at(text, "metadata.annotations.retry.linkerd.io/grpc"), None);
    // A nested key is still preferred where it is written.
    let nested = "a:\n  b.c: 1\n  b:\n    c: 2\n";
    assert_eq!(at(nested, "a.b.c"), Some((4, 8)));
    assert_eq!(at("a:\n  b.c: 1\n", "a.b.c"), Some((2, 8)));
}
