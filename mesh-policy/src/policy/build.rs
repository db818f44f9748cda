//! Compiling resources into a [`Policy`] for one workload.

use std::{collections::HashMap, sync::Arc};

use http::Method;
use mesh_core::{
    resource::{HttpRouteFilter, ResourceError, ResourceErrorKind as Kind, Timestamp},
    route::{PathMatch, RouteFilters, RouteMatch},
};

use super::{
    Authz, AuthzKind, Compiled, FallbackPolicy, HostMatch, IdentitySet, MatchEntry, NetworkSet,
    Policy, Requirement, ServerEntry, ServerSource, authz,
    defaults::DefaultServers,
    ratelimit,
    refs::{self, Bound, Target, ns},
    route::GrpcRank,
    server_authz,
};
use crate::{
    DefaultPolicy, PolicyConfig, PolicyMetrics, PolicySource, Workload,
    egress::{EgressNetwork, EgressNetworks, TrafficPolicy},
    metrics::GroupKind,
    resource::{self, PortRef, ProxyProtocol, Resources, read::error},
    warnings::{PolicyWarnings, WarningKind},
};

pub(super) fn compile(
    sources: &[PolicySource<'_>],
    workload: &Workload,
    config: &PolicyConfig,
    metrics: &PolicyMetrics,
) -> Result<Compiled, ResourceError> {
    let mut r = resource::read::read(sources)?;
    let mut warnings = std::mem::take(&mut r.warnings);
    // Each of these kinds has one API group; a route's is its own.
    refs::check_duplicates(&r.servers, |s| &s.metadata, one_group, workload)?;
    refs::check_duplicates(
        &r.server_authorizations,
        |s| &s.metadata,
        one_group,
        workload,
    )?;
    refs::check_duplicates(
        &r.authorization_policies,
        |s| &s.metadata,
        one_group,
        workload,
    )?;
    refs::check_duplicates(&r.mesh_tls, |s| &s.metadata, one_group, workload)?;
    refs::check_duplicates(&r.networks, |s| &s.metadata, one_group, workload)?;
    refs::check_duplicates(
        &r.routes,
        |s| &s.metadata,
        |s| s.api_version.group(),
        workload,
    )?;
    refs::check_duplicates(&r.rate_limits, |s| &s.metadata, one_group, workload)?;
    refs::check_duplicates(&r.egress_networks, |s| &s.metadata, one_group, workload)?;
    let egress = egress_networks(&r, workload, config)?;
    for entry in &r.servers {
        let spec = &entry.value.spec;
        // Linkerd's CRD has `accessPolicy` at v1beta3 only: the API server
        // prunes it from an earlier version (or `kubectl apply` refuses it
        // as unknown), and the port then denies what no authorization
        // allows. Honoured here, it could open a port Linkerd keeps shut.
        let version = entry.value.api_version.as_str();
        if let Some(access) = spec.access_policy
            && version != ACCESS_POLICY_VERSION
        {
            return Err(error(
                entry,
                Kind::InvalidValue,
                "spec.accessPolicy",
                format!(
                    "accessPolicy is a field of {ACCESS_POLICY_VERSION} Servers only; Linkerd drops it from a {version} Server, whose port then denies what no authorization allows rather than applying {access}: write apiVersion: {ACCESS_POLICY_VERSION}"
                ),
            ));
        }
        let (field, selector) = match (&spec.pod_selector, &spec.external_workload_selector) {
            (Some(s), None) => ("podSelector", s),
            (None, Some(s)) => ("externalWorkloadSelector", s),
            _ => {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec",
                    "exactly one of podSelector and externalWorkloadSelector is required",
                ));
            }
        };
        if let Some((path, why)) = selector.invalid() {
            return Err(error(
                entry,
                Kind::InvalidValue,
                &format!("spec.{field}.{path}"),
                why,
            ));
        }
    }
    let routes = routes(&r, workload, &mut warnings)?;
    let mut bound = authz::authorization_policies(&r, workload)?;
    bound.extend(server_authz::server_authorizations(
        &r,
        workload,
        &mut warnings,
    )?);
    unserved_route_policies(&r, &routes, &bound, workload, &mut warnings);
    let probes = probe_matches(config)?;
    let rate_limits = ratelimit::rate_limits(&r, workload, &mut warnings)?;

    let selections: Vec<Selection> = r
        .servers
        .iter()
        .map(|entry| selection(&entry.value, workload))
        .collect();
    let owners = port_owners(&r, &selections, workload);
    let mut ports = Vec::new();
    let mut servers = Vec::new();
    for (si, entry) in r.servers.iter().enumerate() {
        let server = &entry.value;
        let namespace = ns(&server.metadata, workload);
        let port = match &selections[si] {
            Selection::Other => continue,
            Selection::Nothing(field, why) => {
                warnings.about(WarningKind::NotApplied, &entry.context, field, why.as_str());
                continue;
            }
            Selection::Port(port) => *port,
        };
        if let Some(&owner) = owners.get(&port)
            && owner != si
        {
            lost_port(&r, owner, si, port, &mut warnings);
            continue;
        }
        let name: Arc<str> = server.metadata.name.as_str().into();
        let access = server.spec.access_policy.unwrap_or(DefaultPolicy::Deny);
        let fallback = fallback(access, access.as_str().into(), workload);
        let applies = |b: &&Bound| match &b.target {
            Target::Servers(s) => s.contains(&si),
            Target::Namespace(n) => n == namespace,
            Target::Route { .. } => false,
        };
        let server_authz: Vec<Arc<Authz>> = bound
            .iter()
            .filter(applies)
            .map(|b| b.authz.clone())
            .collect();
        let mut entry = ServerEntry::new(
            name,
            GroupKind::SERVER,
            Some(port),
            server.spec.proxy_protocol,
            fallback,
            &server_authz,
            metrics,
        );
        entry.source = Some(ServerSource {
            port: server.spec.port.clone(),
            document: format!(
                "{} document {}",
                r.servers[si].context.origin(),
                r.servers[si].context.index()
            ),
        });
        entry.rate_limit = rate_limits
            .get(&si)
            .map(|limits| limits.build(&entry.name, metrics));
        let mut mine: Vec<&CompiledRoute> =
            routes.iter().filter(|c| c.parents.contains(&si)).collect();
        if server.spec.proxy_protocol.is_opaque() {
            opaque_routes(&r, &mine, server, &mut warnings);
        } else {
            // As Linkerd's policy controller sends a proxy a Server's
            // GRPCRoutes when its protocol is gRPC and its HTTPRoutes for
            // every other, the other kind is not served here either.
            let grpc = server.spec.proxy_protocol == ProxyProtocol::Grpc;
            let (served, aside): (Vec<_>, Vec<_>) = mine.into_iter().partition(|c| c.grpc == grpc);
            other_kind_routes(&r, &aside, server, &bound, workload, &mut warnings);
            mine = served;
        }
        if mine.is_empty() {
            // Linkerd's policy controller gives an HTTP Server without
            // routes its probe paths as a route of their own beside the
            // default one (`default_inbound_http_routes`), and a gRPC
            // Server without GRPCRoutes the default route alone
            // (`grpc_routes` in its inbound index): there, a probe is
            // decided by the Server's own authorizations.
            let probes = if server.spec.proxy_protocol == ProxyProtocol::Grpc {
                &[][..]
            } else {
                &probes[..]
            };
            entry.default_routes(&server_authz, probes, metrics);
        } else {
            for route in mine {
                // Namespace policies are among the Server's: a route shares
                // its Server's namespace.
                let mut authz: Vec<Arc<Authz>> = bound
                    .iter()
                    .filter(|b| {
                        matches!(b.target, Target::Route { route: ri, .. } if ri == route.index)
                    })
                    .map(|b| b.authz.clone())
                    .collect();
                authz.extend(server_authz.iter().cloned());
                entry.add_route(route, &authz, metrics);
            }
            entry.matches.sort_by(MatchEntry::precedence);
        }
        ports.push((port, servers.len()));
        servers.push(entry);
    }
    ports.sort_unstable();

    Ok(Compiled {
        policy: Policy {
            ports,
            servers,
            default: unseen_default_server(config.default_policy, workload, &probes),
            defaults: DefaultServers::new(probes, metrics.clone()),
            workload: workload.clone(),
            config: config.clone(),
            egress,
        },
        warnings,
    })
}

