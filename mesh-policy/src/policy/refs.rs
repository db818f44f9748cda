//! Resolving references between resources, and compiling each
//! authorization once.

use std::{collections::HashMap, sync::Arc};

use mesh_core::resource::{ObjectMeta, ResourceError, ResourceErrorKind as Kind};

use super::{Authz, AuthzKind, IdentitySet, NetworkSet, Requirement};
use crate::{
    Workload,
    resource::{
        AuthorizationPolicy, Entry, Network, NetworkAuthentication, Resources, ServerAuthorization,
        read::error,
    },
    warnings::{PolicyWarnings, WarningKind},
};

/// The namespace of a resource: its own, or the workload's.
pub(super) fn ns<'a>(meta: &'a ObjectMeta, workload: &'a Workload) -> &'a str {
    meta.namespace_or(&workload.namespace)
}

/// Fails on the second resource of a kind with a namespace and name taken.
pub(super) fn check_duplicates<T>(
    entries: &[Entry<'_, T>],
    meta: impl Fn(&T) -> &ObjectMeta,
    workload: &Workload,
) -> Result<(), ResourceError> {
    let mut seen: HashMap<(&str, &str), &Entry<'_, T>> = HashMap::new();
    for entry in entries {
        let m = meta(&entry.value);
        if let Some(first) = seen.insert((ns(m, workload), &m.name), entry) {
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

/// Checks a network list: each `except` inside its `cidr`.
pub(super) fn check_networks<T>(
    entry: &Entry<'_, T>,
    networks: &[Network],
    path: &str,
) -> Result<(), ResourceError> {
    for (i, net) in networks.iter().enumerate() {
        for (j, except) in net.except.iter().enumerate() {
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
    /// A route, as an index into the resources' routes.
    Route(usize),
    /// Every Server and route of a namespace.
    Namespace(String),
}

/// A compiled authorization and what it applies to.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) authz: Arc<Authz>,
    pub(super) target: Target,
}

/// Compiles every `AuthorizationPolicy`.
pub(super) fn authorization_policies(
    r: &Resources<'_>,
    workload: &Workload,
) -> Result<Vec<Bound>, ResourceError> {
    let identity_sets = mesh_tls_sets(r, workload)?;
    let network_sets = network_sets(r)?;
    let mut bound = Vec::new();
    for entry in &r.authorization_policies {
        let AuthorizationPolicy { metadata, spec, .. } = &entry.value;
        let namespace = ns(metadata, workload);
        let t = &spec.target_ref;
        let target = match t.kind.as_str() {
            "Server" => Target::Servers(vec![
                find(&r.servers, |s| &s.metadata, namespace, &t.name, workload).ok_or_else(
                    || dangling(entry, "spec.targetRef.name", "Server", &t.name, namespace),
                )?,
            ]),
            "HTTPRoute" => Target::Route(
                find(&r.routes, |s| &s.metadata, namespace, &t.name, workload).ok_or_else(
                    || {
                        dangling(
                            entry,
                            "spec.targetRef.name",
                            "HTTPRoute",
                            &t.name,
                            namespace,
                        )
                    },
                )?,
            ),
            "Namespace" if t.name == namespace => Target::Namespace(t.name.clone()),
            "Namespace" => {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec.targetRef.name",
                    format!("a policy in namespace {namespace} may only target its own namespace"),
                ));
            }
            other => {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec.targetRef.kind",
                    format!("cannot target kind {other}: expected Server, HTTPRoute or Namespace"),
                ));
            }
        };
        if spec.required_authentication_refs.is_empty() {
            return Err(error(
                entry,
                Kind::InvalidValue,
                "spec.requiredAuthenticationRefs",
                "at least one authentication is required",
            ));
        }
        let mut requirements = Vec::new();
        for (i, a) in spec.required_authentication_refs.iter().enumerate() {
            let a_ns = a.namespace.as_deref().unwrap_or(namespace);
            let path = format!("spec.requiredAuthenticationRefs[{i}]");
            let from: Arc<str> = format!("{}/{}", a.kind, a.name).into();
            requirements.push(match a.kind.as_str() {
                "MeshTLSAuthentication" => {
                    let i = find(&r.mesh_tls, |m| &m.metadata, a_ns, &a.name, workload)
                        .ok_or_else(|| dangling(entry, &format!("{path}.name"), &a.kind, &a.name, a_ns))?;
                    let set = identity_sets.get(i).cloned().unwrap_or_default();
                    Requirement::Identity { from, set }
                }
                "NetworkAuthentication" => {
                    let i = find(&r.networks, |n| &n.metadata, a_ns, &a.name, workload)
                        .ok_or_else(|| dangling(entry, &format!("{path}.name"), &a.kind, &a.name, a_ns))?;
                    let set = network_sets.get(i).cloned().unwrap_or_default();
                    Requirement::Network { from, set }
                }
                "ServiceAccount" => {
                    let mut set = IdentitySet::default();
                    let ids = workload
                        .service_account_identities(&a.name, a_ns)
                        .map_err(|e| error(entry, Kind::InvalidValue, &format!("{path}.name"), e.to_string()))?;
                    ids.into_iter().for_each(|id| set.add(&id));
                    Requirement::Identity { from, set }
                }
                other => {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        &format!("{path}.kind"),
                        format!(
                            "cannot authenticate with kind {other}: expected MeshTLSAuthentication, NetworkAuthentication or ServiceAccount"
                        ),
                    ));
                }
            });
        }
        bound.push(Bound {
            authz: Arc::new(Authz {
                name: metadata.name.as_str().into(),
                kind: AuthzKind::AuthorizationPolicy,
                requirements,
            }),
            target,
        });
    }
    Ok(bound)
}

