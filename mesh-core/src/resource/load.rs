//! Reading a multi-document YAML text one document at a time.

use std::fmt;

use serde::{Deserialize, de::DeserializeOwned, de::IgnoredAny};

use super::{
    aliases::check_yaml_aliases,
    error::{self, ResourceError, ResourceErrorKind},
    ignored::{IgnoredField, field_path, is_server_set, write_document},
    locate::locate,
    merge::{apply_merge_keys, locate_nearest},
    meta::{ApiVersion, Envelope, is_namespace},
    shape::check_yaml_shape,
};

/// A resource type that can be read from a document: its `kind` and the
/// `apiVersion`s it is read at.
pub trait Resource: DeserializeOwned {
    /// The `kind` the type reads, such as `HTTPRoute`.
    const KIND: &'static str;

    /// The `apiVersion`s the type reads, such as
    /// `gateway.networking.k8s.io/v1`.
    const API_VERSIONS: &'static [&'static str];
}

/// The documents of a multi-document YAML text, in order.
///
/// Each item is a [`Document`] whose [`Envelope`] (`apiVersion`, `kind`,
/// name) has been read, and whose body the caller reads as the type its
/// kind calls for. Empty documents (a stray `---`, comments only) are
/// skipped but still counted, so document numbers match what an editor
/// shows between separators. The first error ends the iteration.
///
/// The text is parsed in lockstep by two parsers, one document at a time:
/// one reads the envelope and one is handed to the caller. So each
/// document is parsed twice, however many documents there are (three
/// times, with the count of what its aliases stand for that comes first),
/// and errors keep their absolute lines. The parser reports a syntax error only
/// once a document has been read without another error, so an envelope
/// that reads is also a document without one; only when the envelope
/// fails is the document parsed a third time, to tell a syntax error
/// (which may be what left a field missing) from a bad envelope.
///
/// A text that [`check_yaml_shape`] refuses (too large, or nested too
/// deep for the parser to read it quickly) is not parsed at all, nor is
/// one that [`check_yaml_aliases`] refuses (aliases that stand for far
/// more values than the text holds): its error is the first and only
/// item.
pub struct Documents<'t> {
    origin: &'t str,
    text: &'t str,
    /// What the parsers read: `text`, or nothing when it is refused.
    parsed: &'t str,
    envelopes: serde_yaml_ng::Deserializer<'t>,
    bodies: serde_yaml_ng::Deserializer<'t>,
    index: usize,
    refused: Option<ResourceError>,
    done: bool,
}

impl<'t> Documents<'t> {
    /// The documents of `text`. `origin` (a file name, say) names the text in
    /// errors.
    pub fn new(origin: &'t str, text: &'t str) -> Self {
        // A byte order mark, which some editors write before every file,
        // starts a YAML stream but is no part of its first document (YAML
        // 1.2 §5.2); left in, the parser reads it as the start of a key.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // A refused text is not handed to the parsers: each reads it only
        // as far as it is asked to. The shape first, which bounds the
        // parser's own work; then what the aliases stand for, which bounds
        // what reading a document builds.
        let checked =
            check_yaml_shape(origin, text).and_then(|()| check_yaml_aliases(origin, text));
        let (refused, parsed) = match checked {
            Ok(()) => (None, text),
            Err(e) => (Some(e), ""),
        };
        Self {
            origin,
            text,
            parsed,
            envelopes: serde_yaml_ng::Deserializer::from_str(parsed),
            bodies: serde_yaml_ng::Deserializer::from_str(parsed),
            index: 0,
            refused,
            done: false,
        }
    }

    /// The syntax error in document `index` (from 1), if it has one. The
    /// text is parsed again up to it: this runs once, on the error that
    /// ends the iteration.
    fn syntax_error(&self, index: usize) -> Option<serde_yaml_ng::Error> {
        let document = serde_yaml_ng::Deserializer::from_str(self.parsed).nth(index - 1)?;
        IgnoredAny::deserialize(document).err()
    }

