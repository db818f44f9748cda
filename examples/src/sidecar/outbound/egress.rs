//! Egress: requests, and `CONNECT`s, for names no outbound service has,
//! sent out of the mesh or refused by Linkerd's `EgressNetwork`s.
//!
//! # Why
//!
//! Linkerd 2.17 lets operators observe and control the traffic that
//! leaves the cluster with the `EgressNetwork` resource
//! (<https://linkerd.io/2.17/reference/egress-network/>): a network
//! captures the destination addresses of its `networks` (every address
//! outside the cluster networks when it names none), and its
//! `trafficPolicy` allows or refuses what goes there; the walkthrough
//! (<https://linkerd.io/2.17/tasks/managing-egress-traffic/>) then reads
//! that traffic in the outbound route families, under the network. The
//! sidecar reads the same resource (mesh-policy's
//! [`EgressNetworks`](mesh_policy::egress::EgressNetworks), compiled with
//! the rest of the policy and reloaded with it), so a Linkerd user's
//! `EgressNetwork` does here what it does there.
//!
//! Linkerd's proxy is transparent: it sees the address the application
//! connected to, and forwards an address no service has as it is, by
//! default. The sidecar is an explicit proxy: it has only the name the
//! application gave it (the request's authority, or the `CONNECT`'s
//! target), and without an `EgressNetwork` such a request gets the mesh's
//! 404 (`mesh-error: no route`), as it always has. Opening egress is one
//! resource away (`trafficPolicy: Allow`, no `networks`).
//!
//! # How
//!
//! The router hands a request whose authority names no service to
//! [`Egress`] (ingress mode's destination override aside, which keeps its
//! 404). When the policy has no `EgressNetwork`, that is the 404, and
//! nothing more is done. Otherwise the authority's host (an IP literal,
//! or a name looked up, [`HostCache`]) and port (else 80) give the
//! destination address, and the network that captures it
//! ([`EgressNetworks::find`](mesh_policy::egress::EgressNetworks::find))
//! decides:
//!
//! - none: the 404 of today (an address in the cluster networks, say);
//!   so does an address of the sidecar's own listeners: its outbound
//!   ones, where the request would loop, and its admin and inbound ones,
//!   which it would reach from loopback ([`EgressShared::loops`]);
//! - `Deny`: `403` with `mesh-error: egress denied` ([`EGRESS_DENIED`]),
//!   gRPC `PERMISSION_DENIED` (7), as the mesh refuses other calls;
//!   nothing is sent. The network is logged at debug; the answer does not
//!   name it, so that clients and metrics can match one text;
//! - `Allow`: the request is sent in plaintext to the destination address
//!   (no mutual TLS: it leaves the mesh), its `Host` unchanged, through
//!   a pooled client of this runtime; a connect that fails is answered as
//!   a service's is (`502`, `mesh-error: upstream connect error`).
//!
//! A name that does not resolve is answered `502` with `mesh-error:
//! upstream connect error`, the name in the debug log: the request could
//! not be sent anywhere. A name is looked up at most once every
//! [`HOST_TTL`] (a failed one every [`FAILED_HOST_TTL`]) in a cache of
//! [`CACHED_HOSTS`] names; concurrent requests for a name share its
//! lookup, so a name server that hangs holds one thread of the blocking
//! pool per name. Its first address is the destination.
//!
//! A target that names a scheme other than `http` (HTTP/1's absolute
//! form `https://…`, HTTP/2's `:scheme https`) asks the proxy to reach
//! the destination over TLS, which egress does not do: it is answered
//! `501` ([`EGRESS_NOT_HTTP`]) before any lookup, and nothing is sent.
//! HTTPS leaves through `CONNECT`, whose tunnel carries the client's TLS.
//!
//! # Routes
//!
//! Linkerd shapes the traffic a network captures with the `HTTPRoute`s
//! and `GRPCRoute`s whose `parentRefs` name the network (the walkthrough
//! lets `GET /get` out of a `Deny` network with one). The sidecar reads
//! them from the same policy files (mesh-retry's
//! [`RetryResources::egress_networks`](mesh_retry::config::RetryResources)),
//! and plans them with the services' routes, on start and on every
//! reload (`plan::EgressPlans`): per network, the routes of each port a
//! `parentRefs` entry names and those of every other port (the routes
//! attached without one), each set ranked as a service's routes are.
//! A captured request looks its network's routes for its destination
//! port up as the router looks a service's up (hostnames, then matches,
//! in precedence order); one that a rule takes is served by the rule,
//! whatever the network's `trafficPolicy`: its header filters or
//! redirect, its timeouts, its retries (on a budget per network), and
//! its backends by weight: the original destination (a `backendRefs`
//! entry of kind `EgressNetwork`, or none), in plaintext as the default
//! route sends it, or outbound services, each over its own endpoints and
//! TLS, as a split's backends. A request no rule takes goes to the
//! network's default route, as Linkerd serves a network its routes
//! followed by that one.
//!
//! # Metrics
//!
//! Linkerd's default egress routes neither retry nor time out. Their
//! requests are counted in the outbound route families as Linkerd labels
//! them: the parent and the backend are the network
//! (`group="policy.linkerd.io"`, `kind="EgressNetwork"`, its namespace and
//! name, `port` the destination port), the route is `kind="default"`
//! named `http-egress-allow` or `http-egress-deny` (`grpc-egress-*` for a
//! gRPC call), and `hostname` is the request's host when it is a DNS
//! name, empty for an IP literal, as linkerd2-proxy exports only DNS
//! names ([`is_dns_name`]). A refused request is a failure the route
//! injects, labelled by its status alone (`http_status="403"` or
//! `grpc_status="PERMISSION_DENIED"`, `error=""`), as Linkerd labels one
//! ([`injected`]). A rule's requests
//! have the same parent, the rule's `HTTPRoute` or `GRPCRoute` as the
//! route (`group`, `kind`, namespace and name), and its backends. Names
//! are unbounded, so each route labels at most [`HOSTNAMES_PER_ROUTE`]
//! distinct ones, and counts the rest under `hostname=""`. The golden
//! `request_total`/`response_total` count egress under
//! `dst_service="EgressNetwork/<namespace>/<name>"` and the route's name:
//! one series per network and route, however many hosts; they label a
//! refusal as the mesh's answer, `error="denied"`.
//!
//! A runtime builds a route's stack for a host label and destination
//! when a request first needs it, and keeps it until the routes are
//! planned again (or [`CACHED_STACKS`] are kept): the labels are the
//! request's, the plan is the reload's.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::{BoxFuture, Either, FutureExt, Shared};
use http::{Request, Response, header, uri::Authority};
use hyper::body::Incoming;
use mesh_core::{
    BoxError, ProxyErrorKind, RouteId,
    error::is_grpc,
    labels::DstService,
    proxy::Forward,
    route::{EditHeadersLayer, HeaderEdit},
};
use mesh_metrics::http::ResponseBody;
use mesh_retry::{
    Budget, RetryMetrics, RetryPolicy, RouteRetryPolicy, Timeouts, replay::ReplayBody,
};
use tokio::{sync::watch, time::Instant};
use tower::{
    Layer, Service, ServiceExt,
    util::{MapResponse, Oneshot},
};

