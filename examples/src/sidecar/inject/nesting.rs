//! How deep a text's flow collections (`[...]`, `{...}`) nest, found
//! before the YAML parser sees the text.
//!
//! The parser inject reads with (libyaml) checks every pending simple key
//! of every open flow level at each token: a text nested `n` levels deep
//! costs `n` times its length to read. `[` repeated 100,000 times, 200 kB,
//! took minutes. serde_yaml_ng refuses a document nested deeper than 128
//! values anyway ("recursion limit exceeded"), but only after the parser
//! has read it all. So the text is scanned first, in one pass, and one
//! whose flow collections nest deeper than [`MAX_FLOW_DEPTH`] is refused
//! at the bracket that goes too deep; no document inject could read is.
//!
//! The scan tells flow brackets from the same characters in comments,
//! quoted scalars, block scalars (`|`, `>`) and plain scalars, as far as
//! one line at a time can: an error here is a text that is very likely
//! too deep, and the parser has the last word on every other.

use mesh_core::resource::{Location, ResourceError, ResourceErrorKind};

/// The deepest flow nesting read: serde_yaml_ng's recursion limit, which
/// counts every nested value, flow or block.
pub(super) const MAX_FLOW_DEPTH: usize = 128;

/// Where the scan is between lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Block context, outside any scalar.
    Block,
    /// Inside the content of a block scalar whose header was on a line
    /// indented this far: lines indented further (or blank) belong to it.
    BlockScalar(usize),
    /// Inside a quoted scalar that spans lines.
    Quoted(u8),
}

/// The error for a text that nests deeper than [`MAX_FLOW_DEPTH`], at the
/// bracket that opens the level too many.
pub(super) fn check(origin: &str, text: &str) -> Result<(), ResourceError> {
    let mut scan = Scan {
        state: State::Block,
        depth: 0,
    };
    let mut at = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        if let Err(column) = scan.line(line.as_bytes()) {
            let location = Location {
                line: number + 1,
                column: column + 1,
                index: at + column,
            };
            return Err(ResourceError::new(
                ResourceErrorKind::Syntax,
                origin,
                format!("flow collections nested deeper than {MAX_FLOW_DEPTH} levels"),
            )
            .at(Some(location)));
        }
        at += line.len();
    }
    Ok(())
}

struct Scan {
    state: State,
    depth: usize,
}

impl Scan {
    /// Scans one line; `Err` holds the byte column of a bracket too deep.
    fn line(&mut self, line: &[u8]) -> Result<(), usize> {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = line[indent..].iter().all(u8::is_ascii_whitespace);
        let mut i = 0;
        match self.state {
            State::BlockScalar(parent) if blank || indent > parent => return Ok(()),
            State::BlockScalar(_) => self.state = State::Block,
            State::Quoted(quote) => match close_quote(line, 0, quote) {
                Some(end) => {
                    self.state = State::Block;
                    i = end;
                }
                None => return Ok(()),
            },
            State::Block => {}
        }
        if self.depth == 0 && i == 0 {
            i = indent;
        }
        while i < line.len() {
            if self.depth == 0 {
                i = self.block(line, i, indent);
                if i >= line.len() {
                    break;
                }
            }
            i = self.flow(line, i)?;
        }
        Ok(())
    }