/// The `EgressNetwork`s that apply to the workload's clients, checked
/// (each of every namespace, as other kinds are) and ready for lookups.
/// An empty `networks` is refused, as Linkerd's admission webhook refuses
/// it: absent means every address outside the cluster, and an empty list
/// read as none would still hide the global namespace's networks from the
/// namespace's clients while capturing nothing.
fn egress_networks(
    r: &Resources<'_>,
    workload: &Workload,
    config: &PolicyConfig,
) -> Result<EgressNetworks, ResourceError> {
    let mut all = Vec::with_capacity(r.egress_networks.len());
    for (i, entry) in r.egress_networks.iter().enumerate() {
        let resource::EgressNetwork { metadata, spec, .. } = &entry.value;
        let Some(traffic_policy) = spec.traffic_policy else {
            // At the line of `spec`, which has no `trafficPolicy` to point at.
            return Err(error(
                entry,
                Kind::MissingField,
                "spec",
                format!(
                    "trafficPolicy is required: {}",
                    TrafficPolicy::VALUES.join(" or ")
                ),
            )
            .at_field("spec.trafficPolicy"));
        };
        if let Some(networks) = &spec.networks {
            if networks.is_empty() {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    "spec.networks",
                    "at least one network is required; leave networks out to capture every address outside the cluster networks",
                ));
            }
            refs::check_networks(entry, networks, "spec.networks")?;
        }
        all.push(EgressNetwork::new(
            &metadata.name,
            ns(metadata, workload),
            traffic_policy,
            spec.networks.as_deref(),
            &workload.cluster_networks,
            r.egress_created.get(i).copied().flatten(),
        ));
    }
    Ok(EgressNetworks::new(
        all,
        &workload.namespace,
        &config.egress_namespace,
    ))
}

