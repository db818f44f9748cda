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

/// Reads a count of retries that may be absent: a whole number that fits
/// a `u32`. Zero is read, for the reader that knows what it means to
/// refuse with its own words; a negative, fractional or larger number is
/// refused here, naming the range, where serde's `u32` would say only
/// "expected u32".
///
/// # Errors
///
/// When the value is not a whole number from 0 to `u32::MAX`.
pub fn retry_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    struct Count(u32);

    impl<'de> serde::Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_u32(CountVisitor).map(Count)
        }
    }

    struct CountVisitor;

    impl Visitor<'_> for CountVisitor {
        type Value = u32;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a whole number of retries from 1 to {}", u32::MAX)
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<u32, E> {
            u32::try_from(value)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u32, E> {
            u32::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
        }
    }

    Ok(<Option<Count> as serde::Deserialize>::deserialize(deserializer)?.map(|c| c.0))
}