use super::backend::{Counted, CountedBody, RouteTimeouts};
use super::dst_override::strip;
use super::labels::{RouteLabels, RouteRef, ServiceRef};
use super::plan::{EgressRulePlan, PlannedBackend, RoutePlans};
use super::router::{MeshAnswer, NoRoute, UnknownAuthority, host_from_authority};
use super::split::{Backend, Split};
use super::upstream::Upstream;
use super::{
    Endpoint, NotFound, RouteBody, RouteLayers, RouteStack, ServiceConnectors, route_stack,
};
use crate::sidecar::inbound::strip_connection_listed;

/// The `mesh-error` (and `grpc-message`) of a request, or `CONNECT`, an
/// `EgressNetwork` with `trafficPolicy: Deny` refused: one text whatever
/// the network, which the debug log names.
pub(crate) const EGRESS_DENIED: &str = "egress denied";

/// The `mesh-error` (and `grpc-message`) of a request for an unknown
/// authority whose target names a scheme other than `http`: an
/// `https://` one asks the proxy to open TLS to the destination, which
/// egress does not do (it sends plaintext, to port 80 by default), so it
/// is answered `501` and sent nowhere. HTTPS leaves through `CONNECT`.
pub(crate) const EGRESS_NOT_HTTP: &str = "egress sends http only: use CONNECT for https";

/// The distinct hosts one egress route labels its families with; the
/// rest are counted under `hostname=""`.
pub(crate) const HOSTNAMES_PER_ROUTE: usize = 100;

/// The names the lookup cache holds; when full, the expired ones go, and
/// if none has, all of them.
pub(crate) const CACHED_HOSTS: usize = 1024;

/// How long a name's address is used before it is looked up again.
pub(crate) const HOST_TTL: Duration = Duration::from_secs(30);

/// How long a name that did not resolve is answered so before it is
/// looked up again.
pub(crate) const FAILED_HOST_TTL: Duration = Duration::from_secs(5);

/// The route stacks one runtime keeps (one per network, route, host
/// label and destination); when full, or when the routes are planned
/// again, they are all dropped and built again as requests come.
const CACHED_STACKS: usize = 1024;

/// An `EgressNetwork` that captures an address: what egress needs of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Captured {
    pub(crate) namespace: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) allow: bool,
}

/// Where egress reads the `EgressNetwork`s in force: the policy store,
/// whose policy a reload replaces whole, so that egress changes with the
/// rest of the policy, and a refused reload leaves the last good
/// networks.
pub(crate) trait EgressSource: fmt::Debug + Send + Sync + 'static {
    /// Whether the policy has no `EgressNetwork` for this workload.
    fn is_empty(&self) -> bool;
    /// The network that captures `ip` for this workload, if any.
    fn find(&self, ip: IpAddr) -> Option<Captured>;
}

impl EgressSource for mesh_policy::PolicyStore {
    fn is_empty(&self) -> bool {
        self.current().egress_networks().is_empty()
    }

    fn find(&self, ip: IpAddr) -> Option<Captured> {
        let policy = self.current();
        let network = policy.egress_networks().find(ip)?;
        Some(Captured {
            namespace: network.shared_namespace().clone(),
            name: network.shared_name().clone(),
            allow: network.traffic_policy() == mesh_policy::egress::TrafficPolicy::Allow,
        })
    }
}

