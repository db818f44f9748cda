//! The pre-scan: the YAML scanner's rules for where tokens start, kept
//! only as far as the flow nesting depends on them.
//!
//! It follows libyaml's scanner (`yaml_parser_fetch_next_token` and the
//! functions it calls) decision for decision: which character starts
//! which token, where plain, quoted and block scalars end, and the block
//! indentation that decides where a plain or block scalar goes on.
//! Checked against the scanner of unsafe-libyaml 0.2.11 (made to report
//! the deepest flow level it opened) on two million random texts built
//! from YAML's indicators, quotes, escapes, tags, line breaks and
//! indentation, it never counted fewer levels than the scanner opened,
//! nor more on a text the scanner read to its end.

use super::{MAX_FLOW_DEPTH, MAX_FLOW_WORK};
use crate::resource::error::Location;

mod scalars;

/// Which flow limit a text goes over, and where.
pub(super) enum Exceeded {
    Depth(Location),
    Work(Location),
}

/// A simple key the scanner may still find a `:` for, in block context.
#[derive(Clone, Copy)]
struct Key {
    line: usize,
    chars: usize,
    column: usize,
}

/// The scanner's state, as far as the flow nesting depends on it.
pub(super) struct Scan<'t> {
    text: &'t [u8],
    /// Byte offset.
    at: usize,
    /// From 0, as the scanner counts them.
    line: usize,
    /// From 0, in characters.
    column: usize,
    /// Characters read.
    chars: usize,
    flow: usize,
    /// The column of the innermost block collection; -1 outside any.
    indent: isize,
    indents: Vec<isize>,
    simple_key_allowed: bool,
    key: Option<Key>,
    /// Tokens read so far, each counted once per open flow collection.
    work: u64,
}