fn dangling<T>(
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

fn mesh_tls_sets(
    r: &Resources<'_>,
    workload: &Workload,
) -> Result<Vec<IdentitySet>, ResourceError> {
    r.mesh_tls
        .iter()
        .map(|entry| {
            let spec = &entry.value.spec;
            let namespace = ns(&entry.value.metadata, workload);
            let mut set = IdentitySet::default();
            for (i, id) in spec.identities.iter().enumerate() {
                set.add_pattern(id).map_err(|e| {
                    error(
                        entry,
                        Kind::InvalidValue,
                        &format!("spec.identities[{i}]"),
                        format!("invalid identity {id:?}"),
                    )
                    .with_source(e)
                })?;
            }
            for (i, r) in spec.identity_refs.iter().enumerate() {
                let path = format!("spec.identityRefs[{i}]");
                if r.kind != "ServiceAccount" {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        &format!("{path}.kind"),
                        format!("cannot refer to kind {}: expected ServiceAccount", r.kind),
                    ));
                }
                let ids = workload
                    .service_account_identities(
                        &r.name,
                        r.namespace.as_deref().unwrap_or(namespace),
                    )
                    .map_err(|e| {
                        error(
                            entry,
                            Kind::InvalidValue,
                            &format!("{path}.name"),
                            e.to_string(),
                        )
                    })?;
                ids.into_iter().for_each(|id| set.add(&id));
            }
            if set.is_empty() {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec",
                    "at least one identity or identityRef is required",
                ));
            }
            Ok(set)
        })
        .collect()
}

fn network_sets(r: &Resources<'_>) -> Result<Vec<NetworkSet>, ResourceError> {
    r.networks
        .iter()
        .map(|entry| {
            let NetworkAuthentication { spec, .. } = &entry.value;
            if spec.networks.is_empty() {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec.networks",
                    "at least one network is required",
                ));
            }
            check_networks(entry, &spec.networks, "spec.networks")?;
            Ok(NetworkSet::new(spec.networks.clone()))
        })
        .collect()
}