/// The host and port a request is for: its target's authority, else its
/// `Host`; the port 80 when it names none. The host is lowercased, without
/// an IPv6 literal's brackets or a name's trailing dot.
pub(crate) fn destination<B>(req: &Request<B>) -> Option<(String, u16)> {
    let authority = match req.uri().authority() {
        Some(authority) => authority.clone(),
        None => {
            let host = req.headers().get(header::HOST)?;
            Authority::try_from(host.as_bytes()).ok()?
        }
    };
    let port = authority.port_u16().unwrap_or(80);
    Some((host_of(&authority), port))
}

/// Whether a request with target `uri` asks for plain HTTP: its target
/// names no scheme (HTTP/1's origin form) or `http`. HTTP/1's absolute
/// form and HTTP/2's `:scheme` may name `https`, which the client means
/// to reach over TLS: sent on in plaintext, as egress sends, its headers
/// and body would cross the network in the clear, to port 80.
fn in_plain_http(uri: &http::Uri) -> bool {
    uri.scheme_str()
        .is_none_or(|scheme| scheme.eq_ignore_ascii_case("http"))
}

/// `authority`'s host, lowercased, without brackets or a trailing dot.
pub(crate) fn host_of(authority: &Authority) -> String {
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

type Lookup = Shared<BoxFuture<'static, Option<IpAddr>>>;

/// How a name is looked up: the system's resolver, on the blocking pool.
type LookUp = Arc<dyn Fn(String) -> BoxFuture<'static, Option<IpAddr>> + Send + Sync>;

type Entries = Arc<Mutex<HashMap<Box<str>, Cached>>>;

#[derive(Clone)]
enum Cached {
    Ready { at: Instant, addr: Option<IpAddr> },
    Looking(Lookup),
}

/// The addresses of the names egress requests are for, looked up with
/// the system's resolver on the blocking pool, each at most once every
/// [`HOST_TTL`]. See the [module docs](self).
///
/// A lookup runs as a task of its own, which records its answer, and the
/// time it came, when it ends: the requests that wait for it may all be
/// given up (their clients gone) before it does, and the next request for
/// the name must then find a fresh answer or look again, not take up an
/// answer as old as the lookup that was left behind.
pub(crate) struct HostCache {
    entries: Entries,
    look_up: LookUp,
}

impl fmt::Debug for HostCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCache").finish_non_exhaustive()
    }
}

impl HostCache {
    pub(crate) fn new() -> Self {
        Self::with_lookup(Arc::new(|host| look_up(host).boxed()))
    }

    fn with_lookup(look_up: LookUp) -> Self {
        Self {
            entries: Arc::default(),
            look_up,
        }
    }

    /// The address of `host`: itself when it is an IP literal, else the
    /// first its lookup gives; `None` when it does not resolve.
    pub(crate) async fn resolve(&self, host: &str) -> Option<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(ip);
        }
        let lookup = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get(host) {
                Some(Cached::Ready { at, addr }) if fresh(*at, *addr) => return *addr,
                Some(Cached::Looking(lookup)) => lookup.clone(),
                _ => {
                    if entries.len() >= CACHED_HOSTS {
                        entries.retain(|_, cached| match cached {
                            Cached::Ready { at, addr } => fresh(*at, *addr),
                            Cached::Looking(_) => true,
                        });
                        if entries.len() >= CACHED_HOSTS {
                            entries.clear();
                        }
                    }
                    // Spawned under the lock: the task records its answer
                    // only once the entry below is in.
                    let lookup = self.spawn(host);
                    entries.insert(host.into(), Cached::Looking(lookup.clone()));
                    lookup
                }
            }
        };
        lookup.await
    }

    /// Looks `host` up in a task of its own, for at most
    /// [`LOOKUP_TIMEOUT`](mesh_core::proxy::resolve::LOOKUP_TIMEOUT),
    /// which records the answer in the cache when it comes, whether or not
    /// a request still waits for it.
    fn spawn(&self, host: &str) -> Lookup {
        let looking = (self.look_up)(host.to_owned());
        let entries = self.entries.clone();
        let key: Box<str> = host.into();
        let task = tokio::spawn(async move {
            let timeout = mesh_core::proxy::resolve::LOOKUP_TIMEOUT;
            let addr = match tokio::time::timeout(timeout, looking).await {
                Ok(addr) => addr,
                Err(_) => {
                    tracing::debug!(host = &*key, "egress: the lookup timed out");
                    None
                }
            };
            let mut entries = entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = entries.get_mut(&key)
                && matches!(cached, Cached::Looking(_))
            {
                *cached = Cached::Ready {
                    at: Instant::now(),
                    addr,
                };
            }
            addr
        });
        async move { task.await.ok().flatten() }.boxed().shared()
    }

    /// The address of `host` if it is an IP literal or its last lookup is
    /// fresh, without waiting: what a `CONNECT`'s target is checked with,
    /// after [`resolve`](Self::resolve) has run.
    pub(crate) fn peek(&self, host: &str) -> Option<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(ip);
        }
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(host)? {
            Cached::Ready { at, addr } if fresh(*at, *addr) => *addr,
            _ => None,
        }
    }
}

fn fresh(at: Instant, addr: Option<IpAddr>) -> bool {
    let ttl = if addr.is_some() {
        HOST_TTL
    } else {
        FAILED_HOST_TTL
    };
    at.elapsed() < ttl
}

