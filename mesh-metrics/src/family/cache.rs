//! A map from label sets to resolved metric handles, read without locks.
//!
//! Every request has to find the counters and histogram of its label set.
//! Looking them up in a [`Family`](super::Family) takes the family's lock and
//! compares owned label structs; doing that per request would put a lock on
//! the hot path of every core. So each resolved set of handles is kept here,
//! keyed by a hash of the label values, and found again by comparing
//! borrowed values: a lookup clones no `Arc`, allocates nothing and takes no
//! lock.
//!
//! Readers load an immutable snapshot through `arc-swap`. Writers (the first
//! request of a new label set) add to a small `pending` table under a mutex,
//! and fold it into a fresh snapshot once it holds an eighth of the snapshot's
//! size, so the copying costs O(1) amortized per entry while a key waits at
//! most a few inserts before readers find it without the lock.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

use arc_swap::ArcSwap;

/// Buckets of entries whose keys share a hash.
type Table<K, V> = HashMap<u64, Vec<(K, V)>, BuildHasherDefault<PrehashedHasher>>;

/// What a miss resolved to.
pub(crate) enum Resolved<K, V> {
    /// A value to keep under this key.
    Cache(K, V),
    /// A value to use once and not keep: a folded (overflow) label set is
    /// looked up again next time, so that each fold is counted.
    Once(V),
}

/// See the [module docs](self).
pub(crate) struct HandleCache<K, V> {
    snapshot: ArcSwap<Table<K, V>>,
    pending: Mutex<Table<K, V>>,
}

impl<K, V> std::fmt::Debug for HandleCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleCache")
            .field("entries", &self.snapshot.load().len())
            .finish_non_exhaustive()
    }
}

impl<K: Clone, V: Clone> Default for HandleCache<K, V> {
    fn default() -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Table::default()),
            pending: Mutex::new(Table::default()),
        }
    }
}

impl<K: Clone, V: Clone> HandleCache<K, V> {
    /// The value kept under `hash` whose key satisfies `eq`, or the one
    /// `resolve` makes (and maybe keeps).
    pub(crate) fn get_or_resolve(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        resolve: impl FnOnce() -> Resolved<K, V>,
    ) -> V {
        if let Some(v) = find(&self.snapshot.load(), hash, &eq) {
            return v;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // A writer may have merged the key into the snapshot meanwhile.
        if let Some(v) =
            find(&pending, hash, &eq).or_else(|| find(&self.snapshot.load(), hash, &eq))
        {
            return v;
        }
        match resolve() {
            Resolved::Once(v) => v,
            Resolved::Cache(k, v) => {
                pending.entry(hash).or_default().push((k, v.clone()));
                let snapshot = self.snapshot.load();
                if count(&pending) > count(&snapshot) / 8 {
                    let mut merged: Table<K, V> = (**snapshot).clone();
                    for (h, entries) in pending.drain() {
                        merged.entry(h).or_default().extend(entries);
                    }
                    self.snapshot.store(Arc::new(merged));
                }
                v
            }
        }
    }

    /// How many entries are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        count(&self.snapshot.load()) + count(&pending)
    }
}

fn find<K, V: Clone>(table: &Table<K, V>, hash: u64, eq: &impl Fn(&K) -> bool) -> Option<V> {
    table
        .get(&hash)?
        .iter()
        .find(|(k, _)| eq(k))
        .map(|(_, v)| v.clone())
}

fn count<K, V>(table: &Table<K, V>) -> usize {
    table.values().map(Vec::len).sum()
}

/// Hashes `value` with [`FxHasher`]: fast, and good enough for keys that come
/// from configuration and verified identities rather than from attackers.
pub(crate) fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = FxHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The multiply-rotate hash rustc uses internally (Fx), eight bytes at a
/// time.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Fx's multiply-rotate hash, fed whole words by the caller rather than
/// through [`Hasher`]: a request's label set is hashed on every request,
/// and feeding each value straight in, inlined, costs a third of what the
/// derived `Hash` through a `Hasher` did (no per-field calls, no
/// terminator bytes, no discriminant words).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WordHash(u64);

impl WordHash {
    /// A hash started from `seed`.
    #[inline]
    pub(crate) fn new(seed: u64) -> Self {
        let mut h = Self(0);
        h.word(seed);
        h
    }

    /// Adds one word.
    #[inline]
    pub(crate) fn word(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }

    /// Adds a string: its length, then its bytes eight at a time. The
    /// length first keeps consecutive strings apart (`"ab","c"` is not
    /// `"a","bc"`).
    #[inline]
    pub(crate) fn str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(word));
        }
    }

    /// Adds a string that may be absent; absent and empty differ.
    #[inline]
    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.word(u64::MAX),
        }
    }

    /// The hash.
    #[inline]
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// Whether two label values are equal: the same allocation, or the same
/// bytes.
#[inline]
pub(crate) fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// [`same_str`] for values that may be absent.
#[inline]
pub(crate) fn same_opt_str(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_str(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The hasher of a table whose keys are already hashes.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; fold anything else in.
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_value_is_found_without_resolving_again() {
        let cache = HandleCache::<String, u32>::default();
        let key = "a".to_string();
        let h = hash_of(&key);
        let v = cache.get_or_resolve(h, |k| k == "a", || Resolved::Cache(key.clone(), 1));
        assert_eq!(v, 1);
        let v = cache.get_or_resolve(h, |k| k == "a", || panic!("resolved twice"));
        assert_eq!(v, 1);
    }

    #[test]
    fn a_once_value_is_resolved_every_time() {
        let cache = HandleCache::<String, u32>::default();
        let mut calls = 0;
        for _ in 0..3 {
            cache.get_or_resolve(
                7,
                |_| true,
                || {
                    calls += 1;
                    Resolved::Once(0)
                },
            );
        }
        assert_eq!(calls, 3);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn keys_that_share_a_hash_are_told_apart_by_eq() {
        let cache = HandleCache::<u32, u32>::default();
        for k in 0..100 {
            cache.get_or_resolve(42, |x| *x == k, || Resolved::Cache(k, k * 10));
        }
        for k in 0..100 {
            assert_eq!(cache.get_or_resolve(42, |x| *x == k, || panic!()), k * 10);
        }
        assert_eq!(cache.len(), 100);
    }

    #[test]
    fn many_keys_all_end_up_readable() {
        let cache = HandleCache::<u64, u64>::default();
        for k in 0..5_000u64 {
            cache.get_or_resolve(hash_of(&k), |x| *x == k, || Resolved::Cache(k, k));
        }
        for k in 0..5_000u64 {
            assert_eq!(
                cache.get_or_resolve(hash_of(&k), |x| *x == k, || panic!()),
                k
            );
        }
    }
}
