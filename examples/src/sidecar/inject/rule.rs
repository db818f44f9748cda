//! Whether a workload is injected, and how: the `mesh.io/inject`
//! annotation, `enabled`, `ingress` or `disabled`.
//!
//! The nearest annotation decides: the pod template's, else the
//! workload's, else its Namespace's (a `kind: Namespace` document in the
//! same input, see [`Namespaces`](super::namespace::Namespaces)). Without
//! any, the workload is injected: what is passed to `inject` is what the
//! user wants meshed, as with `linkerd inject`. `ingress` injects a sidecar in ingress mode
//! (Linkerd's `linkerd.io/inject: ingress`), for an ingress controller.
//!
//! A pod that has another mesh's proxy, or that Linkerd's injector will
//! give one, is left out whatever `mesh.io/inject` says (see
//! [`other_proxy`]).

use mesh_core::resource::ResourceErrorKind;
use serde_yaml_ng::Mapping;

use super::{
    DisabledBy,
    namespace::Namespace,
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

/// Linkerd's annotation: its injector adds its proxy to a pod whose
/// nearest `linkerd.io/inject` (the pod's, else its namespace's) is
/// `enabled` or `ingress`.
pub(super) const LINKERD_INJECT_ANNOTATION: &str = "linkerd.io/inject";

/// The containers of other meshes: Linkerd's and Istio's proxies, and the
/// init containers that redirect a pod's traffic to them.
const OTHER_PROXIES: &[&str] = &["linkerd-proxy", "linkerd-init", "istio-proxy", "istio-init"];

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
    namespace: Option<&Namespace>,
) -> Result<ProxyMode, DisabledBy> {
    let own = if kind == WorkloadKind::Pod {
        DisabledBy::Pod
    } else {
        DisabledBy::Workload
    };
    let from_namespace = namespace.and_then(|namespace| {
        let mode = namespace.mode?;
        Some((mode, DisabledBy::Namespace(namespace.name.clone())))
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

/// The `linkerd.io/inject` of `metadata`, when it is a string.
pub(super) fn linkerd_inject(metadata: Option<&Mapping>) -> Option<&str> {
    metadata?
        .get("annotations")?
        .get(LINKERD_INJECT_ANNOTATION)?
        .as_str()
}

/// What shows that the pod `template` (a pod, for `kind` `Pod`) of a
/// workload in the Namespace `namespace` (of the input) has another mesh's proxy, or will be given
/// Linkerd's: a container of [`OTHER_PROXIES`], or a `linkerd.io/inject`
/// that enables Linkerd's injector. `None` when nothing does.
///
/// Linkerd's proxy listens on the sidecar's own ports, 4143, 4140 and
/// 4191: of two proxies in one pod, one cannot bind and the pod never
/// becomes ready. `linkerd inject` does not inject a pod with a known
/// sidecar either (it fails on one).
pub(super) fn other_proxy(
    template: &Mapping,
    kind: WorkloadKind,
    namespace: Option<&Namespace>,
) -> Option<String> {
    let spec = template.get("spec");
    for (key, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(list) = spec.and_then(|spec| spec.get(key)?.as_sequence()) else {
            continue;
        };
        let other = list
            .iter()
            .filter_map(|container| container.get("name")?.as_str())
            .find(|name| OTHER_PROXIES.contains(name));
        if let Some(name) = other {
            return Some(format!("{what} {name}"));
        }
    }
    let on_pod = if kind == WorkloadKind::Pod {
        "the pod"
    } else {
        "the pod template"
    };
    let metadata = template.get("metadata").and_then(|m| m.as_mapping());
    let (value, on) = match linkerd_inject(metadata) {
        Some(value) => (value, on_pod.to_owned()),
        None => {
            let namespace = namespace?;
            (
                namespace.linkerd_inject.as_deref()?,
                format!("namespace {}", namespace.name),
            )
        }
    };
    matches!(value, "enabled" | "ingress")
        .then(|| format!("{LINKERD_INJECT_ANNOTATION}: {value} on {on}"))
}
