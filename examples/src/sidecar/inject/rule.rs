//! Whether a workload is injected, and how: the `mesh.io/inject`
//! annotation, `enabled`, `ingress` or `disabled`.
//!
//! The nearest annotation decides: the pod template's, else the
//! workload's, else its Namespace's (a `kind: Namespace` document in the
//! same input, matched by `metadata.namespace`). Without any, the workload
//! is injected: what is passed to `inject` is what the user wants meshed,
//! as with `linkerd inject`. `ingress` injects a sidecar in ingress mode
//! (Linkerd's `linkerd.io/inject: ingress`), for an ingress controller.

use std::collections::BTreeMap;

use mesh_core::resource::ResourceErrorKind;
use serde_yaml_ng::Mapping;

use super::{
    DisabledBy,
    workload::WorkloadKind,
    yaml::{self, FieldPath, Problem},
};

/// The annotation that asks for, or against, injection.
pub const INJECT_ANNOTATION: &str = "mesh.io/inject";

/// A value of `mesh.io/inject`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InjectMode {
    Enabled,
    /// Injected, with the sidecar in ingress mode.
    Ingress,
    Disabled,
}

/// The sidecar a workload gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProxyMode {
    /// Routing by authority, as its configuration file says.
    Sidecar,
    /// In ingress mode whatever its configuration file says: routing by
    /// the destination override an ingress controller sets (the
    /// container's environment turns it on, as Linkerd's injector does).
    Ingress,
}

/// The `mesh.io/inject` of each Namespace in the input, by name.
#[derive(Debug, Default)]
pub(super) struct Namespaces(BTreeMap<String, InjectMode>);

impl Namespaces {
    /// Records a `kind: Namespace` object at `path`.
    pub(super) fn read(&mut self, object: &Mapping, path: &FieldPath) -> Result<(), Problem> {
        let meta_path = path.key("metadata");
        let metadata = yaml::mapping(object, "metadata", path)?;
        let name = metadata
            .map(|m| yaml::string(m, "name", &meta_path))
            .transpose()?
            .flatten();
        if let (Some(name), Some(mode)) = (name, mode(metadata, &meta_path)?) {
            self.0.insert(name.to_owned(), mode);
        }
        Ok(())
    }
}

/// The `mesh.io/inject` annotation of `metadata` (at `path`), if set.
pub(super) fn mode(
    metadata: Option<&Mapping>,
    path: &FieldPath,
) -> Result<Option<InjectMode>, Problem> {
    let Some(metadata) = metadata else {
        return Ok(None);
    };
    let annotations_path = path.key("annotations");
    let Some(annotations) = yaml::mapping(metadata, "annotations", path)? else {
        return Ok(None);
    };
    match yaml::string(annotations, INJECT_ANNOTATION, &annotations_path)? {
        None => Ok(None),
        Some("enabled") => Ok(Some(InjectMode::Enabled)),
        Some("ingress") => Ok(Some(InjectMode::Ingress)),
        Some("disabled") => Ok(Some(InjectMode::Disabled)),
        Some(other) => Err(Problem::new(
            ResourceErrorKind::InvalidValue,
            annotations_path.key(INJECT_ANNOTATION),
            format!(
                "{INJECT_ANNOTATION} is \"enabled\", \"ingress\" or \"disabled\", not {other:?}"
            ),
        )),
    }
}

/// The sidecar to inject, or what disables injection.
pub(super) fn decide(
    kind: WorkloadKind,
    template: Option<InjectMode>,
    workload: Option<InjectMode>,
    namespace: Option<&str>,
    namespaces: &Namespaces,
) -> Result<ProxyMode, DisabledBy> {
    let own = if kind == WorkloadKind::Pod {
        DisabledBy::Pod
    } else {
        DisabledBy::Workload
    };
    let from_namespace = namespace.and_then(|name| {
        let mode = namespaces.0.get(name)?;
        Some((*mode, DisabledBy::Namespace(name.to_owned())))
    });
    let nearest = template
        .map(|mode| (mode, DisabledBy::PodTemplate))
        .or(workload.map(|mode| (mode, own)))
        .or(from_namespace);
    match nearest {
        Some((InjectMode::Disabled, by)) => Err(by),
        Some((InjectMode::Ingress, _)) => Ok(ProxyMode::Ingress),
        Some((InjectMode::Enabled, _)) | None => Ok(ProxyMode::Sidecar),
    }
}
