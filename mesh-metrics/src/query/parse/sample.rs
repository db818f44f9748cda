//! A sample of a scrape, and the table that holds its labels.
//!
//! A scrape of a busy proxy is mostly the same few label names and values
//! written again on every line (a histogram's buckets differ only in
//! `le`). Kept as a `String` each, they took about three times the text
//! they were read from, in some 25 allocations per sample; kept once each
//! in a [`Table`], a sample's labels are a run of pairs of ids, 8 bytes a
//! label.

use std::{borrow::Borrow, fmt, ops::Deref, sync::Arc};

/// A sample's name (`request_total`): one text shared by every sample
/// that has it. It compares with text as text does (`s.name ==
/// "request_total"`), and derefs to it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    pub(super) fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The labels of a scrape's samples: each distinct label name and value
/// once, and each sample's labels as (name, value) ids, one sample's run
/// after another's.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// The distinct texts, one after another.
    text: String,
    /// Where each text ends in `text`; the first starts at 0, each other
    /// where the one before ends.
    ends: Vec<u32>,
    /// Every sample's labels.
    pub(super) labels: Vec<(u32, u32)>,
}

impl Table {
    /// Adds `text` and returns its id; `None` past 4 GiB of texts or 2^32
    /// of them, which a text a scrape may read cannot reach.
    pub(super) fn push(&mut self, text: &str) -> Option<u32> {
        let id = u32::try_from(self.ends.len()).ok()?;
        self.text.push_str(text);
        self.ends.push(u32::try_from(self.text.len()).ok()?);
        Some(id)
    }

    /// The text of `id`; empty for an id it did not give.
    pub(super) fn text(&self, id: u32) -> &str {
        let id = id as usize;
        let start = match id.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or_default(),
            None => 0,
        };
        let end = self.ends.get(id).copied().unwrap_or_default();
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// Frees the room that growing left unused.
    pub(super) fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.labels.shrink_to_fit();
    }
}

/// One sample of a scrape.
#[derive(Clone)]
pub struct Sample {
    /// The sample's name, suffix included (`request_total`,
    /// `response_latency_ms_bucket`).
    pub name: Name,
    /// The value.
    pub value: f64,
    /// The scrape's labels; this sample's are `labels`.
    table: Arc<Table>,
    labels: (u32, u32),
}

impl Sample {
    /// The sample whose labels are `table.labels[start..end]`.
    pub(super) fn new(name: Name, value: f64, table: Arc<Table>, labels: (u32, u32)) -> Self {
        Self {
            name,
            value,
            table,
            labels,
        }
    }

    /// Takes the labels of `table`, once it holds them.
    pub(super) fn set_table(&mut self, table: &Arc<Table>) {
        self.table = Arc::clone(table);
    }

    /// The same series with another value: its increase, say.
    pub(crate) fn with_value(&self, value: f64) -> Self {
        Self {
            value,
            ..self.clone()
        }
    }

    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The labels, as (name, value), in the order they were written.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        let (start, end) = self.labels;
        let ids = self
            .table
            .labels
            .get(start as usize..end as usize)
            .unwrap_or_default();
        ids.iter()
            .map(|&(k, v)| (self.table.text(k), self.table.text(v)))
    }
}

impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value && self.labels().eq(other.labels())
    }
}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("name", &self.name)
            .field("labels", &self.labels().collect::<Vec<_>>())
            .field("value", &self.value)
            .finish()
    }
}
