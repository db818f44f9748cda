//! Text a peer chose, written where a person reads it.
//!
//! Paths, authorities and label values come from requests and from
//! scrapes of admin servers that may be broken or not ours. Written to a
//! terminal as they are, an escape sequence in one would act (clear the
//! screen, set the window title, rewrite lines above), a newline would
//! forge a line of its own, and a bidirectional override would show the
//! rest of a table's row reversed. [`Printable`] writes such characters as
//! `\u{1b}`, so the text still says what it was.
//!
//! JSON lines are read there too (`tail` of an access log, a view's
//! `-o json`, a tap event), and JSON escapes only C0: DEL and C1 pass as
//! they are, and some terminals read U+009B as CSI.
//! [`escape_json_controls`] writes those as `\u009b`, which every JSON
//! reader takes back as the same text.
//!
//! Every such place escapes by one rule, [`is_unprintable`], each in its
//! own notation (the Apache access log's is `\xhh` per byte).

use std::fmt::{self, Write as _};

/// Whether `c` is written escaped where a person reads it: the controls
/// of C0, DEL and C1, and the invisible characters that change how the
/// text around them reads: bidirectional embeddings, overrides, isolates
/// and marks, which can reorder a table's columns on screen (the "Trojan
/// Source" characters of CVE-2021-42574), zero-width characters, which
/// make two different names look alike, and the line and paragraph
/// separators U+2028 and U+2029, at which readers that split text on
/// Unicode line breaks (Python's `str.splitlines`, many log shippers) cut
/// one access-log or JSON line in two.
pub(crate) fn is_unprintable(c: char) -> bool {
    c.is_control() || is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The invisible characters of [`is_unprintable`]: the Arabic letter mark;
/// the zero-width space, non-joiner and joiner and the left-to-right and
/// right-to-left marks; the embeddings and overrides; the word joiner,
/// the invisible operators and the isolates; and the zero-width no-break
/// space.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Escapes, in the JSON text `json[from..]` as serde_json writes it, the
/// [unprintable](is_unprintable) characters it leaves as they are in its
/// strings (all but C0, which it escapes itself), as `\uhhhh`. Characters
/// outside strings (the blanks and newlines of pretty JSON) stay, and so
/// does text that is not UTF-8.
pub(crate) fn escape_json_controls(json: &mut Vec<u8>, from: usize) {
    // What is left to escape is DEL and C1, which UTF-8 writes as 0x7f
    // and as 0xc2 then 0x80..=0x9f, and the invisible characters, which
    // start with 0xd8 (U+061C), 0xe2 (U+200B to U+2069, the line and
    // paragraph separators among them) or 0xef (U+FEFF):
    // text without any of those bytes, most of it, is not read as
    // characters at all.
    let Some(tail) = json.get(from..) else {
        return;
    };
    if !tail
        .iter()
        .any(|b| matches!(b, 0x7f | 0xc2 | 0xd8 | 0xe2 | 0xef))
    {
        return;
    }
    let Ok(text) = std::str::from_utf8(tail) else {
        return;
    };
    let mut escaped = String::with_capacity(text.len() + 16);
    let (mut in_string, mut after_backslash) = (false, false);
    for c in text.chars() {
        if in_string {
            if after_backslash {
                after_backslash = false;
            } else if c == '\\' {
                after_backslash = true;
            } else if c == '"' {
                in_string = false;
            } else if is_unprintable(c) {
                // Writing to a `String` cannot fail.
                let _ = write!(escaped, "\\u{:04x}", u32::from(c));
                continue;
            }
        } else if c == '"' {
            in_string = true;
        }
        escaped.push(c);
    }
    json.truncate(from);
    json.extend_from_slice(escaped.as_bytes());
}

/// [`escape_json_controls`] of a whole `String` of JSON.
pub(crate) fn escape_json_string(json: String) -> String {
    let mut bytes = json.into_bytes();
    escape_json_controls(&mut bytes, 0);
    // Escaping keeps UTF-8 UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

/// `text`, its control characters (and, for [`Printable::word`], its
/// blanks) written as `\u{..}` escapes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Printable<'a> {
    text: &'a str,
    blanks: bool,
}

impl<'a> Printable<'a> {
    /// Escapes the control characters of `text`: C0, DEL and C1 (which
    /// some terminals read as CSI and OSC too).
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            blanks: false,
        }
    }

    /// Escapes the blanks too, for a value on a line of `key=value` words,
    /// where a space would start a word of the peer's choosing.
    pub(crate) fn word(text: &'a str) -> Self {
        Self { text, blanks: true }
    }

    fn escapes(&self, c: char) -> bool {
        is_unprintable(c) || (self.blanks && c.is_whitespace())
    }

    /// Whether the text is written as it is.
    pub(crate) fn is_plain(&self) -> bool {
        !self.text.contains(|c| self.escapes(c))
    }
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_plain() {
            return f.write_str(self.text);
        }
        for c in self.text.chars() {
            if self.escapes(c) {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_for_words_blanks_are_escaped() {
        let text = "a\u{1b}[2J\u{9b}1m\u{7f}\n b\u{2028}é\u{2029}";
        assert_eq!(
            Printable::new(text).to_string(),
            "a\\u{1b}[2J\\u{9b}1m\\u{7f}\\u{a} b\\u{2028}é\\u{2029}"
        );
        assert_eq!(
            Printable::word(text).to_string(),
            r"a\u{1b}[2J\u{9b}1m\u{7f}\u{a}\u{20}b\u{2028}é\u{2029}"
        );
        // In JSON too: Python's `splitlines` breaks a line at either.
        let json = escape_json_string(serde_json::to_string(text).unwrap());
        assert_eq!(json, r#""a\u001b[2J\u009b1m\u007f\n b\u2028é\u2029""#);
        assert!(Printable::word("web:80").is_plain());
        assert_eq!(Printable::word("web:80").to_string(), "web:80");
    }

    #[test]
    fn characters_that_reorder_or_hide_text_are_escaped() {
        // A route named so that, in a table, its own cell reads reversed
        // and the columns after it move: a bidirectional override, an
        // isolate and a zero-width space.
        let name = "books\u{202e}002 ,%001\u{2066}x\u{200b}y\u{feff}";
        assert_eq!(
            Printable::new(name).to_string(),
            r"books\u{202e}002 ,%001\u{2066}x\u{200b}y\u{feff}"
        );
        let value = serde_json::json!({ "route": name });
        let json = escape_json_string(serde_json::to_string(&value).unwrap());
        assert_eq!(
            json,
            r#"{"route":"books\u202e002 ,%001\u2066x\u200by\ufeff"}"#
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            value
        );
        // Other text with the same leading bytes stays as it is.
        assert!(Printable::new("a — b… ‘c’ ﬁ").is_plain());
    }

    #[test]
    fn json_strings_escape_del_and_c1_and_pretty_blanks_stay() {
        let value = serde_json::json!({"a\u{9b}": ["x\u{1b}[2J\u{9b}1m\u{7f}\u{85}\\\"é\u{a0}"]});
        let mut json = "before\u{9b}".as_bytes().to_vec();
        let from = json.len();
        serde_json::to_writer(&mut json, &value).unwrap();
        escape_json_controls(&mut json, from);
        let line = String::from_utf8(json).unwrap();
        // What comes before `from` is not JSON to escape.
        assert_eq!(
            line,
            "before\u{9b}{\"a\\u009b\":[\"x\\u001b[2J\\u009b1m\\u007f\\u0085\\\\\\\"é\u{a0}\"]}"
        );
        let back: serde_json::Value = serde_json::from_str(&line[from..]).unwrap();
        assert_eq!(back, value);

        let pretty = escape_json_string(serde_json::to_string_pretty(&value).unwrap());
        assert_eq!(
            pretty,
            "{\n  \"a\\u009b\": [\n    \"x\\u001b[2J\\u009b1m\\u007f\\u0085\\\\\\\"é\u{a0}\"\n  ]\n}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&pretty).unwrap(),
            value
        );
        let plain = String::from("{\"a\": 1}");
        assert_eq!(escape_json_string(plain.clone()), plain);
    }
}
