//! A configuration file is one YAML document. A file that holds a second
//! (two files concatenated, a `---` left between sections) is refused at
//! the line where the second one starts, and a mistake inside a later
//! document is reported where it is, not as a count of documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::config::ConfigErrorKind;

use crate::support;

use support::config::{assert_error, parse, reject};

#[test]
fn a_second_document_is_refused_where_it_starts() {
    let yaml = "\
inbound:
  app: 127.0.0.1:8080
---
outbound:
  listen: 127.0.0.1:4140
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Syntax, "", 4);
    let text = error.to_string();
    assert!(text.contains("one document"), "{text}");
    assert!(text.contains("second"), "{text}");
}

#[test]
fn a_mistake_in_a_later_document_is_reported_where_it_is() {
    let yaml = "\
inbound:
  app: 127.0.0.1:8080
---
admin:
  listen: 127.0.0.1:4191: x
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Syntax, "", 5);
    let text = error.to_string();
    assert!(text.contains("mapping values are not allowed"), "{text}");

    // After `...`, a document starts with `---`.
    let error = reject("inbound:\n  app: 127.0.0.1:8080\n...\nadmin: {}\n");
    assert_error(&error, ConfigErrorKind::Syntax, "", 4);
}

#[test]
fn a_file_that_starts_with_a_document_marker_is_one_document() {
    let config = parse("---\ninbound:\n  app: 127.0.0.1:8080\n...\n").unwrap();
    assert_eq!(config.inbound.ports.len(), 1);
}
