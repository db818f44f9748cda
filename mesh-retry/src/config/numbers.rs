//! Numbers read with the range their field allows.
//!
//! Read as a plain `u16` or `u32`, a number outside its type's range (a
//! status of `70000`, a `budgetPercent` of `-1`) was refused with serde's
//! "expected u16", which says neither what the field is nor what it may
//! be, while a number inside the type but outside the field's range got a
//! message naming both. Read here (mesh-core's [`WholeNumber`]), both get
//! the second message, at the number's own line and column; the range of
//! the field itself is still checked where the field is used.

use std::fmt;

use mesh_core::resource::WholeNumber;
use serde::{
    Deserializer,
    de::{self, Visitor},
};

/// A ServiceProfile response class's status bound: 100 to 599 (or 0,
/// unset), as Linkerd checks it.
pub(super) fn status_bound<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    WholeNumber {
        what: "status",
        allowed: (100, 599),
        holds: WholeNumber::U16,
    }
    .read_optional(deserializer)
}

/// A budget's `budgetPercent`: 0 to 100.
pub(super) fn budget_percent<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    WholeNumber {
        what: "budget percent",
        allowed: (0, 100),
        holds: WholeNumber::U32,
    }
    .read_optional(deserializer)
}

/// A budget's `minRetriesPerSecond`: any count a `u32` holds.
pub(super) fn min_retries_per_second<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    WholeNumber {
        what: "min retries per second",
        allowed: WholeNumber::U32,
        holds: WholeNumber::U32,
    }
    .read_optional(deserializer)
}

/// A budget's `minRetryRate.count`: any count a `u32` holds.
pub(super) fn min_retry_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    WholeNumber {
        what: "minimum retry count",
        allowed: WholeNumber::U32,
        holds: WholeNumber::U32,
    }
    .read(deserializer)
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
