//! `sidecar inject` on input built to exhaust it: flow collections nested
//! far deeper than any manifest, and input without end. Each is refused
//! with an error that says where and why, quickly and in bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::Read;

use mesh_core::resource::ResourceErrorKind;
use mesh_examples::sidecar::inject::{self, InjectConfig, InjectError};
use support::sidecar_cli_with_input;

fn config_map_with(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  a: {value}\n")
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn flow_nesting_past_128_levels_is_refused_at_the_bracket_too_deep() {
    let text = config_map_with(&nested(129));
    let error = inject::inject("deep.yaml", &text, &InjectConfig::new()).unwrap_err();
    let error = error.as_manifest().expect("a manifest error");
    assert_eq!(error.kind(), ResourceErrorKind::LimitExceeded);
    assert_eq!(error.line(), Some(5));
    // `  a: ` and 128 brackets before the one too many.
    assert_eq!(error.location().unwrap().column, 6 + 128);
    assert_eq!(
        error.to_string(),
        "deep.yaml: flow collections nest deeper than 128 levels at line 5 column 134"
    );
}

#[test]
fn flow_nesting_the_parser_reads_passes_through_as_before() {
    let text = config_map_with(&nested(120));
    let injected = inject::inject("deep.yaml", &text, &InjectConfig::new()).unwrap();
    assert_eq!(injected.yaml, text);
}

#[test]
fn a_hundred_thousand_open_brackets_are_refused_without_reading_them_all() {
    // libyaml's time grows with the square of the nesting: before the
    // scan, this input took minutes.
    let text = config_map_with(&"[".repeat(100_000));
    let error = inject::inject("deep.yaml", &text, &InjectConfig::new()).unwrap_err();
    assert_eq!(error.as_manifest().unwrap().line(), Some(5));

    let json = format!("{{\"kind\": {}}}", "{\"a\": ".repeat(100_000));
    let error = inject::inject("deep.json", &json, &InjectConfig::new()).unwrap_err();
    assert_eq!(error.as_manifest().unwrap().line(), Some(1));
}

#[test]
fn brackets_in_strings_comments_and_block_scalars_are_not_nesting() {
    let many = "[".repeat(1000);
    let text = format!(
        "# {many}\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  a: '{many}'\n  b: \"{many}\"\n  c: |\n    {many}\n  d: x{many} # {many}\n  e: [\"{many}\"]\n"
    );
    let injected = inject::inject("brackets.yaml", &text, &InjectConfig::new()).unwrap();
    assert_eq!(
        injected.yaml, text,
        "a ConfigMap passes through byte for byte"
    );
}

#[test]
fn input_over_the_limit_is_refused_and_not_read_past_it() {
    let mut at_limit_plus_one = std::io::repeat(b'#').take(inject::MAX_INPUT as u64 + 1);
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let error = inject::inject_io(
        "stdin",
        &mut at_limit_plus_one,
        &mut out,
        &mut notes,
        &InjectConfig::new(),
    )
    .unwrap_err();
    assert!(matches!(&error, InjectError::TooLarge { origin } if origin == "stdin"));
    assert_eq!(
        error.to_string(),
        "stdin is longer than 16 MiB: inject it in parts"
    );
    assert!(out.is_empty() && notes.is_empty());

    // An endless input is refused too: only the limit is ever read.
    let mut endless = std::io::repeat(b'#');
    let error = inject::inject_io(
        "stdin",
        &mut endless,
        &mut out,
        &mut notes,
        &InjectConfig::new(),
    )
    .unwrap_err();
    assert!(matches!(error, InjectError::TooLarge { .. }));

    let text = "#".repeat(inject::MAX_INPUT + 1);
    let error = inject::inject("big.yaml", &text, &InjectConfig::new()).unwrap_err();
    assert!(matches!(error, InjectError::TooLarge { .. }));
}

#[test]
fn the_cli_refuses_deep_nesting_on_standard_error_and_writes_nothing() {
    let text = config_map_with(&"[".repeat(200_000));
    let output = sidecar_cli_with_input(&["inject", "-"], &text);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("stdin: flow collections nest deeper than 128 levels at line 5 column 134"),
        "{stderr}"
    );
}

#[test]
fn input_over_the_limit_is_refused_whatever_its_first_or_last_bytes() {
    let over = |input: Vec<u8>| {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let result = inject::inject_io(
            "stdin",
            &mut &input[..],
            &mut out,
            &mut notes,
            &InjectConfig::new(),
        );
        assert!(out.is_empty(), "nothing of a cut input is written");
        result.unwrap_err()
    };
    // A byte order mark is no excuse: the input is cut at the limit, and
    // what was read must not pass for all of it.
    let mut marked = "\u{feff}".as_bytes().to_vec();
    marked.resize(inject::MAX_INPUT + 3, b'#');
    assert!(matches!(over(marked), InjectError::TooLarge { .. }));
    // Nor is a character cut in two at the limit a reading error.
    let mut cut = vec![b'#'; inject::MAX_INPUT];
    cut.extend_from_slice("é".as_bytes());
    assert!(matches!(over(cut), InjectError::TooLarge { .. }));
}