    /// The `kind`, `metadata.namespace` and `metadata.name` of document
    /// `index` (from 1), where each is a string and the kind is one, for
    /// the error of an envelope that did not read (`apiVersion` missing, a
    /// name or namespace that is a list): the document is still named as
    /// far as it names itself. The text is parsed again up to it, once, on
    /// the error that ends the iteration.
    fn loose_names(&self, index: usize) -> LooseNames {
        let Some(document) = serde_yaml_ng::Deserializer::from_str(self.parsed).nth(index - 1)
        else {
            return LooseNames::default();
        };
        let Ok(tree) = serde_yaml_ng::Value::deserialize(document) else {
            return LooseNames::default();
        };
        let string = |value: Option<&serde_yaml_ng::Value>| {
            value
                .and_then(serde_yaml_ng::Value::as_str)
                .map(str::to_owned)
        };
        let Some(kind) = string(tree.get("kind")) else {
            // Named by none: a name or namespace alone could be any kind's.
            return LooseNames::default();
        };
        let meta = |field: &str| string(tree.get("metadata").and_then(|meta| meta.get(field)));
        LooseNames {
            kind: Some(kind),
            namespace: meta("namespace"),
            name: meta("name"),
        }
    }

    fn next_document(&mut self) -> Option<Result<Document<'t>, ResourceError>> {
        if let Some(refused) = self.refused.take() {
            return Some(Err(refused));
        }
        loop {
            let (envelope, body) = (self.envelopes.next()?, self.bodies.next()?);
            self.index += 1;
            let index = self.index;
            let envelope: Option<Envelope> = match serde_path_to_error::deserialize(envelope) {
                Ok(envelope) => envelope,
                Err(e) => {
                    let error = match self.syntax_error(index) {
                        Some(syntax) => {
                            error::from_syntax(self.origin, &syntax).in_document(index, None, None)
                        }
                        None => {
                            let names = self.loose_names(index);
                            error::from_serde(self.origin, e)
                                .in_document(index, names.kind.as_deref(), names.name.as_deref())
                                .in_namespace(names.namespace.as_deref())
                        }
                    };
                    return Some(Err(error));
                }
            };
            let Some(envelope) = envelope else { continue };
            let context = DocumentContext {
                origin: self.origin,
                text: self.text,
                index,
                kind: envelope.kind.clone(),
                namespace: envelope
                    .metadata
                    .namespace
                    .clone()
                    .filter(|namespace| is_namespace(namespace)),
                name: envelope.metadata.name.clone(),
            };
            return Some(Ok(Document {
                context,
                envelope,
                body,
            }));
        }
    }
}

/// What a document whose envelope did not read says of itself.
#[derive(Default)]
struct LooseNames {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl<'t> Iterator for Documents<'t> {
    type Item = Result<Document<'t>, ResourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_document();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

impl fmt::Debug for Documents<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Documents")
            .field("origin", &self.origin)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// One document whose envelope has been read.
pub struct Document<'t> {
    context: DocumentContext<'t>,
    envelope: Envelope,
    body: serde_yaml_ng::Deserializer<'t>,
}

impl<'t> Document<'t> {
    /// The document's number, from 1.
    pub fn index(&self) -> usize {
        self.context.index
    }

    /// Its `apiVersion`, `kind`, name and namespace.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Its `kind`.
    pub fn kind(&self) -> &str {
        &self.envelope.kind
    }

    /// Its `apiVersion`.
    pub fn api_version(&self) -> &ApiVersion {
        &self.envelope.api_version
    }

    /// Its `metadata.name`, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.envelope.metadata.name.as_deref()
    }

    /// Its `metadata.namespace`, when it has one that is a namespace (see
    /// [`DocumentContext::namespace`]).
    pub fn namespace(&self) -> Option<&str> {
        self.context.namespace()
    }

