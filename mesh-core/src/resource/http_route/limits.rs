//! The Gateway API's limits on how many entries a route's lists hold.
//!
//! The API server refuses a route over them (`maxItems` in the CRDs, and a
//! rule that a route's rules hold at most 128 matches together), so a
//! route that works with `kubectl apply` is within them. Every request is
//! compared with every match of the routes it may take, so the reader
//! keeps to the same limits: a route read from a file costs no more per
//! request than one the cluster would accept. A list is refused as soon
//! as it goes over, without reading the rest.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{self, SeqAccess, Visitor},
};

/// `parentRefs`.
pub(super) const PARENT_REFS: usize = 32;
/// `hostnames`, `rules`, `filters`, `backendRefs`, a match's `headers` and
/// `queryParams`, and a header modifier's `set`, `add` and `remove`.
pub(super) const SIXTEEN: usize = 16;
/// A rule's `matches`.
pub(super) const MATCHES: usize = 64;
/// The matches of all of a route's rules together.
pub(super) const ROUTE_MATCHES: usize = 128;

/// A list of at most `N` entries.
pub(super) fn at_most<'de, const N: usize, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_option(AtMost::<N, T>(PhantomData))
}

/// A list the CRD requires 1 to `N` entries of (`minItems: 1`), refused
/// where it is written when it is empty. `null` is the field left out, as
/// the API server drops it: no entries for an optional list, and refused,
/// at the `null`, for a `required` one.
pub(super) fn one_to<'de, const N: usize, D, T>(
    deserializer: D,
    required: bool,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    // `deserialize_any`, so that an error about a `null` names its line.
    deserializer.deserialize_any(OneTo::<N, T> {
        required,
        entries: PhantomData,
    })
}

/// A route's rules: at most 16, holding at most 128 matches together.
pub(super) fn rules<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + HasMatches,
{
    route_matches(at_most::<SIXTEEN, D, T>(deserializer)?)
}

/// A route's rules as [`rules`] reads them, except that `null` is
/// `absent()`: for a CRD that defaults `rules`, the API server drops the
/// `null` and stores the default in its place. A list, even an empty
/// one, is kept as written.
pub(super) fn rules_or<'de, D, T>(
    deserializer: D,
    absent: fn() -> Vec<T>,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + HasMatches,
{
    deserializer.deserialize_option(RulesOr { absent })
}

/// `rules`, refused when they hold more matches together than a route may.
fn route_matches<T: HasMatches, E: de::Error>(rules: Vec<T>) -> Result<Vec<T>, E> {
    let matches: usize = rules.iter().map(HasMatches::matches).sum();
    if matches > ROUTE_MATCHES {
        return Err(E::custom(format_args!(
            "the rules hold {matches} matches together; the Gateway API allows at most \
             {ROUTE_MATCHES} in one route"
        )));
    }
    Ok(rules)
}

struct RulesOr<T> {
    absent: fn() -> Vec<T>,
}

impl<'de, T: Deserialize<'de> + HasMatches> Visitor<'de> for RulesOr<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {SIXTEEN} rules")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok((self.absent)())
    }

    fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok((self.absent)())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        rules(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
        route_matches(AtMost::<SIXTEEN, T>(PhantomData).visit_seq(seq)?)
    }
}

struct OneTo<const N: usize, T> {
    required: bool,
    entries: PhantomData<T>,
}

impl<'de, const N: usize, T: Deserialize<'de>> Visitor<'de> for OneTo<N, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of 1 to {N} entries")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        if self.required {
            return Err(E::custom(format_args!(
                "the list is null, which leaves it out, and the Gateway API requires it, with \
                 1 to {N} entries"
            )));
        }
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
        let entries = AtMost::<N, T>(PhantomData).visit_seq(seq)?;
        if entries.is_empty() {
            return Err(de::Error::custom(format_args!(
                "the list is empty; the Gateway API requires 1 to {N} entries"
            )));
        }
        Ok(entries)
    }
}

/// A rule, whose matches count towards its route's limit.
pub(super) trait HasMatches {
    fn matches(&self) -> usize;
}

struct AtMost<const N: usize, T>(PhantomData<T>);

impl<'de, const N: usize, T: Deserialize<'de>> Visitor<'de> for AtMost<N, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {N} entries")
    }

    /// `null`: no entries. The API server drops a `null` it is sent for a
    /// list that is not nullable, so a manifest with `rules: null` is one
    /// without `rules`, and is read as one.
    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
        while let Some(entry) = seq.next_element()? {
            if entries.len() == N {
                return Err(de::Error::custom(format_args!(
                    "more than {N} entries; the Gateway API allows at most {N}"
                )));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}
