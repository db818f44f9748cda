//! Fields of a document that its resource type does not read: named in
//! warnings, so that a misspelt or unsupported field is not silently
//! dropped, except those the API server writes into every object.

use std::fmt;

use super::{SERVER_SET_FIELDS, error::ResourceName};

/// A field of a document that was not read: unknown to the type, or a
/// part of its spec that is not supported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredField {
    /// Where the text came from.
    pub origin: String,
    /// The document's number, from 1.
    pub document: usize,
    /// The document's kind.
    pub kind: String,
    /// The document's namespace, when it has one.
    pub namespace: Option<String>,
    /// The document's name.
    pub name: Option<String>,
    /// The field's path, such as `spec.rules[0].retries`.
    pub path: String,
}

impl fmt::Display for IgnoredField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_document(
            f,
            &self.origin,
            self.document,
            &self.kind,
            self.namespace.as_deref(),
            self.name.as_deref(),
        )?;
        write!(f, "): {}", self.path)
    }
}

/// `origin: document N (Kind namespace/name`: how warnings name a
/// document, as [`ResourceError`](super::ResourceError) does, left open
/// for what they add about it.
pub(super) fn write_document(
    f: &mut fmt::Formatter<'_>,
    origin: &str,
    document: usize,
    kind: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> fmt::Result {
    let resource = ResourceName {
        kind: Some(kind),
        namespace,
        name,
    };
    write!(f, "{origin}: document {document} ({resource}")
}

/// `spec.rules[0].retries`, in the style of serde_path_to_error's paths.
pub(super) fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Whether `path` is a field the API server writes (`status`,
/// `metadata.managedFields`...), which no resource type reads and no
/// warning names.
pub(super) fn is_server_set(path: &str) -> bool {
    SERVER_SET_FIELDS.iter().any(|field| {
        path.strip_prefix(field)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}