    /// Where the document is, for errors found later.
    pub fn context(&self) -> &DocumentContext<'t> {
        &self.context
    }

    /// Whether the document's kind is `T`'s, whatever its version.
    pub fn is<T: Resource>(&self) -> bool {
        self.envelope.kind == T::KIND
    }

    /// Reads the document as `T`, after checking its `apiVersion` is one
    /// `T` reads.
    ///
    /// # Errors
    ///
    /// [`UnsupportedVersion`](ResourceErrorKind::UnsupportedVersion) for an
    /// `apiVersion` not in `T::API_VERSIONS`; otherwise as
    /// [`parse`](Self::parse).
    pub fn read<T: Resource>(self) -> Result<Parsed<'t, T>, ResourceError> {
        let version = self.envelope.api_version.as_str();
        if !T::API_VERSIONS.contains(&version) {
            let message = format!(
                "{} is not read at apiVersion {version}; it is read at {}",
                T::KIND,
                T::API_VERSIONS.join(", ")
            );
            return Err(self.context.error(
                ResourceErrorKind::UnsupportedVersion,
                "apiVersion",
                message,
            ));
        }
        self.parse()
    }

    /// Reads the whole document (`apiVersion`, `kind`, `metadata` and the
    /// rest) as `T`, collecting the fields `T` does not read.
    ///
    /// # Errors
    ///
    /// A [`ResourceError`] naming the document, its kind and name, the
    /// field path and the line: a missing required field, a value of the
    /// wrong type, or a value `T` rejects.
    pub fn parse<T: DeserializeOwned>(self) -> Result<Parsed<'t, T>, ResourceError> {
        let context = self.context;
        let mut ignored = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| {
            let path = field_path(&path);
            if !is_server_set(&path) {
                ignored.push(IgnoredField {
                    origin: context.origin.to_owned(),
                    document: context.index,
                    kind: context.kind.clone(),
                    namespace: context.namespace.clone(),
                    name: context.name.clone(),
                    path,
                });
            }
        };
        let in_document = |e: ResourceError| context.name_error(e);
        let value = if has_merge_key(context.text) {
            // Kubernetes' YAML reader applies merge keys (`<<: *defaults`),
            // so manifests use them; serde reads `<<` as one more field.
            // The document is read whole, the merges applied (chained ones
            // too, see `apply_merge_keys`), and the result read as `T`.
            // The tree has no lines: an error is located by its field's
            // path instead.
            let mut tree: serde_yaml_ng::Value = serde_path_to_error::deserialize(self.body)
                .map_err(|e| in_document(error::from_serde(context.origin, e)))?;
            apply_merge_keys(&mut tree).map_err(|e| {
                in_document(
                    ResourceError::new(
                        ResourceErrorKind::InvalidValue,
                        context.origin,
                        e.to_string(),
                    )
                    .at_field(e.mapping())
                    .at(locate(context.text, context.index, &e.key_path())),
                )
            })?;
            let tracking = serde_ignored::Deserializer::new(tree, &mut record);
            serde_path_to_error::deserialize(tracking).map_err(|e| {
                let error = error::from_serde(context.origin, e);
                // A value merged in is not written at its path: the
                // mapping nearest to it that is, the one whose `<<`
                // brought it, is where to look.
                let at = error
                    .location()
                    .or_else(|| locate_nearest(context.text, context.index, error.field_path()));
                in_document(error.at(at))
            })?
        } else {
            let tracking = serde_ignored::Deserializer::new(self.body, &mut record);
            serde_path_to_error::deserialize(tracking)
                .map_err(|e| in_document(error::from_serde(context.origin, e)))?
        };
        Ok(Parsed {
            value,
            ignored,
            context,
        })
    }

    /// Reads the whole document as a YAML tree as it is written: its merge
    /// keys (`<<`) are left in, to apply with
    /// [`apply_merge_keys`](super::apply_merge_keys).
    ///
    /// Why: a reader that walks the tree alongside the text (as `sidecar
    /// inject` does, to read plain scalars as YAML 1.1 reads them) needs
    /// the mappings to hold the keys the text writes, in its order;
    /// [`parse`](Self::parse) has already merged them.
    ///
    /// # Errors
    ///
    /// A [`ResourceError`] naming the document and the line, for a key
    /// written twice in one mapping.
    pub fn into_tree(self) -> Result<Parsed<'t, serde_yaml_ng::Value>, ResourceError> {
        let context = self.context;
        let value = serde_path_to_error::deserialize(self.body)
            .map_err(|e| context.name_error(error::from_serde(context.origin, e)))?;
        Ok(Parsed {
            value,
            ignored: Vec::new(),
            context,
        })
    }

    /// The document as a resource that was not read, for a warning.
    pub fn into_other(self) -> OtherResource {
        OtherResource {
            origin: self.context.origin.to_owned(),
            document: self.context.index,
            api_version: self.envelope.api_version,
            kind: self.envelope.kind,
            namespace: self.context.namespace,
            name: self.envelope.metadata.name,
        }
    }
}