/// What a Server selects of the workload.
enum Selection {
    /// Not the workload: the Server is of another namespace, or its
    /// `podSelector` does not match the workload's labels.
    Other,
    /// Nothing, for a reason given about a field, to be warned about.
    Nothing(&'static str, String),
    /// This port of the workload.
    Port(u16),
}

fn selection(server: &resource::Server, workload: &Workload) -> Selection {
    if ns(&server.metadata, workload) != workload.namespace {
        return Selection::Other;
    }
    let Some(pod_selector) = &server.spec.pod_selector else {
        return Selection::Nothing(
            "spec.externalWorkloadSelector",
            "selects external workloads, not pods, so this Server covers nothing here".to_owned(),
        );
    };
    if !pod_selector.matches(&workload.labels) {
        return Selection::Other;
    }
    match &server.spec.port {
        PortRef::Number(n) => Selection::Port(*n),
        PortRef::Name(name) => match workload.ports.get(name) {
            Some(port) => Selection::Port(*port),
            None => Selection::Nothing(
                "spec.port",
                format!("the workload has no port named {name}, so this Server covers nothing"),
            ),
        },
    }
}

/// The Server that takes each port the Servers select, by index. Linkerd
/// accepts two Servers selecting one port of a pod, and its policy
/// controller gives the port to the first of them by creation time, then
/// name (`reindex_servers` in its inbound index), so that a port stays
/// with its Server rather than flap to each one created after. The same
/// files must start here as they run there, so the order is that of
/// routes of equal matches ([`tie_ranks`]), which a file without
/// timestamps leaves to the names: the document order does not decide.
fn port_owners(
    r: &Resources<'_>,
    selections: &[Selection],
    workload: &Workload,
) -> HashMap<u16, usize> {
    let ranks = tie_ranks(r.servers.iter().enumerate().map(|(si, entry)| {
        (
            server_created(r, si),
            ns(&entry.value.metadata, workload),
            entry.value.metadata.name.as_str(),
        )
    }));
    let mut owners = HashMap::new();
    for (si, selection) in selections.iter().enumerate() {
        let Selection::Port(port) = selection else {
            continue;
        };
        let owner = owners.entry(*port).or_insert(si);
        if ranks[si] < ranks[*owner] {
            *owner = si;
        }
    }
    owners
}

fn server_created(r: &Resources<'_>, si: usize) -> Option<Timestamp> {
    r.server_created.get(si).copied().flatten()
}

/// Warns about Server `loser`, which selects `port` that Server `owner`
/// takes ([`port_owners`]): it covers nothing, and a Server covers one
/// port, so what targets it by name (an `AuthorizationPolicy`, a
/// `ServerAuthorization`, a route, a rate limit) applies to nothing, as
/// in Linkerd, which builds no server of it for the pod.
fn lost_port(
    r: &Resources<'_>,
    owner: usize,
    loser: usize,
    port: u16,
    warnings: &mut PolicyWarnings,
) {
    let (Some(winner), Some(entry)) = (r.servers.get(owner), r.servers.get(loser)) else {
        return;
    };
    let why = match (server_created(r, owner), server_created(r, loser)) {
        (Some(a), Some(b)) if a < b => "the older by metadata.creationTimestamp",
        (Some(_), None) => "the one with a metadata.creationTimestamp",
        _ => "the first by name",
    };
    let port = match &entry.value.spec.port {
        PortRef::Name(name) => format!("{name} ({port})"),
        PortRef::Number(_) => port.to_string(),
    };
    warnings.about(
        WarningKind::NotApplied,
        &entry.context,
        "spec.port",
        format!(
            "port {port} of the workload is also selected by Server {} ({} document {}), which takes it as {why}; this Server covers nothing, so what targets it (authorizations, routes, rate limits) applies to nothing",
            winner.value.metadata.name,
            winner.context.origin(),
            winner.context.index()
        ),
    );
}

/// The one `Server` version whose schema has `accessPolicy`.
const ACCESS_POLICY_VERSION: &str = "policy.linkerd.io/v1beta3";

/// Warns about each of `routes` under an opaque `server`: its connections
/// are decided whole, by the Server's own authorizations, so a route
/// there matches no request, and what targets it admits nothing.
fn opaque_routes(
    r: &Resources<'_>,
    routes: &[&CompiledRoute],
    server: &resource::Server,
    warnings: &mut PolicyWarnings,
) {
    for route in routes {
        let Some(entry) = r.routes.get(route.index) else {
            continue;
        };
        let parent = entry
            .value
            .spec
            .parent_refs
            .iter()
            .position(|p| p.is_server() && p.name == server.metadata.name)
            .unwrap_or_default();
        warnings.about(
            WarningKind::NotApplied,
            &entry.context,
            &format!("spec.parentRefs[{parent}]"),
            format!(
                "Server {} is {}: its connections are decided whole, by its own authorizations, so this route matches no request and what targets it admits nothing",
                server.metadata.name, server.spec.proxy_protocol
            ),
        );
    }
}

/// Warns about each of `routes`, of the kind `server`'s protocol does not
/// serve (a `GRPCRoute` under a Server whose protocol is not gRPC, an
/// `HTTPRoute` under a gRPC one), and about each `AuthorizationPolicy`
/// that targets one: Linkerd's policy controller sends a proxy only the
/// kind the protocol selects (`to_server` in its inbound API), so such a
/// route matches no request of that Server, and its policies admit
/// nothing there. Serving it anyway would let a policy written for
/// Linkerd admit calls Linkerd refuses.
fn other_kind_routes(
    r: &Resources<'_>,
    routes: &[&CompiledRoute],
    server: &resource::Server,
    bound: &[Bound],
    workload: &Workload,
    warnings: &mut PolicyWarnings,
) {
    let name = &server.metadata.name;
    let protocol = server.spec.proxy_protocol;
    let (served, change) = if protocol == ProxyProtocol::Grpc {
        (
            "a gRPC Server's GRPCRoutes only",
            "attach it to a Server of another protocol, or write it as a GRPCRoute",
        )
    } else {
        (
            "a Server's GRPCRoutes only with proxyProtocol: gRPC",
            "set the Server's proxyProtocol to gRPC (its HTTPRoutes are then not applied), or write it as an HTTPRoute",
        )
    };
    for route in routes {
        let Some(entry) = r.routes.get(route.index) else {
            continue;
        };
        let kind = entry.context.kind();
        let full = format!(
            "{}/{}",
            ns(&entry.value.metadata, workload),
            entry.value.metadata.name
        );
        let parent = entry
            .value
            .spec
            .parent_refs
            .iter()
            .position(|p| p.is_server() && p.name == *name)
            .unwrap_or_default();
        warnings.about(
            WarningKind::NotApplied,
            &entry.context,
            &format!("spec.parentRefs[{parent}]"),
            format!(
                "{kind} {full} targets Server {name} whose proxyProtocol is {protocol}: Linkerd serves {served}; it is not applied ({change})"
            ),
        );
        for b in bound {
            let Target::Route { route: ri, policy } = b.target else {
                continue;
            };
            let Some(policy) = r.authorization_policies.get(policy) else {
                continue;
            };
            if ri != route.index {
                continue;
            }
            warnings.about(
                WarningKind::NotApplied,
                &policy.context,
                "spec.targetRef",
                format!(
                    "{kind} {full} is not applied to Server {name} (proxyProtocol {protocol}), so this policy authorizes nothing there"
                ),
            );
        }
    }
}

/// Warns about each `AuthorizationPolicy` that targets a route with no
/// Server parent: an outbound route (its parents are Services) or one
/// under a Gateway. Authorization does not use such a route, so, as in
/// Linkerd, whose policy controller attaches route policies only to the
/// routes of a Server, the policy authorizes nothing; its author most
/// likely meant it to, and would otherwise learn so only from denials.
fn unserved_route_policies(
    r: &Resources<'_>,
    routes: &[CompiledRoute],
    bound: &[Bound],
    workload: &Workload,
    warnings: &mut PolicyWarnings,
) {
    for b in bound {
        let Target::Route { route: ri, policy } = b.target else {
            continue;
        };
        if routes.iter().any(|c| c.index == ri) {
            continue;
        }
        let (Some(route), Some(policy)) = (r.routes.get(ri), r.authorization_policies.get(policy))
        else {
            continue;
        };
        let parents = &route.value.spec.parent_refs;
        let why = if !parents.is_empty() && parents.iter().all(is_outbound_parent) {
            "its parents are Services or EgressNetworks (an outbound route)"
        } else {
            "no parent of it is a Server"
        };
        warnings.about(
            WarningKind::NotApplied,
            &policy.context,
            "spec.targetRef",
            format!(
                "{} {}/{} serves no Server: {why}, so authorization does not use it and this policy authorizes nothing; target the Server, or a route whose parentRefs name one",
                route.context.kind(),
                ns(&route.value.metadata, workload),
                route.value.metadata.name
            ),
        );
    }
}

/// The API group of a kind that has one, for duplicate names.
fn one_group<T>(_: &T) -> &str {
    ""
}

pub(super) fn empty(workload: &Workload, config: &PolicyConfig, metrics: &PolicyMetrics) -> Policy {
    // Probe paths that do not parse are left out here; `compile` reports them.
    let probes = config
        .probe_paths
        .iter()
        .filter_map(|p| PathMatch::exact(p).ok())
        .map(|p| RouteMatch::new().with_method(Method::GET).with_path(p))
        .collect::<Vec<_>>();
    Policy {
        ports: Vec::new(),
        servers: Vec::new(),
        default: unseen_default_server(config.default_policy, workload, &probes),
        defaults: DefaultServers::new(probes, metrics.clone()),
        workload: workload.clone(),
        config: config.clone(),
        egress: EgressNetworks::default(),
    }
}

fn probe_matches(config: &PolicyConfig) -> Result<Vec<RouteMatch>, ResourceError> {
    config
        .probe_paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            PathMatch::exact(p)
                .map(|p| RouteMatch::new().with_method(Method::GET).with_path(p))
                .map_err(|e| {
                    ResourceError::new(Kind::InvalidValue, "policy configuration", e.to_string())
                        .at_field(format!("probe_paths[{i}]"))
                        .with_source(e)
                })
        })
        .collect()
}

