//! Finding where a field path is written in a YAML text.
//!
//! Some mistakes show only once a text is read: a regular expression that
//! does not compile, a reference to a resource that does not exist, two
//! listeners on one port. serde's positions are gone by then. To point at
//! the right line anyway, this module asks the YAML parser itself: it walks
//! the document along the path and fails on purpose at the value (or key)
//! it was looking for. The parser stamps that failure with the value's
//! position. This is exact for block and flow style alike, since the parser
//! does the reading, and it runs only on the error path.
//!
//! A value reached through an alias (`*name`) carries the position of its
//! anchor, which would point at the wrong place. Positions along the path
//! must therefore move forward through the text; when they do not, the
//! position of the key that holds the alias is used, or none at all.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{error::Location, shape::check_yaml_shape};

/// Where the value at `path` (such as `spec.rules[0].matches[1].path.value`)
/// is written in document `document` (counted from 1) of `text`, or `None`
/// when it is not there or cannot be told for sure. An empty path is the
/// document itself. A key that holds dots, such as the annotation
/// `retry.linkerd.io/http`, is written in the path as it is
/// (`metadata.annotations.retry.linkerd.io/http`): where a part of the path
/// is not a key of its own, it is read together with the next.
///
/// A text [`check_yaml_shape`] refuses is not looked into: each step of
/// the walk parses the text again, and that text would take the parser
/// too long to read.
pub fn locate(text: &str, document: usize, path: &str) -> Option<Location> {
    let document = document.checked_sub(1)?;
    if check_yaml_shape("", text).is_err() {
        return None;
    }
    if path.is_empty() {
        return probe(text, document, &[], Target::Value);
    }
    let mut segments = parse_path(path)?;
    let mut floor = 0;
    let mut found = None;
    let mut end = 1;
    while end <= segments.len() {
        let prefix = &segments[..end];
        let key = match prefix.last() {
            Some(&Segment::Key(name)) => match probe(text, document, prefix, Target::Key) {
                Some(key) if key.index < floor => return None,
                Some(key) => {
                    floor = key.index;
                    Some(key)
                }
                // Not a key of its own: perhaps the first part of a key
                // that holds dots, such as `retry.linkerd.io/http`.
                None => match segments.get(end) {
                    Some(&Segment::Key(next)) => {
                        segments[end - 1] = Segment::Key(joined(path, name, next)?);
                        segments.remove(end);
                        continue;
                    }
                    _ => return None,
                },
            },
            _ => None,
        };
        match probe(text, document, &segments[..end], Target::Value) {
            Some(value) if value.index >= floor => {
                floor = value.index;
                found = Some(value);
            }
            // An alias as the last value: its key is where it is written.
            _ if end == segments.len() => return key,
            _ => return None,
        }
        end += 1;
    }
    found
}

/// `first`, the `.` after it and `next`: two keys of `path` as one, for a
/// key that holds a dot (annotation and label keys are domain names).
fn joined<'p>(path: &'p str, first: &'p str, next: &'p str) -> Option<&'p str> {
    let offset = |part: &str| part.as_ptr().addr().checked_sub(path.as_ptr().addr());
    path.get(offset(first)?..offset(next)? + next.len())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

/// Splits `a.b[0].c` into keys and indexes.
fn parse_path(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut indexes) = match part.find('[') {
            Some(open) => part.split_at(open),
            None => (part, ""),
        };
        if key.is_empty() {
            return None;
        }
        segments.push(Segment::Key(key));
        while !indexes.is_empty() {
            let (index, rest) = indexes.strip_prefix('[')?.split_once(']')?;
            segments.push(Segment::Index(index.parse().ok()?));
            indexes = rest;
        }
    }
    Some(segments)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The position of the value at the path.
    Value,
    /// The position of the key that ends the path.
    Key,
}

/// The message of the deliberate failure. YAML text cannot contain NUL, so
/// no real error carries it.
const FOUND: &str = "\u{0}found\u{0}";

fn probe(text: &str, document: usize, path: &[Segment<'_>], target: Target) -> Option<Location> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text).nth(document)?;
    match (Probe { path, target }).deserialize(deserializer) {
        Err(error) if error.to_string().contains(FOUND) => error.location().map(Location::from),
        _ => None,
    }
}

/// Walks to the end of `path` and fails there.
struct Probe<'a, 'p> {
    path: &'a [Segment<'p>],
    target: Target,
}

impl<'de> DeserializeSeed<'de> for Probe<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Probe<'_, '_> {
    /// A scalar: the end of the path, or a dead end.
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
        let (first, rest) = match self.path.split_first() {
            None => return Err(de::Error::custom(FOUND)),
            Some(split) => split,
        };
        if let Segment::Index(index) = *first {
            let mut skipped = 0;
            while skipped < index && seq.next_element::<IgnoredAny>()?.is_some() {
                skipped += 1;
            }
            if skipped == index {
                let probe = Probe {
                    path: rest,
                    target: self.target,
                };
                seq.next_element_seed(probe)?;
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            None => return Err(de::Error::custom(FOUND)),
            Some(split) => split,
        };
        let Segment::Key(name) = *first else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let key = KeyProbe {
            name,
            fail: self.target == Target::Key && rest.is_empty(),
        };
        while let Some(matched) = map.next_key_seed(key)? {
            if matched {
                let probe = Probe {
                    path: rest,
                    target: self.target,
                };
                map.next_value_seed(probe)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Reads a mapping key and tells whether it is `name`; fails on it instead
/// when its own position is wanted. Keys that are not strings never match.
#[derive(Clone, Copy)]
struct KeyProbe<'p> {
    name: &'p str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        let matched = key == self.name;
        if matched && self.fail {
            Err(E::custom(FOUND))
        } else {
            Ok(matched)
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests;