impl fmt::Debug for Document<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("context", &self.context)
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

/// Where a document is: enough to build a [`ResourceError`] about it, with
/// the line of a field, after it has been read.
#[derive(Clone, Debug)]
pub struct DocumentContext<'t> {
    origin: &'t str,
    text: &'t str,
    index: usize,
    kind: String,
    /// `metadata.namespace`, when it is a namespace.
    namespace: Option<String>,
    name: Option<String>,
}

impl DocumentContext<'_> {
    /// Where the text came from.
    pub fn origin(&self) -> &str {
        self.origin
    }

    /// The document's number, from 1.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The document's `kind`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The document's `metadata.name`, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The document's `metadata.namespace`, when it has one that is a
    /// namespace: a DNS-1123 label, as Kubernetes requires. Any other
    /// value (`Shop`, `a/b`) names no namespace, is not shown where errors
    /// and warnings name the resource, and is refused, quoted, when the
    /// document is read as a type with [`ObjectMeta`](super::ObjectMeta).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// `error`, naming this document: its number, kind, namespace and
    /// name.
    pub fn name_error(&self, error: ResourceError) -> ResourceError {
        error
            .in_document(self.index, Some(&self.kind), self.name.as_deref())
            .in_namespace(self.namespace.as_deref())
    }

    /// An error about the field at `field_path` (such as
    /// `spec.networks[0].cidr`) of this document, with its line when the
    /// field is written in the text.
    pub fn error(
        &self,
        kind: ResourceErrorKind,
        field_path: &str,
        message: impl Into<String>,
    ) -> ResourceError {
        self.name_error(ResourceError::new(kind, self.origin, message))
            .at_field(field_path)
            .at(locate(self.text, self.index, field_path))
    }
}

/// Whether `text` may hold a YAML merge key (`<<`): it does not when the
/// two characters appear nowhere in it.
fn has_merge_key(text: &str) -> bool {
    text.contains("<<")
}

/// A document read as `T`.
#[derive(Debug)]
pub struct Parsed<'t, T> {
    /// The resource.
    pub value: T,
    /// The fields of the document that `T` does not read, to warn about.
    pub ignored: Vec<IgnoredField>,
    /// Where the document is, for errors found later.
    pub context: DocumentContext<'t>,
}

/// A document of a kind the reader does not read, kept so it can be named
/// in a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherResource {
    /// Where the text came from.
    pub origin: String,
    /// The document's number, from 1.
    pub document: usize,
    /// Its `apiVersion`.
    pub api_version: ApiVersion,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.namespace`, when it has one that is a namespace (see
    /// [`DocumentContext::namespace`]).
    pub namespace: Option<String>,
    /// Its `metadata.name`, when it has one.
    pub name: Option<String>,
}

impl fmt::Display for OtherResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_document(
            f,
            &self.origin,
            self.document,
            &self.kind,
            self.namespace.as_deref(),
            self.name.as_deref(),
        )?;
        write!(f, ", {})", self.api_version)
    }
}

/// The resources of one kind read from a text, and what was not read.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The resources of kind `T::KIND`, in document order.
    pub resources: Vec<T>,
    /// Documents of other kinds.
    pub other: Vec<OtherResource>,
    /// Fields of the resources that were not read.
    pub ignored: Vec<IgnoredField>,
}

/// Reads every document of kind `T::KIND` in `text`, and lists the others.
///
/// # Errors
///
/// The first malformed document: a syntax error anywhere, or a document of
/// kind `T::KIND` that `T` cannot read. Documents of other kinds are not
/// checked beyond their envelope.
pub fn load<T: Resource>(origin: &str, text: &str) -> Result<Loaded<T>, ResourceError> {
    let mut loaded = Loaded {
        resources: Vec::new(),
        other: Vec::new(),
        ignored: Vec::new(),
    };
    for document in Documents::new(origin, text) {
        let document = document?;
        if document.is::<T>() {
            let parsed = document.read::<T>()?;
            loaded.resources.push(parsed.value);
            loaded.ignored.extend(parsed.ignored);
        } else {
            loaded.other.push(document.into_other());
        }
    }
    Ok(loaded)
}
