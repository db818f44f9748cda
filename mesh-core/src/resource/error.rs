//! What was wrong with a resource document, and where.

use std::{error::Error as StdError, fmt};

use super::meta::is_namespace;
use crate::BoxError;

/// A position in the text. Lines and columns count from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
    /// The byte offset from the start of the text.
    pub index: usize,
}

impl From<serde_yaml_ng::Location> for Location {
    fn from(location: serde_yaml_ng::Location) -> Self {
        Self {
            line: location.line(),
            column: location.column(),
            index: location.index(),
        }
    }
}

/// What kind of mistake a [`ResourceError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceErrorKind {
    /// The text could not be read (a file that is missing or not UTF-8).
    Io,
    /// The text is not well-formed YAML.
    Syntax,
    /// A required field is absent. The field path names it.
    MissingField,
    /// A field appears twice in one mapping.
    DuplicateField,
    /// A value of the wrong shape: a list where a mapping belongs.
    InvalidType,
    /// A value of the right shape that is not acceptable: a bad CIDR,
    /// regular expression, duration or identity.
    InvalidValue,
    /// A known kind at an `apiVersion` that is not read.
    UnsupportedVersion,
    /// Two resources of one kind share a namespace and name.
    DuplicateName,
    /// A reference (a `targetRef`, a `server` name) to a resource that does
    /// not exist.
    DanglingReference,
    /// Two resources claim what only one may have, such as two `Server`s
    /// selecting the same port of one workload.
    Conflict,
    /// The text is larger, or nests flow collections deeper, than the
    /// loader reads (see [`check_yaml_shape`](super::check_yaml_shape)).
    LimitExceeded,
}

impl ResourceErrorKind {
    /// A short, stable name, usable as a metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::Syntax => "syntax",
            Self::MissingField => "missing_field",
            Self::DuplicateField => "duplicate_field",
            Self::InvalidType => "invalid_type",
            Self::InvalidValue => "invalid_value",
            Self::UnsupportedVersion => "unsupported_version",
            Self::DuplicateName => "duplicate_name",
            Self::DanglingReference => "dangling_reference",
            Self::Conflict => "conflict",
            Self::LimitExceeded => "limit_exceeded",
        }
    }
}

/// A resource text that was rejected.
///
/// It names everything an operator needs to find the mistake: the origin
/// (usually a file name), the document (counted from 1, as `---` separates
/// them), the resource's kind, namespace and name when they are known, the
/// field path, and the line and column. It displays on one line:
///
/// ```text
/// policy.yaml: document 2 (NetworkAuthentication linkerd/cluster): spec.networks[0].cidr: invalid cidr "10.0.0.0/33" at line 14 column 13
/// ```
///
/// The resource is named as kubectl names one, `namespace/name`, so that
/// resources of one name in two namespaces of one file (each namespace's
/// policy, say) are told apart by more than their document number; a
/// resource without a namespace is named by its name alone.
///
/// A lower-level error that explains the problem (the regex compiler's, the
/// address parser's) is the [`source`](StdError::source), not part of the
/// message.
#[derive(Debug)]
pub struct ResourceError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ResourceErrorKind,
    origin: String,
    document: Option<usize>,
    resource_kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    field_path: String,
    message: String,
    location: Option<Location>,
    source: Option<BoxError>,
}

