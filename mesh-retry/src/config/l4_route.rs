//! `TLSRoute`s and `TCPRoute`s attached to a `Service` or an
//! `EgressNetwork`: which route a connection to the service, or leaving
//! the cluster, takes.
//!
//! Why: Linkerd 2.17 routes traffic that is not plain HTTP with these
//! routes. On a Service, a `TCPRoute` splits a port's connections
//! between backend Services by weight (a database moved to a new
//! cluster a share at a time), and `TLSRoute`s send each TLS connection
//! where the SNI of its ClientHello says. On an `EgressNetwork` they allow
//! and shape egress (<https://linkerd.io/2.17/tasks/managing-egress-traffic/>):
//! HTTPS to `httpbin.org` is allowed by a `TLSRoute` naming it, a database
//! connection by a `TCPRoute` on its port, and a connection none of them
//! takes goes to the network's default route (`tls-egress-allow` or
//! `tls-egress-deny`, `tcp-egress-allow` or `tcp-egress-deny`, by its
//! `trafficPolicy`). A router needs, per connection, the route that takes
//! it, and the route's name for its metrics.
//!
//! How: Linkerd's policy controller serves each port of a parent the
//! routes attached with that `port` and those attached without one,
//! ordered oldest first by `metadata.creationTimestamp`, then by
//! `{namespace}/{name}` (`timestamp_then_name` in linkerd2's
//! `policy-controller/grpc/src/outbound.rs`). Its proxy takes, of the
//! `TLSRoute`s whose hostnames match the SNI of the ClientHello, the one
//! that matches most specifically (an exact hostname, then the longest
//! wildcard; here a route without hostnames, which takes any SNI, after
//! both), the first in that order among equals
//! (`linkerd/tls/route` in linkerd2-proxy); and the first `TCPRoute`. The
//! routes are kept in that order once read, so that a lookup
//! ([`ServiceRetryPolicy::tls_route`](super::ServiceRetryPolicy::tls_route),
//! [`tcp_route`](super::ServiceRetryPolicy::tcp_route)) walks them without
//! allocating. Unlike a Service's HTTP routes, which take every port
//! here, a Service's connection routes keep their `parentRefs` port:
//! a `TCPRoute` on port 5432 takes no connection to port 6379.

use std::{cmp::Ordering, sync::Arc};

use mesh_core::resource::{
    BackendReference, Document, DocumentContext, L4RouteRule, ObjectMeta, ParentReference,
    Resource, ResourceError, ResourceErrorKind, TcpRoute, TlsRoute,
};
use serde::Deserialize;

use super::{
    BackendKind, ConfigWarning, HostRank, NamedRoutes, Parent, ParentKind, RetryResources,
    RouteHosts, RuleRoute, check_original_destination,
    precedence::{self, RouteSource, Timestamp},
};

/// The kind of an [`L4Route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4RouteKind {
    /// A `TLSRoute`: taken by the SNI of the connection's ClientHello.
    Tls,
    /// A `TCPRoute`: taken by every connection to its port.
    Tcp,
}

impl L4RouteKind {
    /// The kind as a resource names it: `TLSRoute` or `TCPRoute`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Tls => TlsRoute::KIND,
            Self::Tcp => TcpRoute::KIND,
        }
    }
}

/// Where a connection route sends its connections, and the share that
/// goes there: one of its rule's `backendRefs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Backend {
    /// The Service's name; for the original destination, the name of the
    /// `EgressNetwork` the entry names, the route's parent (which only an
    /// `EgressNetwork`'s route may name).
    pub name: String,
    /// Its namespace: the entry's, else the route's; `None` when neither
    /// names one.
    pub namespace: Option<String>,
    /// The entry's `port`: for a Service, the port its connections go to,
    /// which the Gateway API requires and the reader refuses to go
    /// without; for the original destination, as written, and unused (a
    /// connection goes on to the port it was sent to).
    pub port: Option<u16>,
    /// Its share relative to the rule's other backends: the entry's
    /// `weight`, 1 when absent. A backend of weight 0 gets no
    /// connections.
    pub weight: u32,
    /// A Service, or the parent `EgressNetwork`, which stands for the
    /// original destination.
    pub kind: BackendKind,
}