/// The default server for questions that count nothing (an explanation,
/// a port's protocol): its counters are in families of its own, which no
/// registry holds.
fn unseen_default_server(
    policy: DefaultPolicy,
    workload: &Workload,
    probes: &[RouteMatch],
) -> ServerEntry {
    default_server(policy, workload, probes, &PolicyMetrics::default(), None)
}

/// The default server of `port`, whose series carry it as `srv_port`
/// (none for `None`, no port known).
pub(super) fn default_server(
    policy: DefaultPolicy,
    workload: &Workload,
    probes: &[RouteMatch],
    metrics: &PolicyMetrics,
    port: Option<u16>,
) -> ServerEntry {
    // The policy's own name, as Linkerd's policy controller names the
    // default server now that it sends the kind (`default`) beside it.
    let name: Arc<str> = policy.as_str().into();
    let fallback = fallback(policy, name.clone(), workload);
    let mut server = ServerEntry::new(
        name,
        GroupKind::DEFAULT,
        port,
        ProxyProtocol::Unknown,
        fallback,
        &[],
        metrics,
    );
    server.default_routes(&[], probes, metrics);
    server
}

fn fallback(policy: DefaultPolicy, name: Arc<str>, workload: &Workload) -> FallbackPolicy {
    let from: Arc<str> = policy.as_str().into();
    let cluster = || Requirement::Network {
        from: from.clone(),
        set: NetworkSet::from_nets(&workload.cluster_networks),
    };
    let identity = || Requirement::Identity {
        from: from.clone(),
        set: IdentitySet::any(),
    };
    let requirements = match policy {
        DefaultPolicy::AllAuthenticated => vec![identity()],
        DefaultPolicy::ClusterAuthenticated => vec![identity(), cluster()],
        DefaultPolicy::ClusterUnauthenticated => vec![cluster()],
        DefaultPolicy::AllUnauthenticated | DefaultPolicy::Deny | DefaultPolicy::Audit => {
            Vec::new()
        }
    };
    FallbackPolicy {
        policy,
        authz: Authz {
            name,
            kind: AuthzKind::Default,
            requirements,
        },
    }
}

