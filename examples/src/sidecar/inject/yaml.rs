//! Editing a YAML tree in place, with the field path of every step so a
//! mistake can be reported where it is written.
//!
//! Editing keeps order: a key that is replaced keeps its place, a new key
//! goes last, and nothing else moves. serde_yaml_ng's `Mapping` is an
//! insertion-ordered map, so a document read and written back keeps its
//! keys in the order they were written.

use std::fmt;

use mesh_core::resource::{
    DocumentContext, ResourceError, ResourceErrorKind, UnmergeableKey, locate, locate_nearest,
};
use serde_yaml_ng::{Mapping, Value};

use super::note::printable;

/// A path into a document, such as `items[0].spec.template.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct FieldPath(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub(super) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    pub(super) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    pub(super) fn parent(&self) -> Self {
        let mut path = self.clone();
        path.0.pop();
        path
    }

    /// The path and its ancestors, longest first.
    fn ancestry(&self) -> impl Iterator<Item = String> + '_ {
        (0..=self.0.len())
            .rev()
            .map(|end| FieldPath(self.0[..end].to_vec()).to_string())
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A mistake in a document found while injecting it, before it is tied to
/// the document's place in the text.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) kind: ResourceErrorKind,
    pub(super) path: FieldPath,
    pub(super) message: String,
}

impl Problem {
    pub(super) fn new(
        kind: ResourceErrorKind,
        path: FieldPath,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            path,
            message: message.into(),
        }
    }

    /// The error for document `context` of `text`, at the line of the field
    /// or, when the field is not written (a missing one), of its nearest
    /// written ancestor.
    pub(super) fn into_error(self, text: &str, context: &DocumentContext<'_>) -> ResourceError {
        let location = self
            .path
            .ancestry()
            .find_map(|path| locate(text, context.index(), &path));
        // The kind and name are the input's, written to a terminal. The
        // namespace is one (a DNS-1123 label) or none, as the document's
        // context reads it.
        let name = context.name().map(printable);
        ResourceError::new(self.kind, context.origin(), self.message)
            .in_document(
                context.index(),
                Some(&printable(context.kind())),
                name.as_deref(),
            )
            .in_namespace(context.namespace())
            .at_field(self.path.to_string())
            .at(location)
    }
}

/// The error for a merge key (`<<`) of document `context` of `text` that
/// names no mapping: at the mapping it is in, on the line of the key.
pub(super) fn unmergeable(
    text: &str,
    context: &DocumentContext<'_>,
    unmergeable: &UnmergeableKey,
) -> ResourceError {
    let name = context.name().map(printable);
    ResourceError::new(
        ResourceErrorKind::InvalidValue,
        context.origin(),
        unmergeable.to_string(),
    )
    .in_document(
        context.index(),
        Some(&printable(context.kind())),
        name.as_deref(),
    )
    .in_namespace(context.namespace())
    .at_field(unmergeable.mapping())
    .at(locate_nearest(
        text,
        context.index(),
        &unmergeable.key_path(),
    ))
}

/// What a value is, for messages.
fn shape(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn wrong_type(value: &Value, expected: &str, path: &FieldPath) -> Problem {
    Problem::new(
        ResourceErrorKind::InvalidType,
        path.clone(),
        format!("expected {expected}, found {}", shape(value)),
    )
}

/// The value as a mapping.
pub(super) fn as_mapping<'v>(value: &'v Value, path: &FieldPath) -> Result<&'v Mapping, Problem> {
    value
        .as_mapping()
        .ok_or_else(|| wrong_type(value, "a mapping", path))
}

/// The value as a mapping, to edit.
pub(super) fn as_mapping_mut<'v>(
    value: &'v mut Value,
    path: &FieldPath,
) -> Result<&'v mut Mapping, Problem> {
    match value {
        Value::Mapping(mapping) => Ok(mapping),
        other => Err(wrong_type(other, "a mapping", path)),
    }
}

/// The mapping under `key`, or `None` when the key is absent or null.
pub(super) fn mapping<'v>(
    parent: &'v Mapping,
    key: &str,
    path: &FieldPath,
) -> Result<Option<&'v Mapping>, Problem> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_mapping(value, &path.key(key)).map(Some),
    }
}

/// The mapping under `key`, to edit; an empty one is added when the key is
/// absent or null.
pub(super) fn mapping_entry<'v>(
    parent: &'v mut Mapping,
    key: &str,
    path: &FieldPath,
) -> Result<&'v mut Mapping, Problem> {
    let value = parent
        .entry(Value::String(key.to_owned()))
        .or_insert(Value::Null);
    if value.is_null() {
        *value = Value::Mapping(Mapping::new());
    }
    as_mapping_mut(value, &path.key(key))
}

/// The list under `key`, to edit; an empty one is added when the key is
/// absent or null.
pub(super) fn sequence_entry<'v>(
    parent: &'v mut Mapping,
    key: &str,
    path: &FieldPath,
) -> Result<&'v mut Vec<Value>, Problem> {
    let value = parent
        .entry(Value::String(key.to_owned()))
        .or_insert(Value::Null);
    if value.is_null() {
        *value = Value::Sequence(Vec::new());
    }
    match value {
        Value::Sequence(sequence) => Ok(sequence),
        other => Err(wrong_type(other, "a list", &path.key(key))),
    }
}

/// The string under `key`, or `None` when the key is absent or null.
pub(super) fn string<'v>(
    parent: &'v Mapping,
    key: &str,
    path: &FieldPath,
) -> Result<Option<&'v str>, Problem> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(other, "a string", &path.key(key))),
    }
}

/// The boolean under `key`, or `None` when the key is absent or null.
pub(super) fn boolean(
    parent: &Mapping,
    key: &str,
    path: &FieldPath,
) -> Result<Option<bool>, Problem> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(wrong_type(other, "a boolean", &path.key(key))),
    }
}

/// Puts `value` under `key` of `mapping`, where `key` already is, else as
/// the first key.
pub(super) fn insert_first(mapping: &mut Mapping, key: &str, value: Value) {
    let key = Value::String(key.to_owned());
    if let Some(slot) = mapping.get_mut(&key) {
        *slot = value;
        return;
    }
    let rest = std::mem::take(mapping);
    mapping.insert(key, value);
    mapping.extend(rest);
}

/// Where a named item goes when the list does not hold it yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AddAt {
    First,
    Last,
}

/// Puts `item` where the item of the same `name` is in `list`, else at
/// `at`. Returns whether the list changed.
pub(super) fn upsert_named(list: &mut Vec<Value>, item: Value, at: AddAt) -> bool {
    let name = item.get("name").cloned();
    match list
        .iter_mut()
        .find(|existing| existing.get("name") == name.as_ref())
    {
        Some(existing) if *existing == item => false,
        Some(existing) => {
            *existing = item;
            true
        }
        None => {
            match at {
                AddAt::First => list.insert(0, item),
                AddAt::Last => list.push(item),
            }
            true
        }
    }
}

/// Removes the item called `name` from `list`, when it holds one.
pub(super) fn remove_named(list: &mut Vec<Value>, name: &str) {
    list.retain(|item| item.get("name").and_then(Value::as_str) != Some(name));
}
