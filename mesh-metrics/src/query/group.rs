//! Rows keyed by what they are about, for the views that sum a delta's
//! samples into one row per key (an edge, an authorization).

use std::{collections::HashMap, hash::Hash, time::Duration};

/// Values by key, in the order the keys first appear. Views have tens of
/// rows, so up to [`SCANNED`] keys a linear search is cheaper than hashing
/// the string keys; past that (a scraped server picks how many keys there
/// are), keys are found through an index.
#[derive(Debug)]
pub(crate) struct Groups<K, V> {
    entries: Vec<(K, V)>,
    /// Where each key is, once there are more than [`SCANNED`].
    index: HashMap<K, usize>,
}

/// How many keys [`Groups`] finds by a linear search.
const SCANNED: usize = 32;

impl<K, V> Default for Groups<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Default> Groups<K, V> {
    /// The value of `key`, a default one when the key is new.
    pub(crate) fn entry(&mut self, key: K) -> &mut V {
        let found = if self.entries.len() <= SCANNED {
            self.entries.iter().position(|(k, _)| *k == key)
        } else {
            if self.index.is_empty() {
                let keys = self.entries.iter().map(|(k, _)| k.clone());
                self.index = keys.zip(0..).collect();
            }
            self.index.get(&key).copied()
        };
        let i = found.unwrap_or_else(|| {
            if !self.index.is_empty() {
                self.index.insert(key.clone(), self.entries.len());
            }
            self.entries.push((key, V::default()));
            self.entries.len() - 1
        });
        &mut self.entries[i].1
    }

    /// The keys and values, in the order the keys first appeared.
    pub(crate) fn into_entries(self) -> Vec<(K, V)> {
        self.entries
    }
}

/// `count` per second over `window`. Zero counts nothing, whatever the
/// window; a count over an empty window has no rate, so it is +Inf, which
/// a view shows as not computed (`-`, `null`) rather than as 0, which would
/// read as no traffic at all.
pub(crate) fn per_second(count: f64, window: Duration) -> f64 {
    if count == 0.0 {
        return 0.0;
    }
    let secs = window.as_secs_f64();
    if secs > 0.0 {
        count / secs
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_the_order_they_first_appear_in() {
        let mut groups: Groups<&str, u32> = Groups::default();
        *groups.entry("b") += 1;
        *groups.entry("a") += 2;
        *groups.entry("b") += 3;
        assert_eq!(groups.into_entries(), [("b", 4), ("a", 2)]);
        // Past the keys a scan finds, the index finds them, in the same
        // order.
        let mut groups: Groups<u32, u32> = Groups::default();
        for round in 1..=2 {
            for key in (0..100).rev() {
                *groups.entry(key) += round;
            }
        }
        let entries = groups.into_entries();
        assert_eq!(entries.len(), 100);
        assert!(entries.iter().rev().zip(0..).all(|(e, key)| *e == (key, 3)));
        assert_eq!(per_second(30.0, Duration::from_secs(10)), 3.0);
        assert_eq!(per_second(30.0, Duration::ZERO), f64::INFINITY);
        assert_eq!(per_second(0.0, Duration::ZERO), 0.0);
    }
}
