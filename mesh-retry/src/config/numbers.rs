//! Whole numbers read with the range their field allows.
//!
//! Read as a plain `u16` or `u32`, a number outside its type's range (a
//! status of `70000`, a `budgetPercent` of `-1`) was refused with serde's
//! "expected u16", which says neither what the field is nor what it may
//! be, while a number inside the type but outside the field's range got a
//! message naming both. Read here, both get the second message, at the
//! number's own line and column; the range of the field itself is still
//! checked where the field is used.

use std::fmt;

use serde::{
    Deserializer,
    de::{self, Visitor},
};

/// What a field's number is called and may be, and what its type holds.
#[derive(Clone, Copy)]
struct Number {
    /// The field's name in a message, such as `status`.
    what: &'static str,
    /// The range the field allows, for messages.
    allowed: (i64, i64),
    /// The range of the field's type: anything outside is refused here.
    holds: (i64, i64),
}

impl Number {
    fn outside(self, value: impl fmt::Display) -> String {
        format!(
            "{} {value} is outside the allowed range {} to {}",
            self.what, self.allowed.0, self.allowed.1
        )
    }
}

impl Visitor<'_> for Number {
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

/// An absent (`null`) or present [`Number`].
struct Optional(Number);

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

const U16: (i64, i64) = (0, u16::MAX as i64);
const U32: (i64, i64) = (0, u32::MAX as i64);

fn optional<'de, D: Deserializer<'de>>(
    deserializer: D,
    number: Number,
) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_option(Optional(number))
}

/// Narrows a number [`Number::holds`] already kept within `T`'s range.
fn narrow<T: TryFrom<i64>, E: de::Error>(number: Number, value: i64) -> Result<T, E> {
    T::try_from(value).map_err(|_| E::custom(number.outside(value)))
}

/// A ServiceProfile response class's status bound: 100 to 599 (or 0,
/// unset), as Linkerd checks it.
pub(super) fn status_bound<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    let number = Number {
        what: "status",
        allowed: (100, 599),
        holds: U16,
    };
    optional(deserializer, number)?
        .map(|value| narrow(number, value))
        .transpose()
}

/// A budget's `budgetPercent`: 0 to 100.
pub(super) fn budget_percent<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let number = Number {
        what: "budget percent",
        allowed: (0, 100),
        holds: U32,
    };
    optional(deserializer, number)?
        .map(|value| narrow(number, value))
        .transpose()
}

/// A budget's `minRetriesPerSecond`: any count a `u32` holds.
pub(super) fn min_retries_per_second<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let number = Number {
        what: "min retries per second",
        allowed: U32,
        holds: U32,
    };
    optional(deserializer, number)?
        .map(|value| narrow(number, value))
        .transpose()
}

/// A budget's `minRetryRate.count`: any count a `u32` holds.
pub(super) fn min_retry_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = Number {
        what: "minimum retry count",
        allowed: U32,
        holds: U32,
    };
    let value = deserializer.deserialize_i64(number)?;
    narrow(number, value)
}

/// A retry ratio, read as any number: whole or not, the budget checks it
/// is within 0 to 1000. Anything else is refused as not being one.
struct Ratio;

impl Visitor<'_> for Ratio {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a retry ratio from 0 to 1000")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
        Ok(value)
    }

    // Whole numbers far past the range lose precision, and are refused
    // for their size all the same.
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
        Ok(value as f64)
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
        Ok(value as f64)
    }
}

/// An absent (`null`) or present [`Ratio`].
struct OptionalRatio;

impl<'de> Visitor<'de> for OptionalRatio {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ratio.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_f64(Ratio).map(Some)
    }
}

/// A budget's `retryRatio`: a number, which the budget holds to 0 to 1000.
pub(super) fn retry_ratio<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<f64>, D::Error> {
    deserializer.deserialize_option(OptionalRatio)
}
