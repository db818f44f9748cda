//! Compiling `ServerAuthorization` resources, the older form.

use std::sync::Arc;

use mesh_core::resource::{ResourceError, ResourceErrorKind as Kind};

use super::{
    Authz, AuthzKind, IdentitySet, NetworkSet, Requirement,
    refs::{Bound, Target, account_identities, check_networks, dangling, find, ns, ref_namespace},
};
use crate::{
    Workload,
    resource::{Entry, Resources, ServerAuthorization, read::error},
    warnings::{PolicyWarnings, WarningKind},
};

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
                    // labels of the pods they select. Only a Server all of
                    // whose pods the selector surely selects: its
                    // `matchLabels` pin some labels and leave the rest free.
                    let by_pods: Vec<usize> = r
                        .servers
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| {
                            in_ns(s)
                                && s.value
                                    .spec
                                    .pod_selector
                                    .as_ref()
                                    .is_some_and(|p| selector.holds_for_pods_of(p))
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if by_pods.is_empty() {
                        warnings.about(
                            WarningKind::NotApplied,
                            &entry.context,
                            "spec.server.selector",
                            format!(
                                "selects no Server in namespace {namespace}, by its labels or by the pods it selects, so it authorizes nothing"
                            ),
                        );
                    } else {
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
        // Linkerd's policy controller serves a ServerAuthorization without
        // networks, or with `networks: []`, with the cluster networks
        // (`to_authz` in linkerd2's `policy-controller/grpc/src/inbound.rs`):
        // an authorization written for the cluster's clients does not open
        // the port to every routable address.
        let set = match client.networks.as_deref() {
            Some(networks) if !networks.is_empty() => {
                check_networks(entry, networks, "spec.client.networks")?;
                NetworkSet::new(networks.to_vec())
            }
            _ => NetworkSet::from_nets(&workload.cluster_networks),
        };
        requirements.push(Requirement::Network {
            from: "client.networks".into(),
            set,
        });
        match (client.unauthenticated, &client.mesh_tls) {
            (true, None) => {}
            (false, Some(mtls)) if mtls.unauthenticated_tls => {
                // Linkerd's admission webhook refuses this too: the
                // identities would be ignored, and the authorization
                // would admit every TLS client rather than those listed.
                if !mtls.identities.is_empty() || !mtls.service_accounts.is_empty() {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        "spec.client.meshTLS.unauthenticatedTLS",
                        "unauthenticatedTLS: true admits every TLS client, so the identities and serviceAccounts beside it would be ignored: remove them, or unauthenticatedTLS to admit only them",
                    ));
                }
                requirements.push(Requirement::Tls);
            }
            (false, Some(mtls)) => {
                let mut set = IdentitySet::default();
                for (i, id) in mtls.identities.iter().enumerate() {
                    set.add_written(id, workload).map_err(|e| {
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
                    let ids = account_identities(
                        entry,
                        workload,
                        &sa.name,
                        ref_namespace(sa.namespace.as_deref(), namespace),
                        &format!("spec.client.meshTLS.serviceAccounts[{i}]"),
                    )?;
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