/// A `TLSRoute` or `TCPRoute` attached to a Service or an
/// `EgressNetwork`, as read for one `parentRefs` entry. Its fields say what metrics label it with
/// (Linkerd's `route_group`, `route_kind`, `route_namespace`,
/// `route_name`, and `parent_port`) and where its connections go.
#[derive(Clone, Debug)]
pub struct L4Route {
    /// `TLSRoute` or `TCPRoute`.
    pub kind: L4RouteKind,
    /// Its API group, `gateway.networking.k8s.io`.
    pub group: String,
    /// Its `metadata.namespace`; `None` when it was written without one,
    /// and so is in the namespace it is applied to.
    pub namespace: Option<String>,
    /// Its `metadata.name`.
    pub name: String,
    /// The `port` of the `parentRefs` entry: the destination port whose
    /// connections it takes; `None` for every port.
    pub port: Option<u16>,
    /// A `TLSRoute`'s `hostnames`, as written; empty, any SNI (and a
    /// `TCPRoute`'s).
    pub hostnames: Vec<String>,
    /// Its rule's backends; empty when the rule names none, which sends
    /// the connections to the parent itself, as Linkerd does: the
    /// original destination for an `EgressNetwork`, the Service's own
    /// endpoints for a Service.
    pub backends: Vec<L4Backend>,
    /// The hostnames, ready to match an SNI.
    hosts: RouteHosts,
    /// `metadata.creationTimestamp`, the first tie-breaker.
    created: Option<Timestamp>,
    /// `{namespace}/{name}`, with an empty namespace for a route written
    /// without one: the second.
    route: Arc<str>,
    /// `{namespace}/{name}` of a route written without a namespace, in its
    /// client's namespace once a selection knows it.
    applied: Option<Arc<str>>,
    /// The route's namespace when it is not its parent's: a consumer
    /// route, for the clients of that namespace alone.
    consumer: Option<Arc<str>>,
    /// Where it was read.
    source: Arc<RouteSource>,
}

impl L4Route {
    /// The route object, as metrics label it (Linkerd's `route_group`,
    /// `route_kind`, `route_namespace`, `route_name`).
    pub fn route(&self) -> RuleRoute<'_> {
        RuleRoute {
            group: &self.group,
            kind: self.kind.kind(),
            namespace: self.namespace.as_deref(),
            name: &self.name,
        }
    }

    /// Where it was read, as a [`ConfigWarning`] names its place:
    /// `egress.yaml: document 3 (TLSRoute egress-test/tls-egress): spec.parentRefs[0]`.
    pub fn place(&self) -> String {
        self.place_of(&format!("spec.parentRefs[{}]", self.source.parent))
    }

    /// Where `field` of the route was read, as [`place`](Self::place)
    /// names its parent: `egress.yaml: document 3 (TCPRoute db/move):
    /// spec.rules[0].backendRefs[1]`.
    pub fn place_of(&self, field: &str) -> String {
        let source = &self.source;
        format!(
            "{}: document {} ({}): {field}",
            source.origin,
            source.document,
            source.named(Some(self.kind.kind())),
        )
    }

    /// How specifically the route's hostnames match `sni`, or `None` when
    /// they do not: a connection without an SNI matches only a route
    /// without hostnames.
    pub fn rank_sni(&self, sni: Option<&str>) -> Option<HostRank> {
        self.hosts.rank_host(sni)
    }

    /// The route object, as [`RetryResources::merge`] names a second of
    /// one, and where it was read.
    pub(super) fn object(&self) -> (super::RouteObject, Arc<RouteSource>) {
        (
            (self.group.clone(), self.kind.kind(), self.route.clone()),
            self.source.clone(),
        )
    }

    /// Whether the route takes connections to `port`.
    fn takes_port(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// The Gateway API's ties, as Linkerd orders the routes of a port:
    /// the oldest first, one with a timestamp before one without (which,
    /// applied now, would be the newest); then by `{namespace}/{name}`.
    fn tie(&self, other: &Self) -> Ordering {
        Timestamp::older_first(self.created, other.created)
            .then_with(|| self.ranked_name().cmp(other.ranked_name()))
    }

    fn ranked_name(&self) -> &str {
        self.applied.as_deref().unwrap_or(&self.route)
    }
}

/// A parent's `TLSRoute`s and `TCPRoute`s, each list in the
/// order a port's routes are tried ([`rank`](Self::rank)).
#[derive(Clone, Debug, Default)]
pub(super) struct L4Routes {
    pub(super) tls: Vec<L4Route>,
    pub(super) tcp: Vec<L4Route>,
}