/// Looks `host` up on the blocking pool: its first address.
async fn look_up(host: String) -> Option<IpAddr> {
    let name = host.clone();
    let task = tokio::task::spawn_blocking(move || super::endpoints::lookup::system(&name, 0));
    match task.await {
        Ok(Ok(addrs)) => {
            let addr = addrs.first().map(SocketAddr::ip);
            if addr.is_none() {
                tracing::debug!(host, "egress: the name has no address");
            }
            addr
        }
        Ok(Err(error)) => {
            tracing::debug!(host, %error, "egress: the name does not resolve");
            None
        }
        Err(error) => {
            tracing::debug!(host, %error, "egress: the lookup failed");
            None
        }
    }
}

/// The hosts each egress route has labelled its families with, at most
/// [`HOSTNAMES_PER_ROUTE`] per route: shared by every runtime, so that
/// the bound is the process's.
#[derive(Debug, Default)]
pub(crate) struct Hostnames(Mutex<HashMap<(Captured, RouteRef), HashSet<String>>>);

impl Hostnames {
    /// The `hostname` label of `host` on the route `route` of `network`:
    /// `host` itself when it is a DNS name ([`is_dns_name`]), unless the
    /// route already labels as many others as it may; else empty. An IP
    /// literal takes no place under the bound.
    pub(crate) fn label(&self, network: &Captured, route: &RouteRef, host: &str) -> String {
        if !is_dns_name(host) {
            return String::new();
        }
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let hosts = seen.entry((network.clone(), route.clone())).or_default();
        if hosts.contains(host) {
            return host.to_owned();
        }
        if hosts.len() < HOSTNAMES_PER_ROUTE {
            hosts.insert(host.to_owned());
            return host.to_owned();
        }
        String::new()
    }
}

/// Whether `host` (as [`host_of`] gives it: lowercased, without brackets
/// or a trailing dot) is a DNS name, which alone is exported as a route's
/// `hostname`: at most 253 bytes of labels of 1 to 63 letters, digits,
/// hyphens (neither first nor last) and underscores, the last label not
/// all digits. linkerd2-proxy labels a route's requests with the host of
/// their URI only when it parses as its `dns::Name`, whose rules these
/// are (`Route::new` in
/// `linkerd/app/outbound/src/http/logical/policy/route/metrics/labels.rs`,
/// `linkerd/dns/name/src/name.rs`): an IP literal, IPv4 (whose last label
/// is all digits, as is that of its shorter forms, `127.1`) or IPv6, is
/// labelled `hostname=""`.
fn is_dns_name(host: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    host.len() <= 253
        && host.split('.').all(label_ok)
        && host
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

/// The name of Linkerd's default egress route for `network`'s policy, an
/// HTTP request's or a gRPC call's (`grpc`).
pub(crate) fn route_name(allow: bool, grpc: bool) -> &'static str {
    match (grpc, allow) {
        (false, true) => "http-egress-allow",
        (false, false) => "http-egress-deny",
        (true, true) => "grpc-egress-allow",
        (true, false) => "grpc-egress-deny",
    }
}

/// The golden families' `dst_service` of egress through `network`.
fn dst_service(network: &Captured) -> DstService {
    DstService(Arc::from(format!(
        "EgressNetwork/{}/{}",
        network.namespace, network.name
    )))
}

/// What every runtime's egress shares: the lookups, the hostname labels,
/// the plaintext connectors, and the families.
#[derive(Debug)]
pub(crate) struct EgressShared {
    pub(crate) hosts: HostCache,
    /// The sidecar's own listeners, as bound: never a destination. The
    /// outbound ones, where a request would loop (see `endpoints/own.rs`),
    /// and the admin and inbound ones, which egress would reach from
    /// loopback: the admin server serves `/shutdown` and `/env.json` to
    /// loopback peers alone, and a request from outside (in ingress mode,
    /// or on an outbound listener that is not on loopback) must not turn
    /// into one.
    listeners: Vec<SocketAddr>,
    hostnames: Hostnames,
    connectors: ServiceConnectors,
    layers: RouteLayers,
    retries: RetryMetrics,
    budget: Arc<Budget>,
    /// The default routes' labels, by [`route_name`]'s arguments
    /// (`[http deny, http allow, grpc deny, grpc allow]`), made once.
    defaults: [RouteRef; 4],
}

impl EgressShared {
    pub(super) fn new(
        connectors: ServiceConnectors,
        layers: RouteLayers,
        listeners: impl IntoIterator<Item = SocketAddr>,
        retries: &RetryMetrics,
    ) -> Self {
        let default = |allow, grpc| RouteRef::default_named(route_name(allow, grpc));
        Self {
            hosts: HostCache::new(),
            listeners: listeners.into_iter().collect(),
            hostnames: Hostnames::default(),
            connectors,
            layers,
            retries: retries.clone(),
            budget: Arc::new(Budget::default()),
            defaults: [
                default(false, false),
                default(true, false),
                default(false, true),
                default(true, true),
            ],
        }
    }

    /// The labels of the default route of a network of policy `allow`,
    /// for an HTTP request or a gRPC call (`grpc`).
    fn default_route(&self, allow: bool, grpc: bool) -> &RouteRef {
        let [http_deny, http_allow, grpc_deny, grpc_allow] = &self.defaults;
        match (grpc, allow) {
            (false, false) => http_deny,
            (false, true) => http_allow,
            (true, false) => grpc_deny,
            (true, true) => grpc_allow,
        }
    }

