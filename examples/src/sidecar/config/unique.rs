//! Mappings whose keys the user chooses: a workload's labels and named
//! ports, the trace attributes.
//!
//! serde reads such a mapping into a map that keeps the last value of a
//! key written twice, where the fields of a section refuse a duplicate.
//! YAML leaves duplicate keys undefined, and the last one is not always
//! the one meant: `labels: {app: web, app: api}` would select workloads
//! labelled `api`. So these mappings refuse a duplicate too, with the
//! message serde gives a duplicate field, which names the key.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// A mapping of string keys, each written once.
#[derive(Debug)]
pub(super) struct UniqueMap<V>(pub(super) BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UniqueVisitor(PhantomData))
    }
}

struct UniqueVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueVisitor<V> {
    type Value = UniqueMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping, each key written once")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap<V>, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            let value = map.next_value()?;
            entries.insert(key, value);
        }
        Ok(UniqueMap(entries))
    }
}
