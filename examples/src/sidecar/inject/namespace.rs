//! The `kind: Namespace` objects of the input, and what their annotations
//! say for the workloads in them.
//!
//! Linkerd's injector reads a pod's Namespace: `linkerd.io/inject` there
//! meshes every pod in it, and `config.linkerd.io/*` there are the
//! defaults of its pods. Inject reads the Namespaces of its own input the
//! same way, whatever their place in it (a Namespace written after its
//! workloads decides for them too): `mesh.io/inject` and Linkerd's
//! `linkerd.io/inject` (see [`rule`]), the proxy resource
//! annotations (see [`resources`](super::resources)), the proxy settings
//! (see [`settings`](super::settings)) and the annotations
//! the sidecar does not read (see [`warning`]). A
//! Namespace that is not in the input is not seen. Two Namespaces of one
//! name that are written otherwise are an error naming both (see
//! [`Namespaces::read_all`]).
//!
//! A workload is in the Namespace its `metadata.namespace` names. One
//! without (or with an empty one) is in `default`, where `kubectl apply`
//! puts it when neither `-n` nor the context names another: it reads the
//! Namespace `default` of the input, if the input has one, and no other.
//! Applied elsewhere, such a workload should say where in its
//! `metadata.namespace` before it is injected.

use std::collections::BTreeMap;

use mesh_core::resource::{DocumentContext, ResourceError, ResourceErrorKind, locate};
use serde_yaml_ng::{Mapping, Value};

use super::{
    object::objects,
    resources::ResourceAnnotations,
    rule::{self, InjectMode},
    settings::SettingAnnotations,
    warning::{self, Found, Scope},
    yaml::{self, FieldPath, Problem},
};

/// The namespace of a workload without `metadata.namespace`.
const DEFAULT_NAMESPACE: &str = "default";

/// What one Namespace of the input says for its workloads.
#[derive(Debug)]
pub(super) struct Namespace {
    /// Its name.
    pub(super) name: String,
    /// Its `mesh.io/inject`.
    pub(super) mode: Option<InjectMode>,
    /// Its `linkerd.io/inject`, when that is a string.
    pub(super) linkerd_inject: Option<String>,
    /// Its proxy resource annotations.
    pub(super) resources: ResourceAnnotations,
    /// Its proxy setting annotations.
    pub(super) settings: SettingAnnotations,
    /// Its annotations the sidecar does not read.
    pub(super) unread: Found,
    /// The object, to tell a second one of its name written the same.
    object: Mapping,
    /// Where it is in the input, for an error about a second one.
    at: String,
}

/// The Namespaces of the input, by name.
#[derive(Debug, Default)]
pub(super) struct Namespaces {
    by_name: BTreeMap<String, Namespace>,
}

impl Namespaces {
    /// Reads every `v1` `kind: Namespace` object of `documents`, the
    /// documents of `text`.
    ///
    /// # Errors
    ///
    /// A Namespace's malformed metadata, or an annotation of it that is
    /// not valid (an unknown `mesh.io/inject`, a resource that is not a
    /// quantity), as an error of its own document.
    ///
    /// Two Namespaces of one name are an error at the later one's name,
    /// naming the earlier one's place, unless they are the same object
    /// written twice: `kubectl apply` would leave the later, and which of
    /// the two decides for the workloads in it would be a guess.
    pub(super) fn read_all(
        documents: &mut [(DocumentContext<'_>, Value)],
        text: &str,
    ) -> Result<Self, ResourceError> {
        let mut namespaces = Self::default();
        for (context, document) in documents {
            for object in objects(document).map_err(|p| p.into_error(text, context))? {
                if object.kind == "Namespace" && object.api_version == "v1" {
                    let mut at = format!("document {}", context.index());
                    if let Some(item) = object.item {
                        at.push_str(&format!(", items[{item}]"));
                    }
                    let name_path = object.path.key("metadata").key("name");
                    if let Some(line) = locate(text, context.index(), &name_path.to_string()) {
                        at.push_str(&format!(" (line {})", line.line));
                    }
                    // An item of a List is named by its own kind and name.
                    yaml::as_mapping(object.value, &object.path)
                        .and_then(|mapping| namespaces.read(mapping, &object.path, at))
                        .map_err(|p| object.name_in(p.into_error(text, context), context))?;
                }
            }
        }
        Ok(namespaces)
    }

    /// Records the Namespace `object`, at `path` of its document, and at
    /// `at` (`document 3, items[0] (line 12)`) of the input. One without
    /// a name is not recorded: no workload can name it.
    fn read(&mut self, object: &Mapping, path: &FieldPath, at: String) -> Result<(), Problem> {
        let meta_path = path.key("metadata");
        let metadata = yaml::mapping(object, "metadata", path)?;
        let mode = rule::mode(metadata, &meta_path)?;
        let resources = ResourceAnnotations::read(metadata, &meta_path)?;
        let settings = SettingAnnotations::read(metadata, &meta_path)?;
        let name = metadata
            .map(|m| yaml::string(m, "name", &meta_path))
            .transpose()?
            .flatten()
            .filter(|name| !name.is_empty());
        let Some(name) = name else {
            return Ok(());
        };
        if let Some(earlier) = self.by_name.get(name) {
            if earlier.object == *object {
                return Ok(());
            }
            return Err(Problem::new(
                ResourceErrorKind::InvalidValue,
                meta_path.key("name"),
                format!(
                    "Namespace {name:?} is also at {}, written otherwise: kubectl apply \
                     would leave this later one, and which of the two decides for the \
                     workloads in it would be a guess; keep one, or write both the same",
                    earlier.at,
                ),
            ));
        }
        let namespace = Namespace {
            object: object.clone(),
            at,
            name: name.to_owned(),
            mode,
            linkerd_inject: rule::linkerd_inject(metadata).map(str::to_owned),
            resources,
            settings,
            unread: Found::read(
                warning::object_name("Namespace", None, name),
                metadata,
                &meta_path,
                Scope::Pod,
            ),
        };
        self.by_name.insert(name.to_owned(), namespace);
        Ok(())
    }

    /// The Namespace of the input that a workload whose
    /// `metadata.namespace` is `namespace` is in, if the input has it.
    pub(super) fn of(&self, namespace: Option<&str>) -> Option<&Namespace> {
        let name = namespace
            .filter(|name| !name.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE);
        self.by_name.get(name)
    }
}