    /// Whether a connection to `dst` would arrive at one of the sidecar's
    /// own listeners: egress to an outbound one would loop, each round on
    /// a new connection, until the connection limit, and to the admin or
    /// an inbound one would come from loopback, which the admin server
    /// trusts. Such an address is never egress: it gets the 404 of an
    /// unknown authority.
    pub(crate) fn loops(&self, dst: SocketAddr) -> bool {
        let own = self
            .listeners
            .iter()
            .any(|&listener| crate::sidecar::config::reaches(dst, listener));
        if own {
            tracing::debug!(%dst, "egress to one of the sidecar's own listeners refused");
        }
        own
    }

    /// The plaintext TCP connector egress `CONNECT`s use.
    pub(crate) fn tcp(&self) -> super::upstream::Connector {
        self.connectors.tcp()
    }
}

/// A refused egress request's stack: answered by the mesh
/// ([`MeshAnswer`]), counted as the route's failure by its status alone
/// ([`injected`]), and by the golden families as the mesh's answer
/// ([`answered`]).
type DenyStack = mesh_metrics::http::Metrics<
    MapResponse<
        Counted<MapResponse<NoRoute<RouteBody, BoxError>, Mapped<RouteBody>>>,
        Mapped<CountedBody<RouteBody>>,
    >,
>;

/// A map of a response of body `B`, made once per stack.
type Mapped<B> = fn(Response<B>) -> Response<B>;

/// The kind of the mesh's answer to a request egress refused, while the
/// route's families count it: kept off the response, which they would
/// label by it, and put back above them.
#[derive(Clone, Copy, Debug)]
struct Injected(ProxyErrorKind);

/// Hides the kind of the mesh's refusal from the route's families, which
/// then label it by its status alone, `error=""`, as linkerd2-proxy labels
/// the failures its routes inject (its route metrics'
/// `Error::new_or_status` gives the status of an
/// `HttpRouteInjectedFailure` or a `GrpcRouteInjectedFailure`, in
/// `linkerd/app/outbound/src/http/logical/policy/route/metrics/labels.rs`):
/// Linkerd's egress walkthrough reads a refused request as
/// `http_status="403", error=""`, and `UNKNOWN` would say that something
/// failed that Linkerd has no name for.
fn injected<B>(mut res: Response<B>) -> Response<B> {
    let extensions = res.extensions_mut();
    if let Some(kind) = extensions.remove::<ProxyErrorKind>() {
        extensions.insert(Injected(kind));
    }
    res
}

/// Puts back the kind [`injected`] hid, for the golden families, which
/// label and classify the mesh's answers by it (`error="denied"`), and
/// the layers above them.
fn answered<B>(mut res: Response<B>) -> Response<B> {
    let extensions = res.extensions_mut();
    if let Some(Injected(kind)) = extensions.remove::<Injected>() {
        extensions.insert(kind);
    }
    res
}

// Each request takes a clone of its stack by value: boxing the larger
// variant would only add an allocation to that clone.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum EgressStack {
    Allow(RouteStack),
    Deny(DenyStack),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StackKey {
    network: Captured,
    route: StackRoute,
    hostname: String,
    dst: SocketAddr,
}

/// Which route a stack is of: a default route, by name, or a rule of the
/// network's routes for the destination port, by its index there (the
/// stacks are dropped when the routes are planned again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StackRoute {
    Default(&'static str),
    Rule(usize),
}

/// A runtime's egress stacks, built for the routes `plans` planned.
#[derive(Default)]
struct Stacks {
    plans: Option<Arc<RoutePlans>>,
    /// Each stack, with the golden families' `dst_service` of its
    /// requests, made with it rather than for each request.
    built: HashMap<StackKey, (EgressStack, DstService)>,
}

/// One runtime's egress: the requests the router found no service for.
/// See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct Egress {
    not_found: NotFound,
    runtime: Arc<EgressRuntime>,
}

struct EgressRuntime {
    shared: Arc<EgressShared>,
    source: Arc<dyn EgressSource>,
    upstream: Upstream<ReplayBody<Incoming>>,
    /// The runtime's endpoints of each outbound service, which a rule's
    /// `backendRefs` may name.
    endpoints: Arc<[Option<Endpoint>]>,
    /// The routes in force, the networks' among them.
    routes: watch::Receiver<Arc<RoutePlans>>,
    stacks: Mutex<Stacks>,
}

impl fmt::Debug for EgressRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressRuntime")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Egress {
    /// Egress of one runtime, over its `client`: `not_found` answers what
    /// it does not send.
    pub(super) fn new(
        not_found: NotFound,
        shared: Arc<EgressShared>,
        source: Arc<dyn EgressSource>,
        client: &mesh_core::client::ClientConfig,
        endpoints: Arc<[Option<Endpoint>]>,
        routes: watch::Receiver<Arc<RoutePlans>>,
    ) -> Self {
        let upstream = shared.connectors.client(client);
        Self {
            not_found,
            runtime: Arc::new(EgressRuntime {
                shared,
                source,
                upstream,
                endpoints,
                routes,
                stacks: Mutex::new(Stacks::default()),
            }),
        }
    }
}

/// The body of what the outbound stack answers.
type StackBody = ResponseBody<CountedBody<RouteBody>>;

