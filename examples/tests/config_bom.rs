//! A configuration file saved with a UTF-8 byte-order mark, as some
//! Windows editors save every file, reads as the same file without it
//! (YAML 1.2 §5.2 allows one at the start of a stream), and its errors
//! keep their lines and columns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::config::{ConfigErrorKind, SidecarConfig};
use support::config::{assert_error, parse, reject};

const YAML: &str = "admin:\n  listen: 127.0.0.1:4191\noutbound:\n  listen: 127.0.0.1:4140\n";

#[test]
fn a_byte_order_mark_before_the_text_is_not_part_of_it() {
    let marked = format!("\u{feff}{YAML}");
    assert_eq!(parse(&marked).unwrap(), parse(YAML).unwrap());
    assert_eq!(parse("\u{feff}").unwrap(), SidecarConfig::default());
}

#[test]
fn a_file_with_a_byte_order_mark_loads() {
    let (_dir, path) = support::config::file(format!("\u{feff}{YAML}"));
    assert_eq!(SidecarConfig::load(&path).unwrap(), parse(YAML).unwrap());
}

#[test]
fn errors_after_a_byte_order_mark_keep_their_lines_and_columns() {
    let error = reject("\u{feff}admin:\n  listen: nonsense\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "admin.listen", 2);
    assert_eq!(error.column(), Some(11));
    let error = reject("\u{feff}admin: {listen: nonsense}\n");
    assert_error(&error, ConfigErrorKind::InvalidValue, "admin.listen", 1);
    assert_eq!(error.column(), Some(17));
}
