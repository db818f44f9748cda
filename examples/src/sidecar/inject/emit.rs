//! Writing documents back as YAML that Kubernetes reads the same way.
//!
//! serde_yaml_ng writes YAML 1.2, where `yes`, `on` and `1_000` are
//! strings and need no quotes. kubectl reads YAML 1.1, where they are a
//! boolean and a number: an environment variable `value: "yes"` written
//! back without its quotes would be refused by the API server. So strings
//! that YAML 1.1 reads as booleans (`y`, `yes`, `on`, `off`, `n`, `no` in
//! their three cases) or as numbers where YAML 1.2 does not (`1_000`,
//! `0x_1F`, `0B11`, `09`) are single-quoted; [`super::yaml11`] says which.
//!
//! serde_yaml_ng cannot be asked to quote one string, so such a string is
//! written wrapped in a marker character that occurs nowhere in the
//! documents, and each marker becomes a quote. The text is then read back
//! and compared with the documents, so a mistake here is an error rather
//! than a changed manifest.

use serde_yaml_ng::{Mapping, Value};

use super::raw::read_all;

/// Why documents could not be written.
#[derive(Debug)]
pub(super) enum EmitError {
    /// serde_yaml_ng refused a value.
    Serialize(serde_yaml_ng::Error),
    /// The text did not read back as the documents.
    Mismatch,
}

/// The documents as one multi-document YAML text, `---` between them. A
/// document with a text in `raw` is written as that text, which must read
/// as the document.
pub(super) fn emit(documents: &[Value], raw: &[Option<&str>]) -> Result<String, EmitError> {
    if documents.is_empty() {
        return Ok(String::new());
    }
    let marker = ('\u{E000}'..='\u{F8FF}')
        .find(|c| !documents.iter().any(|doc| contains_char(doc, *c)))
        .ok_or(EmitError::Mismatch)?;
    let mut text = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        if let Some(Some(raw)) = raw.get(i) {
            text.push_str(raw);
            if !raw.ends_with('\n') {
                text.push('\n');
            }
            continue;
        }
        let marked = mark(document, marker);
        let yaml = serde_yaml_ng::to_string(&marked).map_err(EmitError::Serialize)?;
        text.push_str(&yaml.replace(marker, "'"));
    }
    // Read back as the input was read, YAML 1.1 scalars and all.
    match read_all(&text) {
        Some(read_back) if read_back == documents => Ok(text),
        _ => Err(EmitError::Mismatch),
    }
}

/// Whether YAML 1.1 reads the plain scalar `text` as something other than
/// a string, where YAML 1.2 reads a string: kubectl's reader (go-yaml v2)
/// takes `yes` for a boolean and `0644`, `1_000` or `0B11` for a number.
fn yaml11_reads_otherwise(text: &str) -> bool {
    super::yaml11::plain_scalar(text).is_some()
}

/// The document with each string YAML 1.1 misreads wrapped in `marker`.
fn mark(value: &Value, marker: char) -> Value {
    match value {
        Value::String(text) if yaml11_reads_otherwise(text) => {
            Value::String(format!("{marker}{text}{marker}"))
        }
        Value::Sequence(items) => Value::Sequence(items.iter().map(|v| mark(v, marker)).collect()),
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .iter()
                .map(|(k, v)| (mark(k, marker), mark(v, marker)))
                .collect::<Mapping>(),
        ),
        Value::Tagged(tagged) => {
            let mut tagged = tagged.clone();
            tagged.value = mark(&tagged.value, marker);
            Value::Tagged(tagged)
        }
        other => other.clone(),
    }
}

fn contains_char(value: &Value, c: char) -> bool {
    match value {
        Value::String(text) => text.contains(c),
        Value::Sequence(items) => items.iter().any(|v| contains_char(v, c)),
        Value::Mapping(mapping) => mapping
            .iter()
            .any(|(k, v)| contains_char(k, c) || contains_char(v, c)),
        Value::Tagged(tagged) => {
            tagged.tag.to_string().contains(c) || contains_char(&tagged.value, c)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        emit(&[value], &[]).unwrap()
    }

    #[test]
    fn yaml11_booleans_and_separated_numbers_keep_their_quotes() {
        let text = "a: 'yes'\nb: 'on'\nc: 'N'\nd: '1_000'\ne: '-1_0.5'\n'off': x\n";
        assert_eq!(round_trip(text), text);
    }

    #[test]
    fn prefixed_numbers_with_separators_keep_their_quotes() {
        // kubectl's YAML reader drops every `_` of a plain scalar that
        // starts with a digit or a sign and reads the rest as Go reads a
        // number, prefixes included.
        let text = "a: '0x_1F'\nb: '0b1_0'\nc: '0o1_7'\nd: '-0x_a'\ne: '1_0e3'\nf: '1_'\ng: '0B11'\nh: '0X1f'\n";
        assert_eq!(round_trip(text), text);
    }

    #[test]
    fn other_strings_are_written_as_serde_yaml_ng_writes_them() {
        let text = "a: yesterday\nb: '10'\nc: _1\nd: 1.2.3_4\ne: |\n  yes\n  no\n";
        assert_eq!(round_trip(text), text);
    }

    #[test]
    fn a_marker_already_in_the_text_is_never_used() {
        let text = "a: \u{E000}\nb: 'yes'\nc: \u{E001}x\n";
        assert_eq!(round_trip(text), text);
    }
}