impl Service<Request<Incoming>> for Egress {
    type Response = Response<StackBody>;
    type Error = BoxError;
    type Future = Either<
        Oneshot<NotFound, Request<Incoming>>,
        BoxFuture<'static, Result<Response<StackBody>, BoxError>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        if req.extensions().get::<UnknownAuthority>().is_none() || self.runtime.source.is_empty() {
            return Either::Left(self.not_found.clone().oneshot(req));
        }
        if !in_plain_http(req.uri()) {
            tracing::debug!(uri = %req.uri(), "egress: only http:// targets are sent");
            let mut req = req;
            req.extensions_mut().insert(MeshAnswer {
                kind: ProxyErrorKind::Unsupported,
                reason: EGRESS_NOT_HTTP,
            });
            return Either::Left(self.not_found.clone().oneshot(req));
        }
        let Some((host, port)) = destination(&req) else {
            return Either::Left(self.not_found.clone().oneshot(req));
        };
        let runtime = self.runtime.clone();
        let not_found = self.not_found.clone();
        // The lookup alone is awaited here; what follows is one of three
        // services' futures.
        let resolved = async move {
            let ip = runtime.shared.hosts.resolve(&host).await;
            (runtime, host, ip)
        };
        Either::Right(Box::pin(resolved.then(move |(runtime, host, ip)| {
            runtime.dispatch(req, not_found, &host, port, ip)
        })))
    }
}

type Dispatched = Either<
    Oneshot<NotFound, Request<Incoming>>,
    Either<Oneshot<RouteStack, Request<Incoming>>, Oneshot<DenyStack, Request<Incoming>>>,
>;

impl EgressRuntime {
    /// Sends `req`, for `host` (whose address is `ip`) and `port`, where
    /// the network that captures the address says.
    fn dispatch(
        &self,
        mut req: Request<Incoming>,
        not_found: NotFound,
        host: &str,
        port: u16,
        ip: Option<IpAddr>,
    ) -> Dispatched {
        let Some(ip) = ip else {
            tracing::debug!(host, "egress: no address for the host");
            req.extensions_mut().insert(MeshAnswer {
                kind: ProxyErrorKind::UpstreamUnreachable,
                reason: ProxyErrorKind::UpstreamUnreachable.reason(),
            });
            return Either::Left(not_found.oneshot(req));
        };
        let dst = SocketAddr::new(ip, port);
        if self.shared.loops(dst) {
            return Either::Left(not_found.oneshot(req));
        }
        let Some(network) = self.source.find(ip) else {
            tracing::debug!(host, %ip, "egress: no EgressNetwork captures the address");
            return Either::Left(not_found.oneshot(req));
        };
        // As the router does before a service's routes see the request.
        strip(req.headers_mut());
        host_from_authority(&mut req);
        strip_connection_listed(req.headers_mut());
        let plans = self.routes.borrow().clone();
        // A `CONNECT` reaches here only when its tunnel was refused (a
        // `Deny` network without TLS or TCP routes on its port): it is no
        // request an HTTP route could take, and gets the default route's
        // refusal, not the `501` its forwarding would.
        let tunnel = req.method() == http::Method::CONNECT;
        let rule = plans
            .egress
            .network(&network.namespace, &network.name)
            .filter(|_| !tunnel)
            .and_then(|planned| {
                let rule = planned.port(port).route(&req)?;
                Some((rule.service.clone(), planned.budget.clone()))
            });
        let (route, labels, id) = match &rule {
            Some((rule, _)) => (StackRoute::Rule(rule.index), &rule.route, rule.id.clone()),
            None => {
                let grpc = is_grpc(req.headers());
                let name = route_name(network.allow, grpc);
                let labels = self.shared.default_route(network.allow, grpc);
                (StackRoute::Default(name), labels, RouteId::new(name))
            }
        };
        tracing::debug!(
            host,
            %ip,
            namespace = &*network.namespace,
            network = &*network.name,
            route = id.as_str(),
            "egress"
        );
        let hostname = self.shared.hostnames.label(&network, labels, host);
        let key = StackKey {
            network,
            route,
            hostname,
            dst,
        };
        let Some((stack, dst_service)) = self.stack(&plans, key, rule.as_ref()) else {
            return Either::Left(not_found.oneshot(req));
        };
        let extensions = req.extensions_mut();
        extensions.insert(dst_service);
        extensions.insert(id);
        match stack {
            EgressStack::Allow(stack) => Either::Right(Either::Left(stack.oneshot(req))),
            EgressStack::Deny(stack) => {
                req.extensions_mut().insert(MeshAnswer {
                    kind: ProxyErrorKind::Denied,
                    reason: EGRESS_DENIED,
                });
                Either::Right(Either::Right(stack.oneshot(req)))
            }
        }
    }

    /// The stack of `key`, kept or built: of `rule` (with its network's
    /// budget) when the request matched one of the routes `plans` hold,
    /// else of the network's default route. The stacks built for other
    /// plans are dropped first.
    fn stack(
        &self,
        plans: &Arc<RoutePlans>,
        key: StackKey,
        rule: Option<&(Arc<EgressRulePlan>, Arc<Budget>)>,
    ) -> Option<(EgressStack, DstService)> {
        let mut stacks = self.stacks.lock().unwrap_or_else(PoisonError::into_inner);
        if !stacks.plans.as_ref().is_some_and(|p| Arc::ptr_eq(p, plans)) {
            stacks.plans = Some(plans.clone());
            stacks.built.clear();
        }
        if let Some(built) = stacks.built.get(&key) {
            return Some(built.clone());
        }
        let stack = match (key.route, rule) {
            (StackRoute::Rule(_), Some((rule, budget))) => {
                EgressStack::Allow(self.build_rule(plans, &key, rule, budget)?)
            }
            (StackRoute::Default(name), _) => self.build_default(&key, name)?,
            (StackRoute::Rule(_), None) => return None,
        };
        if stacks.built.len() >= CACHED_STACKS {
            stacks.built.clear();
        }
        let built = (stack, dst_service(&key.network));
        stacks.built.insert(key, built.clone());
        Some(built)
    }

