//! What a policy did not enforce, said once and by name.

use std::fmt;

use mesh_core::resource::{DocumentContext, IgnoredField, OtherResource, ResourceName};

/// Everything in a set of policy documents that is read but not enforced:
/// kinds authorization does not use, fields it does not support, filters
/// it does not apply. One value, so a caller logs it once per load; each
/// entry names the document, the resource and the field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyWarnings {
    warnings: Vec<PolicyWarning>,
}

impl PolicyWarnings {
    /// No warnings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is nothing to warn about.
    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty()
    }

    /// How many warnings there are.
    pub fn len(&self) -> usize {
        self.warnings.len()
    }

    /// The warnings, in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, PolicyWarning> {
        self.warnings.iter()
    }

    pub(crate) fn push(&mut self, warning: PolicyWarning) {
        self.warnings.push(warning);
    }

    pub(crate) fn other_kind(&mut self, other: OtherResource) {
        self.push(PolicyWarning {
            kind: WarningKind::UnsupportedKind,
            origin: other.origin,
            document: other.document,
            resource_kind: other.kind.clone(),
            namespace: other.namespace,
            name: other.name,
            field_path: String::new(),
            message: format!(
                "kind {} ({}) is not enforced by authorization",
                other.kind, other.api_version
            ),
        });
    }

    pub(crate) fn ignored_field(&mut self, field: IgnoredField) {
        self.push(PolicyWarning {
            kind: WarningKind::IgnoredField,
            origin: field.origin,
            document: field.document,
            resource_kind: field.kind,
            namespace: field.namespace,
            name: field.name,
            field_path: field.path,
            message: "field is not supported and was ignored".to_owned(),
        });
    }

    pub(crate) fn about(
        &mut self,
        kind: WarningKind,
        context: &DocumentContext<'_>,
        field_path: &str,
        message: impl Into<String>,
    ) {
        self.push(PolicyWarning {
            kind,
            origin: context.origin().to_owned(),
            document: context.index(),
            resource_kind: context.kind().to_owned(),
            namespace: context.namespace().map(str::to_owned),
            name: context.name().map(str::to_owned),
            field_path: field_path.to_owned(),
            message: message.into(),
        });
    }
}

impl<'a> IntoIterator for &'a PolicyWarnings {
    type Item = &'a PolicyWarning;
    type IntoIter = std::slice::Iter<'a, PolicyWarning>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for PolicyWarnings {
    /// One line per warning, after a count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.warnings.len() {
            0 => f.write_str("no warnings"),
            1 => write!(f, "1 warning: {}", self.warnings[0]),
            n => {
                write!(f, "{n} warnings:")?;
                for w in &self.warnings {
                    write!(f, "\n  - {w}")?;
                }
                Ok(())
            }
        }
    }
}

/// One thing that was read but is not enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWarning {
    /// What kind of warning.
    pub kind: WarningKind,
    /// Where the text came from.
    pub origin: String,
    /// The document, from 1.
    pub document: usize,
    /// The resource's kind.
    pub resource_kind: String,
    /// The resource's namespace, when its document names one. Shown, as
    /// kubectl shows it, before the name (`Server shop/web`), so that
    /// resources of one name in two namespaces are told apart; a value
    /// that is not a namespace (not a DNS-1123 label) is not shown.
    pub namespace: Option<String>,
    /// The resource's name.
    pub name: Option<String>,
    /// The field, when the warning is about one.
    pub field_path: String,
    /// What is not enforced, and what happens instead.
    pub message: String,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Named as errors about the same document name it.
        let resource = ResourceName::new(
            Some(&self.resource_kind),
            self.namespace.as_deref(),
            self.name.as_deref(),
        );
        write!(
            f,
            "{}: document {} ({resource}): ",
            self.origin, self.document
        )?;
        if !self.field_path.is_empty() {
            write!(f, "{}: ", self.field_path)?;
        }
        f.write_str(&self.message)
    }
}

/// What a [`PolicyWarning`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// A kind authorization does not enforce, such as `ServiceProfile`.
    UnsupportedKind,
    /// A field that is not supported.
    IgnoredField,
    /// An `HTTPRoute` filter that inbound policy does not apply: any but
    /// `RequestHeaderModifier`, `ResponseHeaderModifier` and
    /// `RequestRedirect`.
    UnsupportedFilter,
    /// Something read but not applied here, such as a route's timeouts, or
    /// a route whose parent is not a Server.
    NotApplied,
    /// An `apiVersion` Linkerd does not serve, read as the one it does.
    UnservedVersion,
    /// A place where this reader knowingly differs from Linkerd.
    Deviation,
}
