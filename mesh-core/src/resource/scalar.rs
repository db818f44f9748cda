//! Scalars refused at the scalar itself: strings read through a parse
//! function, and whole numbers read with their field's range
//! ([`WholeNumber`]).
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

/// A whole number a field reads, with the range the field allows.
///
/// Read as a plain `u16` or `u32`, a number outside its type's range (a
/// status of `70000`, a count of `-1`) is refused with serde's "expected
/// u16", which says neither what the field is nor what it may be. Read
/// through this, it gets "status 70000 is outside the allowed range 100 to
/// 599", at the number's own line and column. A number the type holds but
/// the field does not allow is let through, for the reader that knows the
/// field to refuse with its own words (`holds` wider than `allowed`), or
/// refused here too (`holds` equal to `allowed`).
#[derive(Clone, Copy, Debug)]
pub struct WholeNumber {
    /// The field's name in a message, such as `status`.
    pub what: &'static str,
    /// The range the field allows, for messages.
    pub allowed: (i64, i64),
    /// What is read: anything outside is refused here.
    pub holds: (i64, i64),
}

impl WholeNumber {
    /// The range of a `u16`.
    pub const U16: (i64, i64) = (0, u16::MAX as i64);
    /// The range of a `u32`.
    pub const U32: (i64, i64) = (0, u32::MAX as i64);

    /// Reads the number.
    ///
    /// # Errors
    ///
    /// When the value is not a whole number within `holds`, or does not
    /// fit `T`.
    pub fn read<'de, D, T>(self, deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i64>,
    {
        let value = deserializer.deserialize_i64(self)?;
        self.narrow(value)
    }

    /// Reads the number, or `None` for an absent (`null`) one.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub fn read_optional<'de, D, T>(self, deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i64>,
    {
        deserializer
            .deserialize_option(Optional(self))?
            .map(|value| self.narrow(value))
            .transpose()
    }

    fn narrow<T: TryFrom<i64>, E: de::Error>(self, value: i64) -> Result<T, E> {
        T::try_from(value).map_err(|_| E::custom(self.outside(value)))
    }

    fn outside(self, value: impl fmt::Display) -> String {
        format!(
            "{} {value} is outside the allowed range {} to {}",
            self.what, self.allowed.0, self.allowed.1
        )
    }
}

impl Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} from {} to {}",
            self.what, self.allowed.0, self.allowed.1
        )
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        if (self.holds.0..=self.holds.1).contains(&value) {
            Ok(value)
        } else {
            Err(E::custom(self.outside(value)))
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        match i64::try_from(value) {
            Ok(value) => self.visit_i64(value),
            Err(_) => Err(E::custom(self.outside(value))),
        }
    }
}

/// An absent (`null`) or present [`WholeNumber`].
struct Optional(WholeNumber);

impl<'de> Visitor<'de> for Optional {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_i64(self.0).map(Some)
    }
}

/// Reads a count of retries that may be absent (an HTTPRoute's
/// `retry.attempts`, the guide's `retries.numRetries`): a whole number
/// from 1 to `u32::MAX`. Zero is read, for the reader that knows what it
/// means to refuse with its own words.
///
/// # Errors
///
/// When the value is not a whole number from 0 to `u32::MAX`.
pub fn retry_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    WholeNumber {
        what: "retry count",
        allowed: (1, WholeNumber::U32.1),
        holds: WholeNumber::U32,
    }
    .read_optional(deserializer)
}
