//! Strings read through a parse function, refused at the scalar itself.
//!
//! serde's `#[serde(try_from = "String")]` converts after the string has
//! been read, so the YAML parser no longer knows where it was: its error
//! carries the position of the enclosing mapping or sequence, which may be
//! lines above the bad value (the first entry of `hostnames`, the first
//! key of `timeouts`). Parsing inside the visitor instead raises the error
//! while the parser still holds the scalar, so it points at the value.

use std::fmt;

use serde::{
    Deserializer,
    de::{self, Visitor},
};

/// Reads a string and returns what `parse` makes of it; a refusal is an
/// error at the string's own line and column. `expecting` completes
/// "invalid type: ..., expected" for a value that is not a string.
pub(super) fn parse_str<'de, D, T, E>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
{
    deserializer.deserialize_str(Parse { expecting, parse })
}

struct Parse<T, E> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, E>,
}

impl<T, E: fmt::Display> Visitor<'_> for Parse<T, E> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<Er: de::Error>(self, value: &str) -> Result<T, Er> {
        (self.parse)(value).map_err(Er::custom)
    }
}
