//! Names and references between resources: namespaces, duplicates,
//! lookups, and what an authorization applies to.

use std::{collections::HashMap, sync::Arc};

use mesh_core::resource::{ObjectMeta, ResourceError, ResourceErrorKind as Kind};

use super::Authz;
use crate::{
    Workload,
    resource::{Entry, Network, read::error},
};

/// The namespace of a resource: its own, or the workload's.
pub(super) fn ns<'a>(meta: &'a ObjectMeta, workload: &'a Workload) -> &'a str {
    meta.namespace_or(&workload.namespace)
}

/// The namespace a reference names: its `namespace`, or the referring
/// resource's when that is absent or empty. Linkerd's CRDs say so of every
/// namespaced reference ("unspecified or empty string" is the local
/// namespace), so `namespace: ""` is no namespace named "".
pub(super) fn ref_namespace<'a>(written: Option<&'a str>, own: &'a str) -> &'a str {
    written.filter(|n| !n.is_empty()).unwrap_or(own)
}

/// The one of `kinds` that a reference's `kind` names, whatever its case:
/// Linkerd's policy controller compares kinds so (`targets_kind`), and
/// would serve `kind: server` as a Server.
pub(super) fn known_kind(written: &str, kinds: &[&'static str]) -> Option<&'static str> {
    kinds
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(written))
}

/// Fails on the second resource of a kind with a namespace and name taken.
/// The kind is the document's and its API group's: an `HTTPRoute` and a
/// `GRPCRoute` may share a name, as may an `HTTPRoute` of
/// `policy.linkerd.io` and one of the Gateway API, as in Kubernetes.
pub(super) fn check_duplicates<T>(
    entries: &[Entry<'_, T>],
    meta: impl Fn(&T) -> &ObjectMeta,
    group: impl Fn(&T) -> &str,
    workload: &Workload,
) -> Result<(), ResourceError> {
    let mut seen: HashMap<(&str, &str, &str, &str), &Entry<'_, T>> = HashMap::new();
    for entry in entries {
        let m = meta(&entry.value);
        let key = (
            entry.context.kind(),
            group(&entry.value),
            ns(m, workload),
            m.name.as_str(),
        );
        if let Some(first) = seen.insert(key, entry) {
            let first = &first.context;
            return Err(error(
                entry,
                Kind::DuplicateName,
                "metadata.name",
                format!(
                    "{} {} in namespace {} is already defined in {} document {}",
                    first.kind(),
                    m.name,
                    ns(m, workload),
                    first.origin(),
                    first.index()
                ),
            ));
        }
    }
    Ok(())
}

/// Finds a resource by namespace and name.
pub(super) fn find<'e, 't, T>(
    entries: &'e [Entry<'t, T>],
    meta: impl Fn(&T) -> &ObjectMeta,
    namespace: &str,
    name: &str,
    workload: &Workload,
) -> Option<usize> {
    entries.iter().position(|e| {
        let m = meta(&e.value);
        m.name == name && ns(m, workload) == namespace
    })
}

/// Checks a network list: each `except` inside its `cidr`, and none that
/// covers the whole of it, which would leave a network that matches no
/// address (Linkerd's admission webhook refuses both).
pub(super) fn check_networks<T>(
    entry: &Entry<'_, T>,
    networks: &[Network],
    path: &str,
) -> Result<(), ResourceError> {
    for (i, net) in networks.iter().enumerate() {
        for (j, except) in net.except.iter().enumerate() {
            if except.0.contains(&net.cidr.0) {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    &format!("{path}[{i}].except[{j}]"),
                    format!(
                        "{except} excepts all of {}, so the network matches no address",
                        net.cidr
                    ),
                ));
            }
            if !net.cidr.0.contains(&except.0) {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    &format!("{path}[{i}].except[{j}]"),
                    format!("{except} is not within {}", net.cidr),
                ));
            }
        }
    }
    Ok(())
}

/// What an authorization applies to.
#[derive(Debug)]
pub(super) enum Target {
    /// Servers, as indexes into the resources' servers.
    Servers(Vec<usize>),
    /// A route, as an index into the resources' routes, by the
    /// `AuthorizationPolicy` at index `policy` of theirs (the only kind
    /// that targets a route), so that it can be named where the route is
    /// not served.
    Route { route: usize, policy: usize },
    /// Every Server and route of a namespace.
    Namespace(String),
}

/// A compiled authorization and what it applies to.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) authz: Arc<Authz>,
    pub(super) target: Target,
}

pub(super) fn dangling<T>(
    entry: &Entry<'_, T>,
    path: &str,
    kind: &str,
    name: &str,
    namespace: &str,
) -> ResourceError {
    error(
        entry,
        Kind::DanglingReference,
        path,
        format!("no {kind} named {name} in namespace {namespace}"),
    )
}

/// The identities of service account `name` in `namespace` (both forms
/// the crate accepts), or the error for `{path}.name` of `entry`: a
/// reference to a service account, as `identityRefs` and `clientRefs`
/// write one.
pub(super) fn service_account<T>(
    entry: &Entry<'_, T>,
    workload: &Workload,
    name: &str,
    namespace: &str,
    path: &str,
) -> Result<[mesh_core::Identity; 2], ResourceError> {
    account_identities(entry, workload, name, namespace, &format!("{path}.name"))
}

/// The identities of service account `name` in `namespace`, or the error
/// at `field` of `entry`. The error is about the account as written: the
/// identity's own complaint is about the SPIFFE ID built from it (an empty
/// name reads as a path that "ends with '/'"), which the reference does
/// not hold.
pub(super) fn account_identities<T>(
    entry: &Entry<'_, T>,
    workload: &Workload,
    name: &str,
    namespace: &str,
    field: &str,
) -> Result<[mesh_core::Identity; 2], ResourceError> {
    if name.is_empty() {
        return Err(error(
            entry,
            Kind::InvalidValue,
            field,
            "the service account's name is empty",
        ));
    }
    workload
        .service_account_identities(name, namespace)
        .map_err(|e| {
            error(
                entry,
                Kind::InvalidValue,
                field,
                format!(
                    "service account {name:?} in namespace {namespace:?} makes no identity: {e}"
                ),
            )
            .with_source(e)
        })
}

/// The API group of the core kinds (`Namespace`, `ServiceAccount`), as a
/// `group` field writes it.
pub(super) const CORE_GROUP: &str = "core";

/// Fails unless a reference's `group` is one of `groups`, the groups its
/// kind is in. An absent or empty group is the core group, as Linkerd's
/// policy controller reads it (`targets_kind`), so a `Server` named
/// without its group is a reference to no Server there, and is refused
/// here rather than taken for one.
pub(super) fn check_group<T>(
    entry: &Entry<'_, T>,
    path: &str,
    kind: &str,
    group: Option<&str>,
    groups: &[&str],
) -> Result<(), ResourceError> {
    let group = group.filter(|g| !g.is_empty()).unwrap_or(CORE_GROUP);
    if groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
        return Ok(());
    }
    let absent = if group == CORE_GROUP {
        " (an absent or empty group is the core group)"
    } else {
        ""
    };
    let message = format!(
        "kind {kind} is in group {}, not group {group}{absent}",
        groups.join(" or ")
    );
    let err = error(entry, Kind::InvalidValue, path, message);
    if err.location().is_some() {
        return Err(err);
    }
    // No group is written: point at the reference that lacks one.
    let at = path.strip_suffix(".group").unwrap_or(path);
    let location = error(entry, Kind::InvalidValue, at, "").location();
    Err(err.at(location))
}