    /// Reads block context from the start of a node at `i`: the end of the
    /// line, or where a flow collection starts.
    fn block(&mut self, line: &[u8], mut i: usize, indent: usize) -> usize {
        // The column of the innermost collection a block scalar on this
        // line would belong to: its lines are those indented further.
        let mut parent = indent;
        let mut scalar = None;
        loop {
            while line.get(i).is_some_and(|&b| b == b' ' || b == b'\t') {
                i += 1;
            }
            let Some(&b) = line.get(i) else {
                return i;
            };
            let next_is_space = line.get(i + 1).is_none_or(u8::is_ascii_whitespace);
            match b {
                b'#' | b'\r' | b'\n' | b'%' => return line.len(),
                b'[' | b'{' => return i,
                b':' if next_is_space => {
                    parent = scalar.unwrap_or(parent);
                    i += 1;
                }
                b'-' | b'?' if next_is_space => {
                    parent = i;
                    i += 1;
                }
                b'-' if line[i..].starts_with(b"---") => i += 3,
                b'|' | b'>' => {
                    self.state = State::BlockScalar(parent);
                    return line.len();
                }
                b'"' | b'\'' => match close_quote(line, i + 1, b) {
                    Some(end) => {
                        scalar = Some(i);
                        i = end;
                    }
                    None => {
                        self.state = State::Quoted(b);
                        return line.len();
                    }
                },
                // An anchor, alias or tag, then the node.
                b'&' | b'*' | b'!' => {
                    while line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                        i += 1;
                    }
                }
                // A plain scalar: up to `: ` (it was a key) or ` #`.
                _ => {
                    scalar = Some(i);
                    loop {
                        i += 1;
                        match line.get(i) {
                            None => return i,
                            Some(b':') if line.get(i + 1).is_none_or(u8::is_ascii_whitespace) => {
                                break;
                            }
                            Some(b'#') if line[i - 1].is_ascii_whitespace() => return line.len(),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
    }

    /// Reads flow context from `i`: to the end of the line, or to where the
    /// outermost collection closes.
    fn flow(&mut self, line: &[u8], mut i: usize) -> Result<usize, usize> {
        while let Some(&b) = line.get(i) {
            let token_start = i == 0 || {
                let before = line[i - 1];
                before.is_ascii_whitespace() || matches!(before, b'[' | b'{' | b',' | b':')
            };
            match b {
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > MAX_FLOW_DEPTH {
                        return Err(i);
                    }
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Ok(i + 1);
                    }
                }
                b'#' if i == 0 || line[i - 1].is_ascii_whitespace() => return Ok(line.len()),
                b'"' | b'\'' if token_start => match close_quote(line, i + 1, b) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => {
                        self.state = State::Quoted(b);
                        return Ok(line.len());
                    }
                },
                _ => {}
            }
            i += 1;
        }
        Ok(i)
    }
}

/// Just past the quote that closes a scalar opened by `quote`, searching
/// `line` from `i`; `None` when it does not close on this line. In single
/// quotes `''` is a quote; in double quotes `\` escapes the next byte.
fn close_quote(line: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    while let Some(&b) = line.get(i) {
        if quote == b'"' && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote {
            if quote == b'\'' && line.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str) -> Option<(usize, usize)> {
        check("t", text)
            .err()
            .map(|e| (e.line().unwrap(), e.location().unwrap().column))
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn flow_nesting_up_to_the_limit_is_read_and_one_more_is_refused_there() {
        let limit = nested(MAX_FLOW_DEPTH);
        assert_eq!(depth_error(&format!("a: {limit}\n")), None);
        let over = nested(MAX_FLOW_DEPTH + 1);
        assert_eq!(depth_error(&format!("x: 1\na: {over}\n")), Some((2, 132)));
    }

    #[test]
    fn closed_collections_do_not_add_up() {
        let text = format!("{}\n", "a: [[1], {b: [2]}]\n".repeat(1000));
        assert_eq!(depth_error(&text), None);
        let one_line = format!("[{}]\n", "[1], ".repeat(10_000));
        assert_eq!(depth_error(&one_line), None);
    }

    #[test]
    fn brackets_in_scalars_and_comments_are_not_collections() {
        let many = "[".repeat(MAX_FLOW_DEPTH + 1);
        for text in [
            format!("a: '{many}'\n"),
            format!("a: \"{many}\"\n"),
            format!("a: x{many}\n"),
            format!("a: 1 # {many}\n"),
            format!("# {many}\n"),
            format!("a: |\n  {many}\n\n  {many}\nb: 1\n"),
            format!("- >-\n  {many}\n"),
            format!("a: [\"{many}\", '{many}', x] # {many}\n"),
            format!("a: \"two\n  lines {many}\"\nb: 'it''s {many}'\n"),
            format!("a: [\"\\\"{many}\"]\n"),
            format!("k: !!str &x {{a: '{many}'}}\n"),
        ] {
            assert_eq!(depth_error(&text), None, "{text}");
        }
    }

    #[test]
    fn a_block_scalar_ends_at_its_parents_indentation() {
        let over = nested(MAX_FLOW_DEPTH + 1);
        let text = format!("a: |\n  text\nb: {over}\n");
        assert_eq!(depth_error(&text), Some((3, 132)));
        // The scalar's parent is the mapping at column 2, not the line's
        // sequence at column 0: `b` is its sibling, not its text.
        let text = format!("- a: |\n      text\n  b: {over}\n");
        assert_eq!(depth_error(&text), Some((3, 134)));
        let text = format!("- - a: >\n        text\n    b: {over}\n");
        assert_eq!(depth_error(&text), Some((3, 136)));
        // Its own lines are skipped, however deep the parent.
        let many = "[".repeat(MAX_FLOW_DEPTH + 1);
        let text = format!("- a: |\n   {many}\n  b: 1\n");
        assert_eq!(depth_error(&text), None);
    }

    #[test]
    fn json_is_flow_from_its_first_brace() {
        let over = format!("{{\"a\": {}}}", nested(MAX_FLOW_DEPTH));
        assert_eq!(depth_error(&over), Some((1, 134)));
        let at_limit = format!("{{\"a\": {}}}", nested(MAX_FLOW_DEPTH - 1));
        assert_eq!(depth_error(&at_limit), None);
    }
}