impl ResourceError {
    /// An error of `kind` in `origin`, with a message that says what was
    /// wrong (lowercase, no trailing period).
    pub fn new(kind: ResourceErrorKind, origin: &str, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            origin: origin.to_owned(),
            document: None,
            resource_kind: None,
            namespace: None,
            name: None,
            field_path: String::new(),
            message: message.into(),
            location: None,
            source: None,
        }))
    }

    /// Names the document (from 1), and the kind and name of the resource
    /// in it when known. A namespace named before is dropped: it was
    /// another resource's (a `kind: List`'s, when an error is renamed for
    /// one of its items). Name this one's with
    /// [`in_namespace`](Self::in_namespace), after this.
    #[must_use]
    pub fn in_document(mut self, index: usize, kind: Option<&str>, name: Option<&str>) -> Self {
        self.0.document = Some(index);
        self.0.resource_kind = kind.map(str::to_owned);
        self.0.namespace = None;
        self.0.name = name.map(str::to_owned);
        self
    }

    /// Names the namespace of the resource in the document, when it has
    /// one. A value that is not a namespace (not a DNS-1123 label: `Shop`,
    /// `a/b`) is not shown: it names no namespace, and in `namespace/name`
    /// it could read as another resource, or put what it holds on a
    /// terminal; the error about it quotes it instead.
    #[must_use]
    pub fn in_namespace(mut self, namespace: Option<&str>) -> Self {
        self.0.namespace = namespace.map(str::to_owned);
        self
    }

    /// Names the field, as a path such as `spec.rules[0].matches[1].path`.
    #[must_use]
    pub fn at_field(mut self, field_path: impl Into<String>) -> Self {
        self.0.field_path = field_path.into();
        self
    }

    /// Sets the position in the text.
    #[must_use]
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.0.location = location;
        self
    }

    /// Sets the lower-level error that explains this one.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ResourceErrorKind {
        self.0.kind
    }

    /// Where the text came from, such as a file name.
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// The document, counted from 1, when the error is about one.
    pub fn document(&self) -> Option<usize> {
        self.0.document
    }

    /// The kind of the resource in the document, when it is known.
    pub fn resource_kind(&self) -> Option<&str> {
        self.0.resource_kind.as_deref()
    }

    /// The namespace of the resource in the document, as given to
    /// [`in_namespace`](Self::in_namespace), when it is known.
    pub fn namespace(&self) -> Option<&str> {
        self.0.namespace.as_deref()
    }

    /// The name of the resource in the document, when it is known.
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// The path of the offending field, such as `spec.networks[0].cidr`.
    /// Empty when the problem is not about one field.
    pub fn field_path(&self) -> &str {
        &self.0.field_path
    }

    /// What was wrong, without the origin, document or position.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The position of the problem, when it is known.
    pub fn location(&self) -> Option<Location> {
        self.0.location
    }

    /// The line of the problem, from 1, when it is known.
    pub fn line(&self) -> Option<usize> {
        self.0.location.map(|l| l.line)
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.0;
        write!(f, "{}: ", inner.origin)?;
        if let Some(document) = inner.document {
            write!(f, "document {document}")?;
            let resource = ResourceName {
                kind: inner.resource_kind.as_deref(),
                namespace: inner.namespace.as_deref(),
                name: inner.name.as_deref(),
            };
            if !resource.is_empty() {
                write!(f, " ({resource})")?;
            }
            f.write_str(": ")?;
        }
        if !inner.field_path.is_empty() {
            write!(f, "{}: ", inner.field_path)?;
        }
        f.write_str(&inner.message)?;
        if let Some(at) = inner.location {
            write!(f, " at line {} column {}", at.line, at.column)?;
        }
        Ok(())
    }
}

/// How errors and warnings name a resource: `Kind namespace/name`, as
/// kubectl names one, or `Kind name` without a namespace. A namespace that
/// is not one (see [`ResourceError::in_namespace`]) is left out; with no
/// name, the namespace still shows, as `Kind namespace/`.
///
/// [`ResourceError`], [`IgnoredField`](super::IgnoredField) and
/// [`OtherResource`](super::OtherResource) name their resource with it;
/// a reader that writes its own warnings about a document (a policy's, a
/// route's) names it with it too, so that every message names a resource
/// the same way.
///
/// ```
/// use mesh_core::resource::ResourceName;
///
/// let named = ResourceName::new(Some("HTTPRoute"), Some("shop"), Some("books"));
/// assert_eq!(named.to_string(), "HTTPRoute shop/books");
/// let bare = ResourceName::new(Some("HTTPRoute"), None, Some("books"));
/// assert_eq!(bare.to_string(), "HTTPRoute books");
/// let invalid = ResourceName::new(Some("HTTPRoute"), Some("Shop"), Some("books"));
/// assert_eq!(invalid.to_string(), "HTTPRoute books");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ResourceName<'a> {
    pub(super) kind: Option<&'a str>,
    pub(super) namespace: Option<&'a str>,
    pub(super) name: Option<&'a str>,
}

