//! A bound on what the aliases of a text stand for.
//!
//! An alias (`*a`) stands for the whole value its anchor (`&a`) names,
//! and reading it builds that value again. The YAML parser bounds how
//! many times aliases are followed (a hundred per event of the document,
//! which stops a "billion laughs" of nested aliases), but not how much
//! each one stands for: one anchored list of ten thousand items, referred
//! to ten thousand times, is 50 KB of text and a hundred million values,
//! gigabytes, once read. kubectl's reader refuses such a document
//! ("excessive aliasing"). So before a document is read into a tree, its
//! values are counted, aliases followed, without building anything, and
//! the count stops at a budget: as many values as the text has bytes (a
//! text without aliases holds fewer), plus [`ALIAS_ALLOWANCE`] for what
//! aliases add.

use mesh_core::resource::{ResourceError, ResourceErrorKind};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// How many values aliases may add, over all the documents of a text,
/// beyond one per byte of it. Anchors merged into a few dozen workloads
/// (`<<: *defaults`) add thousands.
const ALIAS_ALLOWANCE: usize = 100_000;

/// Refuses `text` (from `origin`) when its documents, aliases followed,
/// hold more values than the budget. A document that is not YAML is left
/// for the reader that follows to report, with its line.
pub(super) fn check(origin: &str, text: &str) -> Result<(), ResourceError> {
    let budget = text.len().saturating_add(ALIAS_ALLOWANCE);
    let mut left = budget;
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut exceeded = false;
        let count = Count {
            left: &mut left,
            exceeded: &mut exceeded,
        };
        if count.deserialize(document).is_ok() {
            continue;
        }
        if exceeded {
            let message = format!(
                "its aliases (`*name`) stand for more values than a text of {} bytes \
                 should hold (at most {budget} in all, counting each value an alias \
                 stands for every time): a document that expands this much is refused, \
                 as kubectl refuses one with excessive aliasing",
                text.len()
            );
            return Err(
                ResourceError::new(ResourceErrorKind::LimitExceeded, origin, message).in_document(
                    index + 1,
                    None,
                    None,
                ),
            );
        }
        // Not YAML: the reader says where.
        return Ok(());
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