    /// The parent of `key`'s requests: its network, on the destination
    /// port.
    fn parent(key: &StackKey) -> ServiceRef {
        let network = &key.network;
        ServiceRef::egress_network(&network.namespace, &network.name, key.dst.port())
    }

    /// The original destination of `key`'s requests, as a backend.
    fn original_destination(&self, key: &StackKey) -> Option<Backend<Endpoint>> {
        let forward = Forward::new(self.upstream.clone(), [key.dst]).ok()?;
        Some(Backend::Service(forward))
    }

    /// The stack of the network's default route `name`.
    fn build_default(&self, key: &StackKey, name: &'static str) -> Option<EgressStack> {
        let layers = &self.shared.layers;
        let parent = Self::parent(key);
        let route = self
            .shared
            .default_route(key.network.allow, name.starts_with("grpc"));
        let labels = RouteLabels::new(parent.clone(), route.clone()).with_hostname(&key.hostname);
        let timeouts = RouteTimeouts::default();
        if !key.network.allow {
            let route = layers.backends.route(&labels, None, None);
            let refuse = MapResponse::new(NoRoute::new(), injected as Mapped<RouteBody>);
            let deny = Counted::new(refuse, route).of_route(timeouts);
            let deny = MapResponse::new(deny, answered as Mapped<CountedBody<RouteBody>>);
            return Some(EgressStack::Deny(layers.metrics.layer(deny)));
        }
        let backend = Counted::new(
            self.original_destination(key)?,
            layers.backends.backend(&labels, parent, None),
        )
        .of_attempts(timeouts);
        // Linkerd's default egress routes neither retry nor time out.
        let policy = RouteRetryPolicy {
            name: Arc::from(name),
            matches: Vec::new(),
            retry: RetryPolicy::never(),
            timeouts: Timeouts::default(),
            backends: Vec::new(),
            request_headers: HeaderEdit::default(),
            response_headers: HeaderEdit::default(),
        };
        let edits = EditHeadersLayer::new(HeaderEdit::default(), HeaderEdit::default());
        Some(EgressStack::Allow(route_stack(
            layers,
            &labels,
            None,
            &RouteId::new(name),
            &edits,
            policy.layer(self.shared.budget.clone()),
            timeouts,
            Split::One(backend),
        )))
    }