impl<'a> ResourceName<'a> {
    /// The resource of `kind`, in `namespace`, called `name`, each when it
    /// is known. `namespace` is the document's `metadata.namespace` as
    /// written: a value that is not a namespace is not shown.
    pub fn new(kind: Option<&'a str>, namespace: Option<&'a str>, name: Option<&'a str>) -> Self {
        Self {
            kind,
            namespace,
            name,
        }
    }

    fn namespace(&self) -> Option<&str> {
        self.namespace.filter(|namespace| is_namespace(namespace))
    }

    /// Whether it names nothing at all.
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.name.is_none() && self.namespace().is_none()
    }
}

impl fmt::Display for ResourceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut space = "";
        if let Some(kind) = self.kind {
            f.write_str(kind)?;
            space = " ";
        }
        match (self.namespace(), self.name) {
            (Some(namespace), name) => {
                write!(f, "{space}{namespace}/{}", name.unwrap_or_default())
            }
            (None, Some(name)) => write!(f, "{space}{name}"),
            (None, None) => Ok(()),
        }
    }
}

impl StdError for ResourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Turns a deserialization failure into a [`ResourceError`]: its kind from
/// serde's standard messages, its path from `serde_path_to_error`, its
/// position from the YAML parser.
pub(super) fn from_serde(
    origin: &str,
    error: serde_path_to_error::Error<serde_yaml_ng::Error>,
) -> ResourceError {
    let mut path = error.path().to_string();
    if path == "." {
        path.clear();
    }
    let error = error.into_inner();
    let location = error.location().map(Location::from);
    let mut message = error.to_string();
    if let Some(at) = location
        && let Some(stripped) =
            message.strip_suffix(&format!(" at line {} column {}", at.line, at.column))
    {
        message = stripped.to_owned();
    }
    let message = strip_path_prefix(&message, &path);
    let message = serde_duplicate(message).unwrap_or_else(|| message.to_owned());
    let kind = classify(&message);
    // serde reports a missing or repeated field at the mapping that should
    // hold it: name the field itself.
    if matches!(
        kind,
        ResourceErrorKind::MissingField | ResourceErrorKind::DuplicateField
    ) && let Some(field) = quoted(&message)
    {
        path = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
    }
    ResourceError::new(kind, origin, message)
        .at_field(path)
        .at(location)
}

/// serde's words for a key written twice (`duplicate field `app``), for
/// serde_yaml_ng's own (`duplicate entry with key "app"`), which it uses
/// when a document is read into a tree to apply its merge keys.
fn serde_duplicate(message: &str) -> Option<String> {
    let rest = message.strip_prefix("duplicate entry with key \"")?;
    let (key, _) = rest.split_once('"')?;
    Some(format!("duplicate field `{key}`"))
}

/// A syntax error from the YAML parser.
pub(super) fn from_syntax(origin: &str, error: &serde_yaml_ng::Error) -> ResourceError {
    let location = error.location().map(Location::from);
    let mut message = error.to_string();
    if let Some(at) = location
        && let Some((problem, _)) =
            message.split_once(&format!(" at line {} column {}", at.line, at.column))
    {
        message = problem.to_owned();
    }
    ResourceError::new(ResourceErrorKind::Syntax, origin, message).at(location)
}

/// serde_yaml_ng writes the path it knows (the field path or an ancestor)
/// before its message.
fn strip_path_prefix<'t>(text: &'t str, path: &str) -> &'t str {
    let mut candidate = path;
    while !candidate.is_empty() {
        if let Some(rest) = text
            .strip_prefix(candidate)
            .and_then(|rest| rest.strip_prefix(": "))
        {
            return rest;
        }
        candidate = candidate
            .rfind(['.', '['])
            .map_or("", |end| &candidate[..end]);
    }
    text
}

/// serde's own messages for the mistakes it detects.
fn classify(message: &str) -> ResourceErrorKind {
    if message.starts_with("missing field") {
        ResourceErrorKind::MissingField
    } else if message.starts_with("duplicate field") {
        ResourceErrorKind::DuplicateField
    } else if message.starts_with("invalid type") {
        ResourceErrorKind::InvalidType
    } else {
        ResourceErrorKind::InvalidValue
    }
}

/// The first name between backticks: how serde quotes field names.
fn quoted(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    rest.split_once('`').map(|(name, _)| name)
}