impl L4Routes {
    /// Every route, `TLSRoute`s first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &L4Route> {
        self.tls.iter().chain(&self.tcp)
    }

    /// Orders each list as Linkerd orders a port's routes. The sort is
    /// stable: of two routes that tie (one object read from two texts),
    /// the one read first stays first.
    pub(super) fn rank(&mut self) {
        self.tls.sort_by(L4Route::tie);
        self.tcp.sort_by(L4Route::tie);
    }

    /// Adds `other`'s routes, as read after these.
    pub(super) fn append(&mut self, other: Self) {
        self.tls.extend(other.tls);
        self.tcp.extend(other.tcp);
        self.rank();
    }

    /// Whether any route is a consumer route.
    pub(super) fn has_consumer_routes(&self) -> bool {
        self.iter().any(|r| r.consumer.is_some())
    }

    /// Keeps the routes a client in `namespace` is served: the producer
    /// routes and that namespace's consumer routes.
    pub(super) fn retain_for(&mut self, namespace: &str) {
        let keep = |r: &L4Route| r.consumer.as_deref().is_none_or(|c| c == namespace);
        self.tls.retain(keep);
        self.tcp.retain(keep);
    }

    /// Places each route written without a namespace in `namespace`, where
    /// ties rank it. Returns whether any rank changed.
    pub(super) fn apply_in(&mut self, namespace: &str) -> bool {
        let mut changed = false;
        for route in self.tls.iter_mut().chain(&mut self.tcp) {
            changed |= precedence::apply_in(&route.route, &mut route.applied, namespace);
        }
        changed
    }

    /// Keeps the routes that take connections to `port`.
    pub(super) fn retain_port(&mut self, port: u16) {
        self.tls.retain(|r| r.takes_port(port));
        self.tcp.retain(|r| r.takes_port(port));
    }

    /// The `TLSRoute` that takes a connection to `port` with `sni`: see
    /// [`ServiceRetryPolicy::tls_route`](super::ServiceRetryPolicy::tls_route).
    pub(super) fn tls_route(&self, port: u16, sni: Option<&str>) -> Option<&L4Route> {
        let mut best: Option<(HostRank, &L4Route)> = None;
        for route in self.tls.iter().filter(|r| r.takes_port(port)) {
            let Some(rank) = route.rank_sni(sni) else {
                continue;
            };
            if best.is_none_or(|(b, _)| rank > b) {
                best = Some((rank, route));
            }
        }
        best.map(|(_, route)| route)
    }

    /// The `TCPRoute` that takes a connection to `port`.
    pub(super) fn tcp_route(&self, port: u16) -> Option<&L4Route> {
        self.tcp.iter().find(|r| r.takes_port(port))
    }
}

/// What a port of a Service or an `EgressNetwork` is served, as Linkerd's
/// policy controller decides it for a port's routes
/// ([`ServiceRetryPolicy::routes_on`](super::ServiceRetryPolicy::routes_on)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortRoutes {
    /// `HTTPRoute`s or `GRPCRoute`s take the port: its traffic is HTTP,
    /// whatever `TLSRoute`s and `TCPRoute`s it also has.
    Http,
    /// `TLSRoute`s take the port (and no HTTP route does).
    Tls,
    /// `TCPRoute`s take the port (and no other kind does).
    Tcp,
    /// No route takes the port: its connections take the parent's
    /// default (the Service itself, or the network's default route).
    None,
}

/// The part of a route's document its model leaves out: the
/// `metadata.creationTimestamp` that orders it among the others.
#[derive(Debug, Default, Deserialize)]
struct Created {
    #[serde(default)]
    metadata: CreatedMeta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedMeta {
    #[serde(default)]
    creation_timestamp: Option<String>,
}

/// A `TLSRoute` or `TCPRoute` as both models read: what the reader needs
/// of either.
struct Read<'t> {
    kind: L4RouteKind,
    context: DocumentContext<'t>,
    ignored: Vec<String>,
    group: String,
    metadata: ObjectMeta,
    parent_refs: Vec<ParentReference>,
    hostnames: Vec<String>,
    rules: Vec<L4RouteRule>,
}

