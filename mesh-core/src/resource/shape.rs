//! Refusing a YAML text whose shape would make the parser slow, before it
//! is parsed.
//!
//! The YAML parser (libyaml's scanner, ported to Rust) keeps a record for
//! every open flow collection (`[`, `{`) and looks at all of them for
//! every token it reads. Nesting flow collections `n` deep therefore costs
//! time in proportion to `n` for each of the text's tokens: measured on
//! a release build, 64,000 nested `{a: ` take 47 s to parse once, 16,000
//! take 2 s, and the loader parses every text three times. Block
//! collections (`- - - x`, or indentation) cost nothing of the sort: the
//! same 64,000 levels of `- ` parse in 40 ms, and block nesting by
//! indentation is bounded by the text's size (its indentation grows with
//! the square of its depth). So the check bounds the size, the flow
//! nesting's depth, and the work it makes: a text can stay within the
//! depth and still nest every token a hundred levels deep.
//!
//! The flow nesting is found by a pre-scan that reads the text once and
//! follows the scanner's own rules for where a token starts, so that a
//! `[` inside a quoted scalar, a block scalar (`|`, `>`), a comment, a tag
//! or the middle of a plain scalar (`title: a [draft]`) is not counted, as
//! the parser does not count it. Wherever the parser would stop with a
//! syntax error, the pre-scan carries on: it may then refuse a text the
//! parser would have refused anyway, but it never counts fewer open
//! collections than the parser holds.

use self::scan::{Exceeded, Scan};
use super::error::{Location, ResourceError, ResourceErrorKind};

mod scan;

/// The largest resource text the loader reads: 16 MiB.
///
/// Kubernetes stores no object larger than about 1.5 MiB (etcd's request
/// limit), and a `ConfigMap`, which is how policy files usually reach a
/// pod, holds at most 1 MiB. Sixteen times that leaves room for a file
/// that gathers many resources (the output of `kubectl get -o yaml` for
/// a whole cluster's policy). The parser's time and memory grow with the
/// size: measured on a release build, it reads 12 MB of block YAML in
/// 1.2 s and 16 MiB of JSON in 3 s, once, and the loader reads a text
/// three times (the count of what its aliases stand for, then the
/// envelopes and the bodies).
pub const MAX_TEXT_LEN: usize = 16 << 20;

/// The deepest nesting of flow collections (`[`, `{`) the loader reads:
/// 128 levels.
///
/// Kubernetes resources nest a handful of levels, and the deserializer
/// refuses data nested more than 128 levels deep (block and flow levels
/// together) when it reads a resource anyway. At this depth the parser's
/// cost per token stays a small constant.
pub const MAX_FLOW_DEPTH: usize = 128;

/// The most work the flow nesting may cost the parser: 2^27 tokens in
/// flow collections, each counted once for every level it is nested in.
///
/// Within the depth limit, the parser's cost still grows with the tokens
/// times their depth: 16 MiB of collections nested 100 deep take it 8 s
/// to read once. Measured on a release build, it spends about 8 ns per
/// token and level, so this bounds the nesting's share to about a
/// second per parse, less than the parser takes over 16 MiB of plain
/// JSON (3 s). A JSON document of that size, which nests everything in
/// flow collections, counts about 40 million (six levels on average).
pub const MAX_FLOW_WORK: u64 = 1 << 27;

/// Checks that `text` is no larger than [`MAX_TEXT_LEN`], nests flow
/// collections no deeper than [`MAX_FLOW_DEPTH`] and holds no more than
/// [`MAX_FLOW_WORK`] in them, in one pass over it, without parsing it. Call it before handing a text that comes from
/// outside the process to a YAML parser; [`Documents`](super::Documents)
/// and [`load`](fn@super::load) call it themselves.
///
/// # Errors
///
/// A [`ResourceError`] of kind
/// [`LimitExceeded`](ResourceErrorKind::LimitExceeded) naming `origin`,
/// the limit, and the position: the first byte past the size limit, the
/// bracket that opens one level too many, or the token that goes over
/// the work limit.
pub fn check_yaml_shape(origin: &str, text: &str) -> Result<(), ResourceError> {
    if text.len() > MAX_TEXT_LEN {
        let message = format!(
            "text of {} bytes is larger than the limit of {MAX_TEXT_LEN} bytes (16 MiB)",
            text.len()
        );
        return Err(
            ResourceError::new(ResourceErrorKind::LimitExceeded, origin, message)
                .at(Some(position_of(text, MAX_TEXT_LEN))),
        );
    }
    let (message, at) = match Scan::new(text).run() {
        Ok(()) => return Ok(()),
        Err(Exceeded::Depth(at)) => (
            format!("flow collections nest deeper than {MAX_FLOW_DEPTH} levels"),
            at,
        ),
        Err(Exceeded::Work(at)) => (
            format!(
                "flow collections hold more than {MAX_FLOW_WORK} tokens, each counted once \
                 per level it is nested in"
            ),
            at,
        ),
    };
    Err(ResourceError::new(ResourceErrorKind::LimitExceeded, origin, message).at(Some(at)))
}

/// The line and column of byte `index`, or of the character it falls in.
fn position_of(text: &str, index: usize) -> Location {
    let mut start = index.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text.as_bytes()[..start];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = text[line_start..start].chars().count();
    Location {
        line: before.iter().filter(|&&b| b == b'\n').count() + 1,
        column: column + 1,
        index: start,
    }
}

#[cfg(test)]
mod tests;
