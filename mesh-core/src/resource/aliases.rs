//! Refusing a YAML text whose aliases stand for far more than it holds,
//! before it is read.
//!
//! An alias (`*a`) stands for the whole value its anchor (`&a`) names,
//! and reading it builds that value again. The parser bounds how many
//! times aliases are followed (a hundred per event of the document, which
//! stops a "billion laughs" of nested aliases), but not how much each one
//! stands for: one anchored list of ten thousand items, referred to ten
//! thousand times, is 50 KB of text and a hundred million values,
//! gigabytes, once read into a tree or into typed lists. Kubernetes'
//! YAML reader (go-yaml, since the fix for CVE-2019-11253) refuses such a
//! document too: "document contains excessive aliasing". So before a text is read, its values
//! are counted, aliases followed, without building anything, and the
//! count stops at a budget: as many values as the text has bytes (a text
//! without aliases holds fewer), plus [`ALIAS_ALLOWANCE`] for what
//! aliases add. Since the count stops there, its work is bounded by the
//! budget, in proportion to the text's size, however much the aliases
//! would stand for.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{Location, ResourceError, ResourceErrorKind};

/// How many values aliases may add, over all the documents of a text,
/// beyond one per byte of it: 100,000.
///
/// A text without aliases holds fewer values than bytes (each takes at
/// least one character, and a separator). Anchors as configuration uses
/// them, defaults merged into a few dozen resources (`<<: *defaults`) or
/// a list of matches shared by a few routes, add thousands.
pub const ALIAS_ALLOWANCE: usize = 100_000;

/// Checks that the documents of `text`, every alias counted as all the
/// values it stands for, hold no more values than `text` has bytes plus
/// [`ALIAS_ALLOWANCE`], without building any of them. Call it, after
/// [`check_yaml_shape`](super::check_yaml_shape), before reading a text
/// that comes from outside the process with serde;
/// [`Documents`](super::Documents) and [`load`](fn@super::load) call it
/// themselves.
///
/// A text that is not YAML passes: the reader that follows reports its
/// error, with its line.
///
/// # Errors
///
/// A [`ResourceError`] of kind
/// [`LimitExceeded`](ResourceErrorKind::LimitExceeded) naming `origin`,
/// the document (from 1), the bound, and the line of the value at which
/// the count passes it.
pub fn check_yaml_aliases(origin: &str, text: &str) -> Result<(), ResourceError> {
    let budget = text.len().saturating_add(ALIAS_ALLOWANCE);
    let mut left = budget;
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut exceeded = false;
        let count = Count {
            left: &mut left,
            exceeded: &mut exceeded,
        };
        let error = match count.deserialize(document) {
            Ok(()) => continue,
            Err(error) => error,
        };
        if !exceeded {
            // Not YAML: the reader says where.
            return Ok(());
        }
        let location = error.location().map(Location::from);
        let message = format!(
            "its aliases (`*name`) stand for more values than a text of {} bytes should \
             hold, and a document that expands this much is refused, as Kubernetes \
             refuses one with excessive aliasing: at most {budget} values in all (one per \
             byte plus {ALIAS_ALLOWANCE}), each value an alias stands for counted every \
             time it is referred to, and the count passes the bound",
            text.len()
        );
        return Err(
            ResourceError::new(ResourceErrorKind::LimitExceeded, origin, message)
                .in_document(index + 1, None, None)
                .at(location),
        );
    }
    Ok(())
}

/// Counts the values of one document, down from `left`.
struct Count<'a> {
    left: &'a mut usize,
    exceeded: &'a mut bool,
}

impl Count<'_> {
    /// The same count, for a value within this one.
    fn inner(&mut self) -> Count<'_> {
        Count {
            left: self.left,
            exceeded: self.exceeded,
        }
    }

    /// Counts one value; an error once the budget is spent.
    fn take<E: de::Error>(&mut self) -> Result<(), E> {
        match self.left.checked_sub(1) {
            Some(left) => {
                *self.left = left;
                Ok(())
            }
            None => {
                *self.exceeded = true;
                Err(E::custom("aliases stand for too many values"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.take()
    }

    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.take()
    }

    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.take()
    }

    fn visit_i128<E: de::Error>(mut self, _: i128) -> Result<(), E> {
        self.take()
    }

    fn visit_u128<E: de::Error>(mut self, _: u128) -> Result<(), E> {
        self.take()
    }

    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.take()
    }

    fn visit_str<E: de::Error>(mut self, _: &str) -> Result<(), E> {
        self.take()
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.take()
    }

    fn visit_none<E: de::Error>(mut self) -> Result<(), E> {
        self.take()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.take()?;
        while seq.next_element_seed(self.inner())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.take()?;
        while map.next_key_seed(self.inner())?.is_some() {
            map.next_value_seed(self.inner())?;
        }
        Ok(())
    }

    // A tagged value (`!tag value`): its value is counted.
    fn visit_enum<A: de::EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        self.take()?;
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant_seed(self.inner())
    }
}