/// An `HTTPRoute` with its matches and filters built and its Server
/// parents found.
pub(super) struct CompiledRoute {
    pub(super) index: usize,
    /// Where the route ranks among the routes compiled in a tie between
    /// equal matches ([`tie_ranks`]).
    pub(super) rank: usize,
    pub(super) name: Arc<str>,
    /// The route's group and kind, for its counters.
    pub(super) kind: GroupKind,
    /// Whether it is a `GRPCRoute`, which only a gRPC Server serves.
    pub(super) grpc: bool,
    pub(super) parents: Vec<usize>,
    pub(super) rules: Vec<CompiledRule>,
    pub(super) hosts: Arc<[HostMatch]>,
}

/// One rule of a route: its matches, and its filters when it has any.
pub(super) struct CompiledRule {
    pub(super) matches: Vec<RouteMatch>,
    pub(super) filters: Option<Arc<RouteFilters>>,
    /// For a `GRPCRoute`'s rule, the `GRPCRoute` rank of each of
    /// `matches`, by index; a match past the end (the one a rule without
    /// matches takes every call with) names nothing. `None` for an
    /// `HTTPRoute`'s rule.
    pub(super) grpc: Option<Vec<GrpcRank>>,
}

fn routes(
    r: &Resources<'_>,
    workload: &Workload,
    warnings: &mut PolicyWarnings,
) -> Result<Vec<CompiledRoute>, ResourceError> {
    let mut compiled = Vec::new();
    for (index, entry) in r.routes.iter().enumerate() {
        let route = &entry.value;
        let namespace = ns(&route.metadata, workload);
        let matches = route
            .rule_matches()
            .map_err(|e| entry.context.match_error(e))?;
        let mut parents = Vec::new();
        for (i, parent) in route.spec.parent_refs.iter().enumerate() {
            if !parent.is_server() {
                continue;
            }
            // A namespace is a trust boundary: as in Linkerd, a route
            // attaches only to Servers of its own namespace, and names
            // them only by name, so that no other namespace's route (and
            // the policies there that target it) can open a Server.
            let at = |field: &str| format!("spec.parentRefs[{i}].{field}");
            if let Some(other) = parent.namespace.as_deref().filter(|n| *n != namespace) {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    &at("namespace"),
                    format!(
                        "a route in namespace {namespace} may not attach to a Server in namespace {other}"
                    ),
                ));
            }
            let narrowing = [
                ("port", parent.port.is_some()),
                ("sectionName", parent.section_name.is_some()),
            ];
            if let Some((field, _)) = narrowing.iter().find(|(_, set)| *set) {
                return Err(error(
                    entry,
                    Kind::InvalidValue,
                    &at(field),
                    format!("a route may not name a Server parent by {field}"),
                ));
            }
            let parent_ns = namespace;
            let server = refs::find(
                &r.servers,
                |s| &s.metadata,
                parent_ns,
                &parent.name,
                workload,
            )
            .ok_or_else(|| {
                error(
                    entry,
                    Kind::DanglingReference,
                    &format!("spec.parentRefs[{i}].name"),
                    format!("no Server named {} in namespace {parent_ns}", parent.name),
                )
            })?;
            parents.push(server);
        }
        if parents.is_empty() {
            // A route whose parents are all Services or EgressNetworks is
            // an outbound route: authorization has no use for it, and that
            // is no mistake.
            let parent_refs = &route.spec.parent_refs;
            if !parent_refs.is_empty() && parent_refs.iter().all(is_outbound_parent) {
                continue;
            }
            warnings.about(
                WarningKind::NotApplied,
                &entry.context,
                "spec.parentRefs",
                "no parent is a Server (policy.linkerd.io), so authorization does not use this route",
            );
            continue;
        }
        let grpc = r.route_grpc.get(index).and_then(Option::as_ref);
        let mut rules = Vec::with_capacity(matches.len().max(1));
        for (i, (rule, matches)) in route.spec.rules.iter().zip(matches).enumerate() {
            let at = format!("spec.rules[{i}]");
            let filters = rule
                .route_filters(&matches)
                .map_err(|e| entry.context.filter_error(e.within(&at)))?;
            for (j, filter) in rule.filters.iter().enumerate() {
                if let HttpRouteFilter::Unsupported { type_name } = filter {
                    warnings.about(
                        WarningKind::UnsupportedFilter,
                        &entry.context,
                        &format!("{at}.filters[{j}]"),
                        format!("filter {type_name} is not applied to inbound requests"),
                    );
                }
            }
            if rule.timeouts.is_some() || rule.retry.is_some() {
                warnings.about(
                    WarningKind::NotApplied,
                    &entry.context,
                    &at,
                    "timeouts and retry apply to outbound routes, not to a Server's",
                );
            }
            rules.push(CompiledRule {
                matches,
                filters: (!filters.is_empty()).then(|| Arc::new(filters)),
                grpc: grpc.map(|ranks| ranks.get(i).cloned().unwrap_or_default()),
            });
        }
        if rules.is_empty() {
            // An HTTPRoute written without `rules` (or `null`) holds the
            // CRD's default rule, the prefix `/`, from the model. What is
            // left here is `rules: []`, which the API server keeps as
            // written, or a GRPCRoute without rules, whose CRD gives none:
            // the route takes no requests, and they fall to the Server's
            // other routes, or to no route at all.
            let message = if grpc.is_some() {
                "the GRPCRoute has no rules, so it takes no calls: the Gateway API gives an \
                 HTTPRoute without rules one rule taking every request, but a GRPCRoute none"
            } else {
                "spec.rules is an empty list, so the route takes no requests: the Gateway API \
                 gives one rule taking every request to an HTTPRoute written without rules (or \
                 with rules: null), not to one with an empty list"
            };
            warnings.about(
                WarningKind::NotApplied,
                &entry.context,
                "spec.rules",
                message,
            );
        }
        compiled.push(CompiledRoute {
            index,
            rank: 0,
            name: route.metadata.name.as_str().into(),
            kind: GroupKind::route(route.api_version.group(), grpc.is_some()),
            grpc: grpc.is_some(),
            parents,
            rules,
            hosts: route
                .spec
                .hostnames
                .iter()
                .map(|h| HostMatch::new(h))
                .collect(),
        });
    }
    let ranks = tie_ranks(compiled.iter().map(|c| {
        let route = &r.routes[c.index].value;
        (
            r.route_created.get(c.index).copied().flatten(),
            ns(&route.metadata, workload),
            route.metadata.name.as_str(),
        )
    }));
    for (route, rank) in compiled.iter_mut().zip(ranks) {
        route.rank = rank;
    }
    Ok(compiled)
}

