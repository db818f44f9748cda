//! The text each document was written as, so a document inject leaves
//! unchanged is written back byte for byte, comments and all, as
//! `linkerd inject` writes back what it does not inject.
//!
//! The text is cut where kubectl's reader cuts it: at each line that
//! starts with `---` followed by nothing but spaces or a comment. A piece
//! stands for a document only when it reads, alone, as exactly that one
//! document; at the first piece that does not (two documents in one
//! piece, a directive, a document that starts on its `---` line), every
//! later document is written anew instead.

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::yaml11::PlainScalars;

/// The text of one document, and the document as read from it.
#[derive(Debug)]
pub(super) struct Piece<'t> {
    pub(super) text: &'t str,
    pub(super) read: Value,
}

/// The piece of text of each document, in order. `None` for a document
/// with no piece of its own.
pub(super) fn pieces<'t>(text: &'t str, documents: &[&Value]) -> Vec<Option<Piece<'t>>> {
    let mut pieces: Vec<Option<Piece<'t>>> = documents.iter().map(|_| None).collect();
    let mut next = 0;
    for piece in split(text) {
        let Some(read) = read_alone(piece) else {
            break;
        };
        let Some(read) = read else { continue };
        match documents.get(next) {
            Some(document) if **document == read => {
                pieces[next] = Some(Piece { text: piece, read });
                next += 1;
            }
            _ => break,
        }
    }
    pieces
}

/// The one document of `piece`, read as inject reads documents: `Some(None)`
/// when it holds none (comments, blank lines), `None` when it cannot stand
/// for one document.
fn read_alone(piece: &str) -> Option<Option<Value>> {
    let mut documents = read_all(piece)?;
    match documents.len() {
        0 | 1 => Some(documents.pop()),
        _ => None,
    }
}

/// The documents of `text` that are not empty, read as inject reads them:
/// plain scalars as YAML 1.1 reads them, merge keys merged. `None` when
/// the text is not YAML.
pub(super) fn read_all(text: &str) -> Option<Vec<Value>> {
    let mut plain = PlainScalars::new(text);
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut value = Value::deserialize(document).ok()?;
        if value.is_null() {
            continue;
        }
        plain.resolve(index + 1, &mut value);
        mesh_core::resource::apply_merge_keys(&mut value).ok()?;
        documents.push(value);
    }
    Some(documents)
}

/// `text` cut at kubectl's document separators, without them.
fn split(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let end = at + line.len();
        if let Some(rest) = line.strip_prefix("---") {
            let rest = rest.trim();
            if rest.is_empty() || rest.starts_with('#') {
                pieces.push(&text[start..at]);
                start = end;
            }
        }
        at = end;
    }
    pieces.push(&text[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'t>(text: &'t str, documents: &[Value]) -> Vec<Option<&'t str>> {
        let refs: Vec<&Value> = documents.iter().collect();
        pieces(text, &refs)
            .into_iter()
            .map(|piece| piece.map(|piece| piece.text))
            .collect()
    }

    fn values(text: &str) -> Vec<Value> {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|d| Value::deserialize(d).unwrap())
            .filter(|v| !v.is_null())
            .collect()
    }

    #[test]
    fn each_document_has_its_piece_with_its_comments() {
        let text = "# head\n--- # one\na: 1 # one\n---\n\n---\nb: 'x'\n...\n";
        assert_eq!(
            texts(text, &values(text)),
            [Some("a: 1 # one\n"), Some("b: 'x'\n...\n")]
        );
    }

    #[test]
    fn a_piece_that_is_not_one_document_ends_the_pieces() {
        let text = "a: 1\n--- {b: 2}\n---\nc: 3\n";
        assert_eq!(texts(text, &values(text)), [None, None, None]);

        let text = "a: 1\n---\nb: 2\n--- !!map\nc: 3\n---\nd: 4\n";
        assert_eq!(
            texts(text, &values(text)),
            [Some("a: 1\n"), None, None, None]
        );
    }

    #[test]
    fn a_separator_needs_the_start_of_a_line() {
        assert_eq!(split("a: |\n  ---\nb: 1\n"), ["a: |\n  ---\nb: 1\n"]);
        assert_eq!(split("a: 1\n---x\n"), ["a: 1\n---x\n"]);
        assert_eq!(split("a: 1\n--- \r\nb: 2"), ["a: 1\n", "b: 2"]);
    }
}