/// Compiles every `ServerAuthorization`.
pub(super) fn server_authorizations(
    r: &Resources<'_>,
    workload: &Workload,
    warnings: &mut PolicyWarnings,
) -> Result<Vec<Bound>, ResourceError> {
    let mut bound = Vec::new();
    for entry in &r.server_authorizations {
        let ServerAuthorization { metadata, spec, .. } = &entry.value;
        let namespace = ns(metadata, workload);
        let servers = match (&spec.server.name, &spec.server.selector) {
            (Some(name), None) => vec![
                find(&r.servers, |s| &s.metadata, namespace, name, workload).ok_or_else(|| {
                    dangling(entry, "spec.server.name", "Server", name, namespace)
                })?,
            ],
            (None, Some(selector)) => {
                if let Some((path, why)) = selector.invalid() {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        &format!("spec.server.selector.{path}"),
                        why,
                    ));
                }
                let in_ns = |s: &&Entry<'_, crate::resource::Server>| {
                    ns(&s.value.metadata, workload) == namespace
                };
                let by_labels: Vec<usize> = r
                    .servers
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| in_ns(s) && selector.matches(&s.value.metadata.labels))
                    .map(|(i, _)| i)
                    .collect();
                if by_labels.is_empty() {
                    // See the crate docs: the guide selects Servers by the
                    // labels of the pods they select.
                    let by_pods: Vec<usize> = r
                        .servers
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| {
                            in_ns(s) && selector.matches(&s.value.spec.pod_selector.match_labels)
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if !by_pods.is_empty() {
                        let names: Vec<&str> = by_pods
                            .iter()
                            .filter_map(|&i| r.servers.get(i))
                            .map(|s| &*s.value.metadata.name)
                            .collect();
                        warnings.about(
                            WarningKind::Deviation,
                            &entry.context,
                            "spec.server.selector",
                            format!(
                                "selects no Server by its labels, so it applies to the Servers whose podSelector it matches ({}); Linkerd would apply it to none",
                                names.join(", ")
                            ),
                        );
                    }
                    by_pods
                } else {
                    by_labels
                }
            }
            _ => {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec.server",
                    "exactly one of name and selector is required",
                ));
            }
        };
        let client = &spec.client;
        let mut requirements = Vec::new();
        let networks = match &client.networks {
            Some(networks) => {
                check_networks(entry, networks, "spec.client.networks")?;
                networks.clone()
            }
            None => Network::all().to_vec(),
        };
        requirements.push(Requirement::Network {
            from: "client.networks".into(),
            set: NetworkSet::new(networks),
        });
        match (client.unauthenticated, &client.mesh_tls) {
            (true, None) => {}
            (false, Some(mtls)) if mtls.unauthenticated_tls => requirements.push(Requirement::Tls),
            (false, Some(mtls)) => {
                let mut set = IdentitySet::default();
                for (i, id) in mtls.identities.iter().enumerate() {
                    set.add_pattern(id).map_err(|e| {
                        error(
                            entry,
                            Kind::InvalidValue,
                            &format!("spec.client.meshTLS.identities[{i}]"),
                            format!("invalid identity {id:?}"),
                        )
                        .with_source(e)
                    })?;
                }
                for (i, sa) in mtls.service_accounts.iter().enumerate() {
                    let ids = workload
                        .service_account_identities(
                            &sa.name,
                            sa.namespace.as_deref().unwrap_or(namespace),
                        )
                        .map_err(|e| {
                            error(
                                entry,
                                Kind::InvalidValue,
                                &format!("spec.client.meshTLS.serviceAccounts[{i}]"),
                                e.to_string(),
                            )
                        })?;
                    ids.into_iter().for_each(|id| set.add(&id));
                }
                if set.is_empty() {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        "spec.client.meshTLS",
                        "meshTLS needs unauthenticatedTLS, identities or serviceAccounts",
                    ));
                }
                requirements.push(Requirement::Identity {
                    from: "client.meshTLS".into(),
                    set,
                });
            }
            _ => {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec.client",
                    "exactly one of unauthenticated: true and meshTLS is required",
                ));
            }
        }
        bound.push(Bound {
            authz: Arc::new(Authz {
                name: metadata.name.as_str().into(),
                kind: AuthzKind::ServerAuthorization,
                requirements,
            }),
            target: Target::Servers(servers),
        });
    }
    Ok(bound)
}