impl<'t> Scan<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        // The reader drops a byte order mark that starts the stream
        // before the scanner counts any column.
        let bom = "\u{feff}";
        Self {
            text: text.as_bytes(),
            at: if text.starts_with(bom) { bom.len() } else { 0 },
            line: 0,
            column: 0,
            chars: 0,
            flow: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: true,
            key: None,
            work: 0,
        }
    }

    /// Reads every token; `Err` at the bracket that opens one level too
    /// many, or at the token that goes over the work limit.
    pub(super) fn run(mut self) -> Result<(), Exceeded> {
        loop {
            self.skip_to_next_token();
            if self
                .key
                .is_some_and(|k| k.line < self.line || k.chars + 1024 < self.chars)
            {
                self.key = None;
            }
            self.unroll(self.column_signed());
            let Some(c) = self.peek(0) else {
                return Ok(());
            };
            self.work += self.flow as u64;
            if self.work > MAX_FLOW_WORK {
                return Err(Exceeded::Work(self.location()));
            }
            if self.column == 0 && (c == b'%' || self.document_indicator()) {
                self.unroll(-1);
                self.key = None;
                self.simple_key_allowed = false;
                if c == b'%' {
                    self.skip_to_break();
                } else {
                    self.advance_n(3);
                }
                continue;
            }
            let next_blankz = self.blankz(1);
            match c {
                b'[' | b'{' => {
                    self.save_key();
                    if self.flow == MAX_FLOW_DEPTH {
                        return Err(Exceeded::Depth(self.location()));
                    }
                    self.flow += 1;
                    self.simple_key_allowed = true;
                    self.advance();
                }
                b']' | b'}' => {
                    self.remove_key();
                    self.flow = self.flow.saturating_sub(1);
                    self.simple_key_allowed = false;
                    self.advance();
                }
                b',' => {
                    self.remove_key();
                    self.simple_key_allowed = true;
                    self.advance();
                }
                b'-' if next_blankz => {
                    self.roll(self.column_signed());
                    self.remove_key();
                    self.simple_key_allowed = true;
                    self.advance();
                }
                b'?' if self.flow > 0 || next_blankz => {
                    self.roll(self.column_signed());
                    self.remove_key();
                    self.simple_key_allowed = self.flow == 0;
                    self.advance();
                }
                b':' if self.flow > 0 || next_blankz => {
                    self.value();
                    self.advance();
                }
                b'*' | b'&' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.advance();
                    while self
                        .peek(0)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        self.advance();
                    }
                }
                b'!' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    // A tag runs to a blank (or a `,` in a flow
                    // collection), after its `<...>` if it has one; where
                    // the scanner ends one sooner, it stops with an error.
                    if self.peek(1) == Some(b'<') {
                        self.advance_n(2);
                        while !self.blankz(0) && self.peek(0) != Some(b'>') {
                            self.advance();
                        }
                    }
                    while !(self.blankz(0) || (self.flow > 0 && self.peek(0) == Some(b','))) {
                        self.advance();
                    }
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.remove_key();
                    self.simple_key_allowed = true;
                    self.block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.quoted(c == b'\'');
                }
                _ if self.plain_starts(c) => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.plain();
                }
                // No token starts here: the parser stops.
                _ => self.advance(),
            }
        }
    }

    fn location(&self) -> Location {
        Location {
            line: self.line + 1,
            column: self.column + 1,
            index: self.at,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.at + ahead).copied()
    }

    fn column_signed(&self) -> isize {
        isize::try_from(self.column).unwrap_or(isize::MAX)
    }

    /// The length of the line break at `at + ahead`, if there is one:
    /// `\r\n`, `\r`, `\n`, NEL, LS or PS, as the scanner reads them.
    fn break_len(&self, ahead: usize) -> Option<usize> {
        match (self.peek(ahead), self.peek(ahead + 1), self.peek(ahead + 2)) {
            (Some(b'\r'), Some(b'\n'), _) => Some(2),
            (Some(b'\r' | b'\n'), ..) => Some(1),
            (Some(0xC2), Some(0x85), _) => Some(2),
            (Some(0xE2), Some(0x80), Some(0xA8 | 0xA9)) => Some(3),
            _ => None,
        }
    }

    fn is_break(&self, ahead: usize) -> bool {
        self.break_len(ahead).is_some()
    }

    fn blank(&self, ahead: usize) -> bool {
        matches!(self.peek(ahead), Some(b' ' | b'\t'))
    }

    /// A blank, a line break, or the end (a NUL ends the scanner's input).
    fn blankz(&self, ahead: usize) -> bool {
        matches!(self.peek(ahead), None | Some(b' ' | b'\t' | b'\0')) || self.is_break(ahead)
    }

    fn document_indicator(&self) -> bool {
        let marker = |b| (0..3).all(|i| self.peek(i) == Some(b));
        (marker(b'-') || marker(b'.')) && self.blankz(3)
    }

    /// Moves past one character, or one line break.
    fn advance(&mut self) {
        if let Some(len) = self.break_len(0) {
            // `\r\n` counts as two characters, NEL, LS and PS as one.
            self.chars += if self.peek(0) == Some(b'\r') { len } else { 1 };
            self.at += len;
            self.line += 1;
            self.column = 0;
            return;
        }
        let Some(lead) = self.peek(0) else { return };
        self.at += match lead {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        self.column += 1;
        self.chars += 1;
    }

    fn advance_n(&mut self, n: usize) {
        for _ in 0..n {
            self.advance();
        }
    }

    fn skip_to_break(&mut self) {
        while self.peek(0).is_some() && !self.is_break(0) {
            self.advance();
        }
    }

    /// Blanks, comments and line breaks up to the next token.
    fn skip_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.text[self.at..].starts_with("\u{feff}".as_bytes()) {
                self.advance();
            }
            while self.blank(0) {
                self.advance();
            }
            if self.peek(0) == Some(b'#') {
                self.skip_to_break();
            }
            if !self.is_break(0) {
                return;
            }
            self.advance();
            if self.flow == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    /// Keys are tracked in block context only: in a flow collection they
    /// move no indentation.
    fn save_key(&mut self) {
        if self.simple_key_allowed && self.flow == 0 {
            self.key = Some(Key {
                line: self.line,
                chars: self.chars,
                column: self.column,
            });
        }
    }

    fn remove_key(&mut self) {
        if self.flow == 0 {
            self.key = None;
        }
    }

    fn roll(&mut self, column: isize) {
        if self.flow == 0 && self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
        }
    }

    fn unroll(&mut self, column: isize) {
        if self.flow == 0 {
            while self.indent > column {
                self.indent = self.indents.pop().unwrap_or(-1);
            }
        }
    }

    /// A `:` value indicator.
    fn value(&mut self) {
        if self.flow > 0 {
            self.simple_key_allowed = false;
        } else if let Some(key) = self.key.take() {
            self.roll(isize::try_from(key.column).unwrap_or(isize::MAX));
            self.simple_key_allowed = false;
        } else {
            self.roll(self.column_signed());
            self.simple_key_allowed = true;
        }
    }
}