/// Reads `document`, a `TLSRoute` or `TCPRoute`, into `loaded`: the routes
/// for each Service and `EgressNetwork` parent, and one warning naming the
/// parents of other kinds (a `Gateway`, a `Server`), whose connections
/// the route does not take here. `again`
/// is the same document from a second reading of the text, for its
/// creation time; `named` the routes read so far from the text, to refuse
/// a second of one name.
pub(super) fn read(
    document: Document<'_>,
    again: Option<Document<'_>>,
    loaded: &mut RetryResources,
    named: &mut NamedRoutes,
) -> Result<(), ResourceError> {
    let route = if document.is::<TlsRoute>() {
        let parsed = document.read::<TlsRoute>()?;
        let value = parsed.value;
        Read {
            kind: L4RouteKind::Tls,
            context: parsed.context,
            ignored: parsed.ignored.into_iter().map(|i| i.path).collect(),
            group: value.api_version.group().to_owned(),
            metadata: value.metadata,
            parent_refs: value.spec.parent_refs,
            hostnames: value.spec.hostnames,
            rules: value.spec.rules,
        }
    } else {
        let parsed = document.read::<TcpRoute>()?;
        let value = parsed.value;
        Read {
            kind: L4RouteKind::Tcp,
            context: parsed.context,
            ignored: parsed.ignored.into_iter().map(|i| i.path).collect(),
            group: value.api_version.group().to_owned(),
            metadata: value.metadata,
            parent_refs: value.spec.parent_refs,
            hostnames: Vec::new(),
            rules: value.spec.rules,
        }
    };
    let context = &route.context;
    let kind = route.kind.kind();
    let mut parents = Vec::new();
    let mut unapplied = Vec::new();
    for (index, p) in route.parent_refs.iter().enumerate() {
        let kind = if p.is_egress_network() {
            ParentKind::EgressNetwork
        } else if p.is_service() {
            ParentKind::Service
        } else {
            unapplied.push((index, p));
            continue;
        };
        parents.push(Parent {
            kind,
            name: p.name.clone(),
            namespace: p
                .namespace
                .clone()
                .or_else(|| route.metadata.namespace.clone()),
            index,
            port: p.port,
        });
    }
    if let Some(warning) = unapplied_warning(&route, &unapplied) {
        loaded.warnings.push(warning);
    }
    if parents.is_empty() {
        return Ok(());
    }
    super::refuse_second(named, &route.group, kind, &route.metadata, context)?;
    loaded.warnings.extend(
        route
            .ignored
            .iter()
            .map(|path| ConfigWarning::ignored(context, path.clone())),
    );
    // Linkerd's policy controller takes a TLSRoute or TCPRoute of one rule
    // only, and drops one with more (its `convert_route`); the Gateway
    // API's v1 TLSRoute allows one.
    if route.rules.len() > 1 {
        return Err(context.error(
            ResourceErrorKind::InvalidValue,
            "spec.rules[1]",
            format!(
                "a {kind} has one rule in Linkerd, whose policy controller does not serve one \
                 with {} and so leaves its connections to the default route; write each rule \
                 as a {kind} of its own",
                route.rules.len()
            ),
        ));
    }
    let namespace = route.metadata.namespace.as_deref();
    let backends = match route.rules.first() {
        Some(rule) => backends(rule, namespace, context, loaded)?,
        None => Vec::new(),
    };
    let written = match again {
        Some(doc) => doc.parse::<Created>()?.value.metadata.creation_timestamp,
        None => None,
    };
    let created = precedence::created(written.as_deref(), context)?;
    let hosts = RouteHosts::new(&route.hostnames);
    let key: Arc<str> = format!("{}/{}", namespace.unwrap_or(""), route.metadata.name).into();
    for parent in parents {
        for (j, backend) in backends.iter().enumerate() {
            if backend.kind == BackendKind::OriginalDestination {
                check_original_destination(
                    &format!("spec.rules[0].backendRefs[{j}]"),
                    &backend.name,
                    backend.namespace.as_deref(),
                    &parent,
                    context,
                )?;
            }
        }
        let consumer = parent.consumer(namespace);
        let source = parent.source(context, &route.metadata, &route.group);
        let l4 = L4Route {
            kind: route.kind,
            group: route.group.clone(),
            namespace: route.metadata.namespace.clone(),
            name: route.metadata.name.clone(),
            port: parent.port,
            hostnames: route.hostnames.clone(),
            backends: backends.clone(),
            hosts: hosts.clone(),
            created,
            route: key.clone(),
            applied: None,
            consumer,
            source,
        };
        let policy = loaded.parent_mut(parent.kind, &parent.name, parent.namespace.as_deref());
        match route.kind {
            L4RouteKind::Tls => policy.l4.tls.push(l4),
            L4RouteKind::Tcp => policy.l4.tcp.push(l4),
        }
    }
    Ok(())
}

