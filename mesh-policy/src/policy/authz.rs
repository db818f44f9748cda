//! Compiling `AuthorizationPolicy` resources and the authentications
//! they require.

use std::sync::Arc;

use mesh_core::resource::{GATEWAY_GROUP, POLICY_GROUP, ResourceError, ResourceErrorKind as Kind};

use super::{
    Authz, AuthzKind, IdentitySet, NetworkSet, Requirement,
    refs::{
        Bound, CORE_GROUP, Target, check_group, check_networks, dangling, find, known_kind, ns,
        ref_namespace, service_account,
    },
};
use crate::{
    Workload,
    resource::{AuthorizationPolicy, Entry, NetworkAuthentication, Resources, read::error},
};

/// Compiles every `AuthorizationPolicy`.
pub(super) fn authorization_policies(
    r: &Resources<'_>,
    workload: &Workload,
) -> Result<Vec<Bound>, ResourceError> {
    let identity_sets = mesh_tls_sets(r, workload)?;
    let network_sets = network_sets(r)?;
    let mut bound = Vec::new();
    for (policy, entry) in r.authorization_policies.iter().enumerate() {
        let AuthorizationPolicy { metadata, spec, .. } = &entry.value;
        let namespace = ns(metadata, workload);
        let t = &spec.target_ref;
        // Linkerd's target is local: it has no namespace, so one written
        // out that is not the policy's own would be read as the policy's
        // namespace's resource of that name, which was not what was meant.
        if ref_namespace(t.namespace.as_deref(), namespace) != namespace {
            return Err(error(
                entry,
                Kind::InvalidValue,
                "spec.targetRef.namespace",
                format!("a policy in namespace {namespace} may only target a resource in it"),
            ));
        }
        let group = |groups: &[&str]| {
            check_group(
                entry,
                "spec.targetRef.group",
                &t.kind,
                t.group.as_deref(),
                groups,
            )
        };
        let kind = known_kind(&t.kind, &["Server", "HTTPRoute", "GRPCRoute", "Namespace"]);
        let target = match kind {
            Some("Server") => {
                group(&[POLICY_GROUP])?;
                Target::Servers(vec![
                    find(&r.servers, |s| &s.metadata, namespace, &t.name, workload).ok_or_else(
                        || dangling(entry, "spec.targetRef.name", "Server", &t.name, namespace),
                    )?,
                ])
            }
            Some("HTTPRoute") => {
                group(&[POLICY_GROUP, GATEWAY_GROUP])?;
                Target::Route {
                    route: target_route(r, entry, workload)?,
                    policy,
                }
            }
            Some("GRPCRoute") => {
                group(&[GATEWAY_GROUP])?;
                Target::Route {
                    route: target_route(r, entry, workload)?,
                    policy,
                }
            }
            Some(_) => {
                group(&[CORE_GROUP])?;
                if t.name != namespace {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        "spec.targetRef.name",
                        format!(
                            "a policy in namespace {namespace} may only target its own namespace"
                        ),
                    ));
                }
                Target::Namespace(t.name.clone())
            }
            None => {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec.targetRef.kind",
                    format!(
                        "cannot target kind {}: expected Server, HTTPRoute, GRPCRoute or Namespace",
                        t.kind
                    ),
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
        // Each reference in its kind's group, as Linkerd's policy
        // controller resolves it (`authentication_ref`): one in another
        // group names nothing it knows.
        for (i, a) in spec.required_authentication_refs.iter().enumerate() {
            let groups: &[&str] = match known_kind(&a.kind, AUTHN_KINDS) {
                Some("ServiceAccount") => &[CORE_GROUP],
                Some(_) => &[POLICY_GROUP],
                None => continue,
            };
            check_group(
                entry,
                &format!("spec.requiredAuthenticationRefs[{i}].group"),
                &a.kind,
                a.group.as_deref(),
                groups,
            )?;
        }
        one_of_each(entry)?;
        let mut requirements = Vec::new();
        for (i, a) in spec.required_authentication_refs.iter().enumerate() {
            let a_ns = ref_namespace(a.namespace.as_deref(), namespace);
            let path = format!("spec.requiredAuthenticationRefs[{i}]");
            let kind = known_kind(&a.kind, AUTHN_KINDS);
            // Named by the kind's own spelling, whatever the reference's.
            let from: Arc<str> = format!("{}/{}", kind.unwrap_or(&a.kind), a.name).into();
            requirements.push(match kind {
                Some("MeshTLSAuthentication") => {
                    let i = find(&r.mesh_tls, |m| &m.metadata, a_ns, &a.name, workload)
                        .ok_or_else(|| dangling(entry, &format!("{path}.name"), &a.kind, &a.name, a_ns))?;
                    let set = identity_sets.get(i).cloned().unwrap_or_default();
                    Requirement::Identity { from, set }
                }
                Some("NetworkAuthentication") => {
                    let i = find(&r.networks, |n| &n.metadata, a_ns, &a.name, workload)
                        .ok_or_else(|| dangling(entry, &format!("{path}.name"), &a.kind, &a.name, a_ns))?;
                    let set = network_sets.get(i).cloned().unwrap_or_default();
                    Requirement::Network { from, set }
                }
                Some(_) => {
                    let mut set = IdentitySet::default();
                    let ids = service_account(entry, workload, &a.name, a_ns, &path)?;
                    ids.into_iter().for_each(|id| set.add(&id));
                    Requirement::Identity { from, set }
                }
                None => {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        &format!("{path}.kind"),
                        format!(
                            "cannot authenticate with kind {}: expected MeshTLSAuthentication, NetworkAuthentication or ServiceAccount",
                            a.kind
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

/// The kinds `requiredAuthenticationRefs` may name.
const AUTHN_KINDS: &[&str] = &[
    "MeshTLSAuthentication",
    "NetworkAuthentication",
    "ServiceAccount",
];

/// Fails on a second authentication of a class: every reference must
/// match, so two `NetworkAuthentication`s would admit only addresses in
/// both, and two identity authentications (`MeshTLSAuthentication` or
/// `ServiceAccount`) only clients in both, where their author most likely
/// meant either. Linkerd's admission webhook refuses such a policy ("only
/// a single NetworkAuthentication may be set"), and its policy controller
/// would not serve it.
fn one_of_each(entry: &Entry<'_, AuthorizationPolicy>) -> Result<(), ResourceError> {
    let refs = &entry.value.spec.required_authentication_refs;
    let class = |kind: &str| match known_kind(kind, AUTHN_KINDS) {
        Some("NetworkAuthentication") => Some("NetworkAuthentication"),
        Some(_) => Some("MeshTLSAuthentication or ServiceAccount"),
        None => None,
    };
    for (i, a) in refs.iter().enumerate() {
        let Some(what) = class(&a.kind) else { continue };
        let earlier = refs
            .iter()
            .take(i)
            .enumerate()
            .find(|(_, e)| class(&e.kind) == Some(what));
        if let Some((f, earlier)) = earlier {
            return Err(error(
                entry,
                Kind::InvalidValue,
                &format!("spec.requiredAuthenticationRefs[{i}]"),
                format!(
                    "only one {what} may be required: spec.requiredAuthenticationRefs[{f}] is {} {}, and every reference must match, so together they would admit only the clients both admit; write one authentication that names them all, or one AuthorizationPolicy for each",
                    earlier.kind, earlier.name
                ),
            ));
        }
    }
    Ok(())
}

/// The route an `AuthorizationPolicy`'s `targetRef` names: by kind,
/// name, namespace and the `targetRef`'s `group`, as Linkerd matches it,
/// so that of an `HTTPRoute` of `policy.linkerd.io` and one of the Gateway
/// API of one name each is told apart, and neither is taken for the other
/// when only one is defined.
fn target_route(
    r: &Resources<'_>,
    entry: &Entry<'_, AuthorizationPolicy>,
    workload: &Workload,
) -> Result<usize, ResourceError> {
    let namespace = ns(&entry.value.metadata, workload);
    let t = &entry.value.spec.target_ref;
    let named: Vec<usize> = r
        .routes
        .iter()
        .enumerate()
        .filter(|(_, route)| {
            let m = &route.value.metadata;
            route.context.kind().eq_ignore_ascii_case(&t.kind)
                && m.name == t.name
                && ns(m, workload) == namespace
        })
        .map(|(i, _)| i)
        .collect();
    let group_of = |i: usize| {
        r.routes
            .get(i)
            .map_or("", |route| route.value.api_version.group())
    };
    match (
        named.as_slice(),
        t.group.as_deref().filter(|g| !g.is_empty()),
    ) {
        ([], _) => Err(dangling(
            entry,
            "spec.targetRef.name",
            &t.kind,
            &t.name,
            namespace,
        )),
        // A route of the kind and name in another group is not the one
        // named: Linkerd's policy controller matches the group too, so
        // the policy would apply to nothing there.
        (several, Some(group)) => several
            .iter()
            .copied()
            .find(|&i| group_of(i).eq_ignore_ascii_case(group))
            .ok_or_else(|| {
                error(
                    entry,
                    Kind::DanglingReference,
                    "spec.targetRef.group",
                    format!(
                        "no {} named {} in group {group} in namespace {namespace}",
                        t.kind, t.name
                    ),
                )
            }),
        ([one], None) => Ok(*one),
        // The group is missing: point at the reference itself.
        (several, None) => Err(error(
            entry,
            Kind::InvalidValue,
            "spec.targetRef",
            format!(
                "{} {} in namespace {namespace} is defined in groups {}: name one in group",
                t.kind,
                t.name,
                several
                    .iter()
                    .map(|&i| group_of(i))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
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
                set.add_written(id, workload).map_err(|e| {
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
                let kind = known_kind(&r.kind, &["Namespace", "ServiceAccount"]);
                if kind.is_some() {
                    check_group(
                        entry,
                        &format!("{path}.group"),
                        &r.kind,
                        r.group.as_deref(),
                        &[CORE_GROUP],
                    )?;
                }
                if kind == Some("Namespace") {
                    // A Namespace is in no namespace: one written beside it
                    // is a mistake for a ServiceAccount reference, or for
                    // the namespace meant. Linkerd's webhook refuses it.
                    if let Some(other) = r.namespace.as_ref().filter(|n| !n.is_empty()) {
                        return Err(error(
                            entry,
                            Kind::InvalidValue,
                            &format!("{path}.namespace"),
                            format!(
                                "a Namespace is not in a namespace: name the namespace in name, not {other:?} in namespace"
                            ),
                        ));
                    }
                    // Every service account in the namespace, as Linkerd's
                    // policy controller reads it.
                    let (suffix, prefix) = workload.namespace_identities(&r.name).map_err(|e| {
                        error(
                            entry,
                            Kind::InvalidValue,
                            &format!("{path}.name"),
                            e.to_string(),
                        )
                    })?;
                    set.add_namespace(&suffix, &prefix);
                    continue;
                }
                if kind.is_none() {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        &format!("{path}.kind"),
                        format!(
                            "cannot refer to kind {}: expected ServiceAccount or Namespace",
                            r.kind
                        ),
                    ));
                }
                let in_namespace = ref_namespace(r.namespace.as_deref(), namespace);
                let ids = service_account(entry, workload, &r.name, in_namespace, &path)?;
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
