//! Text a peer chose, written where a person reads it.
//!
//! Paths, authorities and label values come from requests and from
//! scrapes of admin servers that may be broken or not ours. Written to a
//! terminal as they are, an escape sequence in one would act (clear the
//! screen, set the window title, rewrite lines above) and a newline would
//! forge a line of its own. [`Printable`] writes such characters as
//! `\u{1b}`, so the text still says what it was.

use std::fmt::{self, Write as _};

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
        c.is_control() || (self.blanks && c.is_whitespace())
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
        let text = "a\u{1b}[2J\u{9b}1m\u{7f}\n b\u{2028}é";
        assert_eq!(
            Printable::new(text).to_string(),
            "a\\u{1b}[2J\\u{9b}1m\\u{7f}\\u{a} b\u{2028}é"
        );
        assert_eq!(
            Printable::word(text).to_string(),
            r"a\u{1b}[2J\u{9b}1m\u{7f}\u{a}\u{20}b\u{2028}é"
        );
        assert!(Printable::word("web:80").is_plain());
        assert_eq!(Printable::word("web:80").to_string(), "web:80");
    }
}