    /// The stack of `rule`, one of the network's routes, as a service's
    /// rule's is built (`routes_of`), over its backends: the original
    /// destination, or outbound services, by weight; its retries draw on
    /// the network's `budget`.
    fn build_rule(
        &self,
        plans: &RoutePlans,
        key: &StackKey,
        rule: &EgressRulePlan,
        budget: &Arc<Budget>,
    ) -> Option<RouteStack> {
        let layers = &self.shared.layers;
        let parent = Self::parent(key);
        let labels =
            RouteLabels::new(parent.clone(), rule.route.clone()).with_hostname(&key.hostname);
        let counted = |backend, name| {
            Counted::new(backend, layers.backends.backend(&labels, name, None))
                .of_attempts(rule.timeouts)
        };
        let split = if rule.has_no_weight() {
            Split::Nowhere
        } else {
            let backends = rule.backends.iter().filter_map(|(backend, weight)| {
                let (backend, name) = match backend {
                    PlannedBackend::OriginalDestination => {
                        (self.original_destination(key)?, parent.clone())
                    }
                    PlannedBackend::Service(i) => {
                        let endpoint = self.endpoints.get(*i)?.as_ref()?;
                        let service = plans.services.get(*i)?.service.clone();
                        (Backend::Service(endpoint.clone()), service)
                    }
                    PlannedBackend::Missing(missing) => (
                        Backend::Missing(missing.clone()),
                        ServiceRef::new(missing.name(), ""),
                    ),
                };
                Some((counted(backend, name), *weight))
            });
            match Split::new(backends) {
                Some(split) => split,
                // A backend without endpoints cannot be configured; a
                // rule left with none sends to the original destination.
                None => Split::One(counted(self.original_destination(key)?, parent.clone())),
            }
        };
        // The mesh answers a rule whose backends all have weight 0
        // itself: retrying would only spend the budget.
        let policy = if rule.has_no_weight() {
            RouteRetryPolicy {
                retry: RetryPolicy::never(),
                ..rule.policy.clone()
            }
        } else {
            rule.policy.clone()
        };
        let service = dst_service(&key.network);
        let metrics = self
            .shared
            .retries
            .route(&service.0, &rule.policy.name)
            .with_observer(layers.backends.retries(&labels, None));
        Some(route_stack(
            layers,
            &labels,
            None,
            &rule.id,
            &rule.edits,
            policy.layer(budget.clone()).with_metrics(metrics),
            rule.timeouts,
            split,
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn for_host(target: &str, host: Option<&str>) -> Option<(String, u16)> {
        let mut req = Request::get(target);
        if let Some(host) = host {
            req = req.header(header::HOST, host);
        }
        destination(&req.body(()).unwrap())
    }

    #[test]
    fn a_destination_is_the_targets_authority_else_the_host_port_80_by_default() {
        let at = |host: &str, port| Some((host.to_owned(), port));
        assert_eq!(
            for_host("/", Some("API.Example.com.")),
            at("api.example.com", 80)
        );
        assert_eq!(for_host("/", Some("[::1]:8080")), at("::1", 8080));
        assert_eq!(for_host("/", Some("10.1.2.3:81")), at("10.1.2.3", 81));
        // An absolute-form target wins over `Host`.
        assert_eq!(
            for_host("http://example.org:8443/", Some("other")),
            at("example.org", 8443)
        );
        assert_eq!(for_host("/", None), None);
        assert_eq!(for_host("/", Some("bad host")), None);
    }

    #[test]
    fn only_a_target_in_plain_http_is_sent() {
        for (target, plain) in [
            ("/path", true),
            ("http://example.org/", true),
            ("HTTP://example.org/", true),
            ("https://example.org/", false),
            ("https://example.org:80/", false),
            ("ftp://example.org/", false),
        ] {
            let uri: http::Uri = target.parse().unwrap();
            assert_eq!(in_plain_http(&uri), plain, "{target}");
        }
    }

    /// A cache whose lookups answer `first` once `answer` fires for the
    /// first of them, then `later` at once, and how many were made.
    fn cache_of(
        answer: tokio::sync::oneshot::Receiver<()>,
        first: IpAddr,
        later: IpAddr,
    ) -> (HostCache, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let made = Arc::new(AtomicUsize::new(0));
        let answer = Mutex::new(Some(answer));
        let counted = made.clone();
        let cache = HostCache::with_lookup(Arc::new(move |_host| {
            counted.fetch_add(1, Ordering::SeqCst);
            match answer.lock().unwrap().take() {
                Some(answer) => async move { answer.await.ok().map(|()| first) }.boxed(),
                None => async move { Some(later) }.boxed(),
            }
        }));
        (cache, made)
    }

    /// Makes the answer `host` got look `by` older than it is.
    fn age(cache: &HostCache, host: &str, by: Duration) {
        let mut entries = cache.entries.lock().unwrap();
        match entries.get_mut(host) {
            Some(Cached::Ready { at, .. }) => *at = at.checked_sub(by).unwrap(),
            _ => panic!("{host} has no answer"),
        }
    }

    /// A lookup every request for it gave up on still records its answer,
    /// with the time it came: it is there for the next request, and once
    /// it has expired that request looks the name up again, rather than
    /// take an answer up as fresh however long ago it came.
    #[tokio::test]
    async fn a_lookup_left_by_its_requests_records_its_answer_when_it_comes() {
        use std::sync::atomic::Ordering;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (old, new) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let (cache, made) = cache_of(rx, old, new);

        // The request's client goes away while the name is looked up.
        assert_eq!(cache.resolve("api.test").now_or_never(), None);
        tx.send(()).unwrap();
        for _ in 0..100 {
            if cache.peek("api.test").is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        // Its answer is there, fresh, for a `CONNECT`'s target and the
        // next request alike.
        assert_eq!(cache.peek("api.test"), Some(old));
        assert_eq!(cache.resolve("api.test").await, Some(old));
        assert_eq!(made.load(Ordering::SeqCst), 1);

        age(&cache, "api.test", HOST_TTL);
        assert_eq!(cache.peek("api.test"), None);
        assert_eq!(cache.resolve("api.test").await, Some(new));
        assert_eq!(made.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_a_dns_name_is_a_hostname() {
        for host in [
            "localhost",
            "api.example.com",
            "a-b_c.example",
            "x1.example.co2",
        ] {
            assert!(is_dns_name(host), "{host}");
        }
        let long = format!("{}.example", "a".repeat(64));
        for host in [
            "127.0.0.1",
            "127.1",
            "0x7f.0.0.1",
            "::1",
            "2001:db8::1",
            "",
            "-a.example",
            "a-.example",
            "a..example",
            "a b",
            long.as_str(),
        ] {
            assert!(!is_dns_name(host), "{host}");
        }
    }

    /// A route labels a hundred names and counts the rest unnamed; IP
    /// literals are unnamed, and take no place.
    #[test]
    fn a_route_labels_a_hundred_names_and_no_ip_literal() {
        let hostnames = Hostnames::default();
        let network = Captured {
            namespace: "emojivoto".into(),
            name: "all".into(),
            allow: true,
        };
        let route = RouteRef::default_named("http-egress-allow");
        let label = |host: &str| hostnames.label(&network, &route, host);
        for n in 0..HOSTNAMES_PER_ROUTE {
            assert_eq!(label(&format!("10.0.0.{n}")), "");
            assert_eq!(label(&format!("::{n}")), "");
        }
        for n in 0..HOSTNAMES_PER_ROUTE {
            let host = format!("host-{n}.example");
            assert_eq!(label(&host), host);
        }
        assert_eq!(label("late.example"), "");
        assert_eq!(label("host-0.example"), "host-0.example");
        let other = RouteRef::default_named("grpc-egress-allow");
        assert_eq!(
            hostnames.label(&network, &other, "late.example"),
            "late.example"
        );
    }

    #[test]
    fn the_route_is_named_by_policy_and_protocol_as_linkerd_names_it() {
        assert_eq!(route_name(true, false), "http-egress-allow");
        assert_eq!(route_name(false, false), "http-egress-deny");
        assert_eq!(route_name(true, true), "grpc-egress-allow");
        assert_eq!(route_name(false, true), "grpc-egress-deny");
    }
}
