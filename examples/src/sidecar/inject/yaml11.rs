//! Plain scalars as kubectl reads them: YAML 1.1, not 1.2.
//!
//! kubectl, and `linkerd inject`, read manifests with go-yaml v2, which
//! follows YAML 1.1: the plain (unquoted) scalars `0644`, `1_000` and `yes`
//! are the integer 420, the integer 1000 and the boolean true. serde_yaml_ng
//! follows YAML 1.2 and reads all three as strings. Read that way,
//! `defaultMode: 0644`, which every other tool applies as mode 0644, would
//! be written back as the string `'0644'`, which the API server refuses. So
//! a plain scalar that YAML 1.1 reads as a boolean or a number is read here
//! as that boolean or number, and the output holds the value kubectl would
//! have sent (`defaultMode: 420`, as `linkerd inject` writes it). A quoted
//! scalar stays a string, and so does one tagged `!!str` (`!!str 0644`),
//! as go-yaml v2 reads it; [`emit`](super::emit) writes either quoted.
//!
//! serde_yaml_ng does not tell a plain scalar from a quoted one, but it
//! hands out each scalar as a slice of the text when it can: a quoted
//! scalar's slice starts just after its quote, a plain scalar's at its
//! first character. The document is walked alongside the value read from
//! it, and a string is resolved again only when its slice is not preceded
//! by a quote.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml_ng::Value;

/// The value go-yaml v2 reads the plain scalar `text` as, when that is not
/// a string; `None` when it is a string (or when it is a null, or any other
/// value YAML 1.2 reads the same way).
pub(super) fn plain_scalar(text: &str) -> Option<Value> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Some(Value::Bool(true)),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Some(Value::Bool(false));
        }
        _ => {}
    }
    // go-yaml v2 tries a number only for a scalar that starts with a digit
    // or a sign; it drops every `_` first, then reads what is left as Go's
    // `ParseInt(s, 0, 64)`, `ParseUint(s, 0, 64)` and, for what looks like
    // a decimal float, `ParseFloat`.
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
        return None;
    }
    let plain = text.replace('_', "");
    // Go's ParseFloat fails on a number past f64 (`1e400`), where Rust's
    // gives an infinity: such a scalar stays a string.
    go_int(&plain).or_else(|| {
        is_decimal_float(&plain)
            .then(|| plain.parse::<f64>().ok())
            .flatten()
            .filter(|float| float.is_finite())
            .map(Value::from)
    })
}

/// Go's `ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: an optional sign
/// (`ParseUint` takes none), then `0x`, `0o`, `0b` (either case) or a bare
/// leading `0` for octal, else decimal.
fn go_int(s: &str) -> Option<Value> {
    let (negative, signed, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, true, &s[1..]),
        Some(b'+') => (false, true, &s[1..]),
        _ => (false, false, s),
    };
    let lower = unsigned.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &unsigned[2..]),
        Some("0o") => (8, &unsigned[2..]),
        Some("0b") => (2, &unsigned[2..]),
        _ if unsigned.len() > 1 && unsigned.starts_with('0') => (8, &unsigned[1..]),
        _ => (10, unsigned),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let value = 0i64.checked_sub_unsigned(magnitude)?;
        Some(Value::from(value))
    } else if let Ok(value) = i64::try_from(magnitude) {
        Some(Value::from(value))
    } else if !signed {
        Some(Value::from(magnitude))
    } else {
        None
    }
}

/// go-yaml v2's float pattern:
/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_decimal_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => !fraction.is_empty() && digits(fraction),
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Resolves again, as YAML 1.1, the plain scalars of each document of one
/// text that serde_yaml_ng read as strings.
pub(super) struct PlainScalars<'t> {
    text: &'t str,
    documents: serde_yaml_ng::Deserializer<'t>,
    /// How many documents `documents` has handed out.
    read: usize,
}

impl<'t> PlainScalars<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        Self {
            text,
            documents: serde_yaml_ng::Deserializer::from_str(text),
            read: 0,
        }
    }

    /// Resolves the plain scalars of `value`, document `index` (from 1) of
    /// the text, read from it by serde_yaml_ng. Documents are taken in
    /// order. A document the walk cannot follow is left as it was read.
    pub(super) fn resolve(&mut self, index: usize, value: &mut Value) {
        let skip = index.saturating_sub(self.read + 1);
        let Some(document) = self.documents.nth(skip) else {
            return;
        };
        self.read = index;
        let walk = Walk {
            text: self.text,
            value,
        };
        // The document was read once already: it cannot fail to parse.
        let _ = walk.deserialize(document);
    }
}

