//! Where the scanner's scalars end: plain, quoted and block scalars.

use super::Scan;

impl Scan<'_> {
    pub(super) fn plain_starts(&self, c: u8) -> bool {
        let indicator = b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !(self.blankz(0) || indicator)
            || (c == b'-' && !self.blank(1))
            || (self.flow == 0 && (c == b'?' || c == b':') && !self.blankz(1))
    }

    /// A plain scalar, which may go on over more lines.
    pub(super) fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if (self.column == 0 && self.document_indicator()) || self.peek(0) == Some(b'#') {
                break;
            }
            while !self.blankz(0) {
                let c = self.peek(0);
                if self.flow > 0
                    && c == Some(b':')
                    && matches!(self.peek(1), Some(b',' | b'?' | b'[' | b']' | b'{' | b'}'))
                {
                    // The scanner stops here with an error.
                    break;
                }
                let flow_indicator = matches!(c, Some(b',' | b'[' | b']' | b'{' | b'}'));
                if (c == Some(b':') && self.blankz(1)) || (self.flow > 0 && flow_indicator) {
                    break;
                }
                self.advance();
            }
            if !(self.blank(0) || self.is_break(0)) {
                break;
            }
            while self.blank(0) || self.is_break(0) {
                leading_blanks |= self.is_break(0);
                self.advance();
            }
            if self.flow == 0 && self.column_signed() < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    /// A single- or double-quoted scalar.
    pub(super) fn quoted(&mut self, single: bool) {
        self.advance();
        loop {
            if self.column == 0 && self.document_indicator() {
                // The scanner stops here with an error.
                return;
            }
            match self.peek(0) {
                None => return,
                Some(b'\'') if single => {
                    if self.peek(1) == Some(b'\'') {
                        self.advance_n(2);
                    } else {
                        self.advance();
                        return;
                    }
                }
                Some(b'"') if !single => {
                    self.advance();
                    return;
                }
                Some(b'\\') if !single => self.advance_n(2),
                Some(_) => self.advance(),
            }
        }
    }

    /// A literal (`|`) or folded (`>`) block scalar: its header, then every
    /// line indented at least as far as its first.
    pub(super) fn block_scalar(&mut self) {
        self.advance();
        let mut increment = 0;
        for _ in 0..2 {
            match self.peek(0) {
                Some(b'+' | b'-') => self.advance(),
                Some(d @ b'1'..=b'9') if increment == 0 => {
                    increment = isize::from(d - b'0');
                    self.advance();
                }
                _ => {}
            }
        }
        while self.blank(0) {
            self.advance();
        }
        if self.peek(0) == Some(b'#') {
            self.skip_to_break();
        }
        if self.peek(0).is_some() && !self.is_break(0) {
            // The scanner stops here with an error.
            return;
        }
        if self.is_break(0) {
            self.advance();
        }
        let mut indent = match increment {
            0 => 0,
            n if self.indent >= 0 => self.indent + n,
            n => n,
        };
        if !self.block_scalar_breaks(&mut indent) {
            return;
        }
        while self.column_signed() == indent && self.peek(0).is_some() {
            self.skip_to_break();
            if self.peek(0).is_none() {
                return;
            }
            self.advance();
            if !self.block_scalar_breaks(&mut indent) {
                return;
            }
        }
    }

    /// The indentation and empty lines before a block scalar's next line;
    /// sets `indent` from them if it is not known yet. `false` where the
    /// scanner stops with an error.
    fn block_scalar_breaks(&mut self, indent: &mut isize) -> bool {
        let mut max = 0;
        loop {
            while (*indent == 0 || self.column_signed() < *indent) && self.peek(0) == Some(b' ') {
                self.advance();
            }
            max = max.max(self.column_signed());
            if (*indent == 0 || self.column_signed() < *indent) && self.peek(0) == Some(b'\t') {
                return false;
            }
            if !self.is_break(0) {
                break;
            }
            self.advance();
        }
        if *indent == 0 {
            *indent = max.max(self.indent + 1).max(1);
        }
        true
    }
}
