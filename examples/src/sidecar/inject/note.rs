//! What inject did to each object, for standard error.

use std::{
    borrow::Cow,
    fmt::{self, Write as _},
};

use mesh_core::resource::ResourceName;

use super::{
    rule::{INJECT_ANNOTATION, LINKERD_INJECT_ANNOTATION as LINKERD_INJECT},
    unproxied::UnproxiedPort,
    warning::Warning,
};

/// What was done to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sidecar was added, or brought up to date.
    Injected,
    /// The object already held the sidecar this configuration adds.
    AlreadyInjected,
    /// `mesh.io/inject: disabled` kept the workload out.
    Disabled(DisabledBy),
    /// The pod uses the host's network (`hostNetwork: true`), where its
    /// sidecar would listen on the node's own ports. The input is refused
    /// ([`InjectError::Refused`](super::InjectError::Refused)), as
    /// `linkerd inject` refuses it.
    HostNetwork,
    /// The pod has another mesh's proxy, or Linkerd's injector will add
    /// one (`linkerd.io/inject: enabled`): the two proxies would want the
    /// same ports. The input is refused, as `linkerd inject` refuses a pod
    /// with a known sidecar. The text says what showed it, such as
    /// `container linkerd-proxy` or `linkerd.io/inject: enabled on the pod
    /// template`.
    OtherProxy(String),
    /// The object is not a workload; it passed through unchanged.
    NotAWorkload,
}

/// Where the `mesh.io/inject: disabled` that decided was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisabledBy {
    /// The pod's own metadata (a `Pod`).
    Pod,
    /// The workload's pod template.
    PodTemplate,
    /// The workload's own metadata.
    Workload,
    /// The `Namespace` of this name, in the same input.
    Namespace(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Injected => f.write_str("injected"),
            Self::AlreadyInjected => f.write_str("already injected, unchanged"),
            Self::Disabled(by) => {
                write!(f, "not injected: {INJECT_ANNOTATION} is disabled on {by}")
            }
            Self::HostNetwork => write!(
                f,
                "cannot inject: the pod uses the host's network (hostNetwork: true), \
                 where the sidecar would take the node's ports; \
                 {INJECT_ANNOTATION}: disabled leaves it out"
            ),
            Self::OtherProxy(by) if by.starts_with(LINKERD_INJECT) => write!(
                f,
                "cannot inject: another mesh's proxy is in the pod or will be ({by}), \
                 and would take the sidecar's ports; take {LINKERD_INJECT} off to move it \
                 to this mesh, or set {INJECT_ANNOTATION}: disabled to leave it to Linkerd"
            ),
            Self::OtherProxy(by) => write!(
                f,
                "cannot inject: another mesh's proxy is in the pod or will be ({by}), \
                 and would take the sidecar's ports; {INJECT_ANNOTATION}: disabled \
                 leaves it out"
            ),
            Self::NotAWorkload => f.write_str("not a workload, passed through unchanged"),
        }
    }
}

impl fmt::Display for DisabledBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pod => f.write_str("the pod"),
            Self::PodTemplate => f.write_str("the pod template"),
            Self::Workload => f.write_str("the workload"),
            Self::Namespace(name) => write!(f, "namespace {name}"),
        }
    }
}

/// What was done to one object of the input, such as
/// `emojivoto.yaml: document 1, items[2] (Deployment emojivoto/web): injected`,
/// what its sidecar does not follow, and which of its ports it does not
/// proxy.
///
/// Displayed, it is that line and then a line for each warning, with the
/// same start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where the input came from.
    pub origin: String,
    /// The document, from 1.
    pub document: usize,
    /// The item of a `kind: List` document, from 0: for an object of a
    /// list within that list, the item that list is.
    pub item: Option<usize>,
    /// The object's `kind`.
    pub kind: String,
    /// The object's `metadata.name`, when it has one.
    pub name: Option<String>,
    /// The object's `metadata.namespace`, when it has one: the note names
    /// the object as kubectl does (`Deployment emojivoto/web`), as the
    /// errors about it do. A value that is no namespace (not a DNS-1123
    /// label) is not shown.
    pub namespace: Option<String>,
    /// What was done.
    pub outcome: Outcome,
    /// The Linkerd annotations over an injected workload that its
    /// sidecar does not follow. Empty for an object not injected.
    pub warnings: Vec<Warning>,
    /// The ports an injected workload's containers declare over UDP or
    /// SCTP, which its sidecar does not proxy. Empty for an object not
    /// injected.
    pub unproxied: Vec<UnproxiedPort>,
}

impl Note {
    /// The start of each line: where the object is, and what it is.
    fn place(&self, line: &mut String) -> fmt::Result {
        write!(line, "{}: document {}", self.origin, self.document)?;
        if let Some(item) = self.item {
            write!(line, ", items[{item}]")?;
        }
        let named = ResourceName::new(
            Some(&self.kind),
            self.namespace.as_deref(),
            self.name.as_deref(),
        );
        write!(line, " ({named}): ")
    }

    /// One line: the place, then `what`, its control characters escaped.
    fn line(&self, f: &mut fmt::Formatter<'_>, what: &dyn fmt::Display) -> fmt::Result {
        let mut line = String::new();
        self.place(&mut line)?;
        write!(line, "{what}")?;
        f.write_str(&printable(&line))
    }
}

impl fmt::Display for Note {
    /// The note's lines. Names, kinds and namespaces are the input's, and
    /// a manifest from anywhere may hold an escape sequence that would act
    /// on the terminal (clear it, set its title) or a newline that would
    /// forge a note: each control character is written as `\u{1b}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.line(f, &self.outcome)?;
        for warning in &self.warnings {
            f.write_str("\n")?;
            self.line(f, warning)?;
        }
        for port in &self.unproxied {
            f.write_str("\n")?;
            self.line(f, port)?;
        }
        Ok(())
    }
}

/// `text` with its control characters (C0, DEL, C1) written as `\u{1b}`,
/// as the views write text a peer chose.
pub(super) fn printable(text: &str) -> Cow<'_, str> {
    if !text.contains(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            // Writing to a String cannot fail.
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}
