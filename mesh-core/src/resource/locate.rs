//! Finding the line of a field after deserialization.
//!
//! Some mistakes show only once a resource is read: a regular expression
//! that does not compile, a reference to a resource that does not exist.
//! serde's positions are gone by then, so the YAML parser is asked again: a
//! probe walks the document along the field path and fails on purpose at
//! the value it reaches, and the parser stamps that failure with the
//! value's position. This runs only on the error path.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::Location;

/// Where the value at `path` (`spec.rules[0].matches[1].path.value`) is
/// written in document `index` (from 1) of `text`, when it is there.
pub(super) fn locate(text: &str, index: usize, path: &str) -> Option<Location> {
    let segments = parse_path(path)?;
    let document = serde_yaml_ng::Deserializer::from_str(text).nth(index.checked_sub(1)?)?;
    match (Probe { path: &segments }).deserialize(document) {
        Err(error) if error.to_string().contains(FOUND) => error.location().map(Location::from),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug)]
enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

/// Splits `a.b[0].c` into keys and indexes.
fn parse_path(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut indexes) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        while !indexes.is_empty() {
            let (index, rest) = indexes.strip_prefix('[')?.split_once(']')?;
            segments.push(Segment::Index(index.parse().ok()?));
            indexes = rest;
        }
    }
    Some(segments)
}

/// The message of the deliberate failure. YAML text cannot hold NUL, so no
/// real error carries it.
const FOUND: &str = "\u{0}found\u{0}";

/// Walks to the end of `path` and fails there.
struct Probe<'a, 'p> {
    path: &'a [Segment<'p>],
}

impl<'de> DeserializeSeed<'de> for Probe<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Probe<'_, '_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        if let Segment::Index(index) = *first {
            let mut skipped = 0;
            while skipped < index && seq.next_element::<IgnoredAny>()?.is_some() {
                skipped += 1;
            }
            if skipped == index {
                seq.next_element_seed(Probe { path: rest })?;
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let Segment::Key(name) = *first else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            if key.as_str() == Some(name) {
                map.next_value_seed(Probe { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}