/// Each route's rank in the Gateway API's order for equal matches of
/// different routes, given each route's creation time, namespace and name
/// in the order read: the oldest by `metadata.creationTimestamp` first,
/// and a route without one (which, applied now, would be the newest)
/// after those with one; then by `{namespace}/{name}`; then the route read
/// first (an `HTTPRoute` and a `GRPCRoute` may share a name). Within a
/// route, its first rule wins, which the stable sort of the matches keeps.
pub(super) fn tie_ranks<'a>(
    routes: impl Iterator<Item = (Option<Timestamp>, &'a str, &'a str)>,
) -> Vec<usize> {
    let keys: Vec<_> = routes.collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| {
        let ((ca, na, ma), (cb, nb, mb)) = (keys[a], keys[b]);
        let created = Timestamp::older_first(ca, cb);
        // `{namespace}/{name}` as one string, without building it.
        let full = |ns: &'a str, name: &'a str| ns.bytes().chain([b'/']).chain(name.bytes());
        created
            .then_with(|| full(na, ma).cmp(full(nb, mb)))
            .then(a.cmp(&b))
    });
    let mut ranks = vec![0; keys.len()];
    for (rank, route) in order.into_iter().enumerate() {
        ranks[route] = rank;
    }
    ranks
}

/// Whether a route's parent makes it an outbound route, which the
/// sidecar's routing serves: a Service, or Linkerd's `EgressNetwork`.
fn is_outbound_parent(parent: &mesh_core::resource::ParentReference) -> bool {
    parent.is_service() || parent.is_egress_network()
}