/// Walks a document and the value read from it together.
struct Walk<'v, 't> {
    text: &'t str,
    value: &'v mut Value,
}

impl Walk<'_, '_> {
    /// Whether `scalar`, a slice of the text, is written without quotes
    /// and without a tag.
    fn is_plain(&self, scalar: &str) -> bool {
        let start = self.text.as_ptr().addr();
        let Some(offset) = scalar.as_ptr().addr().checked_sub(start) else {
            return false;
        };
        offset + scalar.len() <= self.text.len()
            && (offset == 0 || !matches!(self.text.as_bytes()[offset - 1], b'\'' | b'"'))
            && !self.text.get(..offset).is_some_and(is_tagged)
    }
}

/// Whether the node written right after `before` has a tag. go-yaml v2
/// reads any scalar tagged `!!str` as a string (`!!str 0644`, `!!str
/// yes`), and one with a tag of its own as it is written; serde_yaml_ng
/// has taken the standard tags already, and hands out `!!str 0644` as it
/// hands out a plain `0644`.
///
/// A node's properties, its tag (`!!str`, `!<tag:yaml.org,2002:str>`) and
/// its anchor (`&name`) in either order, come before it, separated from it
/// and each other by spaces, line breaks or comments; in a flow collection
/// the first may follow the bracket or comma without a space.
fn is_tagged(before: &str) -> bool {
    let mut before = before;
    loop {
        let rest = before.trim_end_matches([' ', '\t', '\r', '\n']);
        let start = rest.rfind([' ', '\t', '\r', '\n']).map_or(0, |at| at + 1);
        let line = rest[..start].rfind('\n').map_or(0, |at| at + 1);
        if let Some(comment) = comment_start(&rest[line..start]) {
            // The word is a comment's: the properties are before it.
            before = &rest[..line + comment];
            continue;
        }
        let token = &rest[start..];
        // A verbatim tag may hold any URI character, flow indicators too;
        // other properties hold none, and follow one when they open a
        // flow collection's item.
        let property = match token.rfind("!<") {
            Some(at) if token.ends_with('>') => &token[at..],
            _ => token.rsplit(['[', '{', ',']).next().unwrap_or(token),
        };
        if property.starts_with('!') {
            return true;
        }
        if !property.starts_with('&') || property.len() < token.len() {
            return false;
        }
        before = &rest[..start];
    }
}

/// Where a comment starts in `line`, the text of one line before a word:
/// at a `#` that starts the line or follows a space. `None` when there is
/// none, or when a quote comes first and the `#` may be a quoted
/// scalar's.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let hash = (0..bytes.len())
        .find(|&at| bytes[at] == b'#' && (at == 0 || matches!(bytes[at - 1], b' ' | b'\t')))?;
    (!line[..hash].contains(['\'', '"'])).then_some(hash)
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_borrowed_str<E: de::Error>(self, scalar: &'de str) -> Result<(), E> {
        if matches!(&*self.value, Value::String(read) if read == scalar)
            && self.is_plain(scalar)
            && let Some(resolved) = plain_scalar(scalar)
        {
            *self.value = resolved;
        }
        Ok(())
    }

    // A scalar that is not a slice of the text has escapes or folded
    // lines: it was quoted, or is no number or boolean.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Value::Sequence(items) = self.value {
            for value in items {
                let walk = Walk {
                    text: self.text,
                    value,
                };
                if seq.next_element_seed(walk)?.is_none() {
                    return Ok(());
                }
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // serde_yaml_ng's mapping keeps its keys in the order written.
        let mut values = match self.value {
            Value::Mapping(mapping) => Some(mapping.values_mut()),
            _ => None,
        };
        while map.next_key::<IgnoredAny>()?.is_some() {
            match values.as_mut().and_then(Iterator::next) {
                Some(value) => map.next_value_seed(Walk {
                    text: self.text,
                    value,
                })?,
                None => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(())
    }

    // A tagged value keeps what serde_yaml_ng read.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<IgnoredAny>().map(drop)
    }
}

#[cfg(test)]
mod tests;
