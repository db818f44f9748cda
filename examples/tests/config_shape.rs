//! A configuration text built to make the YAML parser slow (flow
//! collections nested thousands deep, which cost it time with the square
//! of the depth) or too large is refused before it is parsed, at the
//! bracket that goes too deep; a file nested as deep as a real one reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{parse, reject};

#[test]
fn flow_nesting_past_128_levels_is_refused_where_it_goes_too_deep() {
    // 100,000 levels took the parser minutes; the refusal is immediate.
    let text = format!("admin:\n  listen: {}\n", "[".repeat(100_000));
    let error = reject(&text);
    assert_eq!(error.kind(), ConfigErrorKind::LimitExceeded);
    assert_eq!(error.line(), Some(2));
    // `  listen: ` is 10 columns, then 128 brackets before the one too many.
    assert_eq!(error.column(), Some(10 + 129));
    assert!(
        error.to_string().starts_with(
            "sidecar.yaml: flow collections nest deeper than 128 levels at line 2 column 139"
        ),
        "{error}"
    );
}

#[test]
fn nesting_within_the_limit_reaches_the_typed_checks() {
    // 100 levels pass the shape check; the value is then of the wrong type.
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let error = reject(&format!("admin:\n  listen: {deep}\n"));
    assert_ne!(error.kind(), ConfigErrorKind::LimitExceeded, "{error}");
    // And brackets inside a quoted string are text, not nesting.
    let quoted = format!(
        "tracing:\n  attributes:\n    note: '{}'\n",
        "[".repeat(1000)
    );
    let result = parse(&quoted);
    assert!(
        result
            .as_ref()
            .err()
            .is_none_or(|e| e.kind() != ConfigErrorKind::LimitExceeded),
        "{result:?}"
    );
}

#[test]
fn a_text_over_16_mib_is_refused_before_parsing() {
    let text = format!("# {}\n", "x".repeat(16 << 20));
    let error = reject(&text);
    assert_eq!(error.kind(), ConfigErrorKind::LimitExceeded);
}