/// The warning for the `parentRefs` entries of `route` that are neither a
/// Service nor an `EgressNetwork` (`unapplied`, by index), or for a route
/// without any: one per route, at the first such entry, naming them all.
fn unapplied_warning(
    route: &Read<'_>,
    unapplied: &[(usize, &ParentReference)],
) -> Option<ConfigWarning> {
    let kind = route.kind.kind();
    let context = &route.context;
    if route.parent_refs.is_empty() {
        return Some(ConfigWarning::new(
            context,
            "spec.parentRefs".to_owned(),
            format!(
                "a {kind} without parentRefs is not applied: it is read for the Services and \
                 EgressNetworks it names, and names none"
            ),
        ));
    }
    let (first, _) = unapplied.first()?;
    let named: Vec<String> = unapplied
        .iter()
        .map(|(i, p)| {
            let namespace = p
                .namespace
                .as_deref()
                .or(route.metadata.namespace.as_deref());
            let name = match namespace {
                Some(ns) => format!("{ns}/{}", p.name),
                None => p.name.clone(),
            };
            // A `kind: Service` of another group than the core one (the
            // Gateway API's, when `group` is left out) is no Service.
            if p.kind().eq_ignore_ascii_case("Service") {
                format!(
                    "{} {name} of group {} (parentRefs[{i}])",
                    p.kind(),
                    p.group()
                )
            } else {
                format!("{} {name} (parentRefs[{i}])", p.kind())
            }
        })
        .collect();
    let why = "the sidecar reads TLSRoutes and TCPRoutes for Services and EgressNetworks, the \
               parents Linkerd serves them on, and authorization reads neither kind";
    Some(ConfigWarning::new(
        context,
        format!("spec.parentRefs[{first}]"),
        format!(
            "a {kind} attached to {} is not applied: {why}",
            named.join(", ")
        ),
    ))
}

/// The rule's `backendRefs`, checked: each a Service with its port, or an
/// `EgressNetwork` (the original destination, checked against each
/// parent by the caller); with a warning when every weight is 0.
fn backends(
    rule: &L4RouteRule,
    namespace: Option<&str>,
    context: &DocumentContext<'_>,
    loaded: &mut RetryResources,
) -> Result<Vec<L4Backend>, ResourceError> {
    let backends = rule
        .backend_refs
        .iter()
        .enumerate()
        .map(|(j, backend)| backend_of(backend, j, namespace, context))
        .collect::<Result<Vec<_>, _>>()?;
    if !backends.is_empty() && backends.iter().all(|b| b.weight == 0) {
        loaded.warnings.push(ConfigWarning::new(
            context,
            "spec.rules[0].backendRefs".to_owned(),
            "every backend has weight 0: the route's connections are refused, as the Gateway \
             API asks"
                .to_owned(),
        ));
    }
    Ok(backends)
}

fn backend_of(
    backend: &BackendReference,
    j: usize,
    namespace: Option<&str>,
    context: &DocumentContext<'_>,
) -> Result<L4Backend, ResourceError> {
    let entry = || format!("spec.rules[0].backendRefs[{j}]");
    let kind = BackendKind::of(backend, context, entry)?;
    if kind == BackendKind::Service && backend.port.is_none() {
        // At the entry, where a `port` is to be written.
        return Err(context.error(
            ResourceErrorKind::MissingField,
            &entry(),
            format!(
                "backend Service {} names no port: the Gateway API requires the port of a \
                 Service backend, and Linkerd fails the connections of one without",
                backend.name
            ),
        ));
    }
    // The reader refused a weight above MAX_BACKEND_WEIGHT.
    Ok(L4Backend {
        name: backend.name.clone(),
        namespace: backend
            .namespace
            .as_deref()
            .or(namespace)
            .map(str::to_owned),
        port: backend.port,
        weight: backend.weight.unwrap_or(1),
        kind,
    })
}
