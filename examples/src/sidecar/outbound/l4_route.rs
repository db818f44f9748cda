//! What `TLSRoute`s and `TCPRoute`s share, wherever they route: reading a
//! connection's first bytes for the SNI of its ClientHello, picking a
//! backend by weight, and the TLS and TCP route families; and the routes
//! of the outbound services, which their TCP ports and `CONNECT` tunnels
//! follow.
//!
//! # Why
//!
//! Linkerd 2.17 routes a Service's connections that are not plain HTTP
//! with the `TLSRoute`s and `TCPRoute`s attached to it: a `TCPRoute` splits
//! a port's connections between backend Services by weight (a database
//! moved a share at a time), and `TLSRoute`s send each TLS connection
//! where the SNI of its ClientHello says. The sidecar's `outbound.ports`
//! listeners and its `CONNECT` tunnels to a service carry exactly such
//! connections, so they follow the same routes (mesh-retry's
//! [`L4Route`], read for each service), and count them as Linkerd does.
//!
//! # How
//!
//! [`ServiceL4`] holds, for each outbound service with connection routes,
//! the routes a client in the workload's namespace is served, and for
//! each `outbound.ports` entry whether its port is routed and how. It is
//! planned at start and on each reload, and swapped whole; a connection
//! reads it once, when it is accepted, and keeps the route it took.
//!
//! A port is served, as Linkerd's policy controller serves it (`to_proto`
//! in linkerd2's `policy-controller/grpc/src/outbound.rs`), by its
//! `TLSRoute`s when it has any (attached with that port, or without one),
//! else by its `TCPRoute`s ([`ServiceRetryPolicy::l4_routes_on`]); the
//! service's HTTP routes are for its HTTP traffic, which these listeners
//! do not carry, so they do not put the port first for HTTP as they would
//! in Linkerd.
//!
//! - `TLSRoute`s: at most one TLS record is read ([`peek`], [`MAX_RECORD`]),
//!   for at most `server.detect_timeout`; the route whose hostnames match
//!   the SNI most specifically takes the connection
//!   ([`tls_route`](ServiceRetryPolicy::tls_route)). A connection that
//!   names no SNI, or one no route matches, is closed, as linkerd2-proxy
//!   closes it: its TLS stack requires an SNI (`NewDetectRequiredSni` in
//!   `linkerd/app/outbound/src/tls.rs`) and its router fails a session no
//!   route takes (`NoRoute`, `tls/logical/router.rs`); neither is a route,
//!   so neither is counted in the route families.
//! - `TCPRoute`s alone: the first route takes every connection, read
//!   nothing first, so that a protocol whose server speaks first is not
//!   held back.
//!
//! The route's rule then names where the connection goes: a rule without
//! `backendRefs`, the service itself (its own forwarder, as today); else
//! one backend Service drawn by weight ([`pick`]), through that service's
//! own TCP forwarder (its endpoints, its TLS), or nowhere when every
//! weight is 0 (closed, `error="forbidden"`, as the Gateway API asks) or
//! the backend is no outbound service with endpoints
//! (`error="invalid_backend"`). The bytes read first are sent first on
//! the backend connection.
//!
//! A connection is counted in `outbound_tls_route_open_total` and
//! `outbound_tls_route_close_total` (or the `tcp` pair) under its parent
//! (`parent_group="core"`, `parent_kind="Service"`, the service's
//! namespace and name, `parent_port`) and its route, closed with `error`
//! as linkerd2-proxy's `metrics/transport.rs` names it: empty,
//! `forbidden`, `invalid_backend`, or `unexpected` (a connect or a copy
//! that failed).
//!
//! A port without routes is forwarded as it always was, with no read and
//! no wait: the only work added to its connections is the look at the
//! plan in force. They are not counted under a default route, as
//! Linkerd counts its opaque default (`route_kind="default"`,
//! `route_name="opaq"`, `default_outbound_opaq_route` in the policy
//! controller): counting a close would wrap every such connection's
//! future, a cost those connections have never paid here.

use std::{
    collections::{HashMap, HashSet},
    fmt, io,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use arc_swap::ArcSwap;
use bytes::BytesMut;
use futures_util::future::{BoxFuture, Either};
use http::uri::Authority;
use mesh_core::{BoxError, conn::Sni, io::PrefixedIo, serve::OpaqueConnection};
use mesh_retry::config::{
    BackendKind, L4Backend, L4Route, L4RouteKind, PortRoutes, RetryResources, ServiceRetryPolicy,
};
use mesh_tls::accept::client_hello::{MAX_RECORD, ServerName, server_name};
use prometheus_client::{
    encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tower::{Service, ServiceExt};

use super::egress::{Captured, HOSTNAMES_PER_ROUTE};
use super::labels::{RouteLabels, RouteRef, ServiceRef, TargetLabels};
use super::tcp::TcpForward;
use crate::sidecar::config::ServiceName;

/// The first byte of a TLS handshake record (RFC 8446 §5.1).
pub(super) const HANDSHAKE: u8 = 0x16;

/// The TLS and TCP route families, registered once and shared by every
/// runtime: the connections of a service's TCP ports and `CONNECT`s
/// routed by its `TLSRoute`s and `TCPRoute`s, and egress `CONNECT`s
/// ([`egress_tunnel`](super::egress_tunnel)). See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct L4RouteMetrics {
    tls: Families<RouteLabels>,
    tcp: Families<TargetLabels>,
    /// The `hostname` (TLS) or `target_ip` (TCP) values each route has
    /// labelled, at most [`HOSTNAMES_PER_ROUTE`] per route of a network
    /// whatever the ports: a `TCPRoute` without a port, or a default
    /// route, takes every port, and the bound is the route's, as HTTP
    /// egress bounds its hosts.
    named: Arc<Mutex<Named>>,
}

/// The label values each route of a network has written.
type Named = HashMap<(Captured, RouteRef), HashSet<Box<str>>>;

#[derive(Clone, Debug)]
struct Families<L> {
    open: Family<L, Counter>,
    close: Family<Closed<L>, Counter>,
}

impl<L> Families<L>
where
    L: Clone + fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
{
    fn register(registry: &mut Registry, prefix: &str, what: &str) -> Self {
        let open = Family::<L, Counter>::default();
        registry.register(
            format!("{prefix}_open"),
            format!("The {what} connections opened on a TLS or TCP route"),
            open.clone(),
        );
        let close = Family::<Closed<L>, Counter>::default();
        registry.register(
            format!("{prefix}_close"),
            format!("The {what} connections closed on a TLS or TCP route, by error"),
            close.clone(),
        );
        Self { open, close }
    }
}

/// `labels` and why a connection was closed: `error` as linkerd2-proxy
/// writes it, empty for a connection that ended without one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Closed<L> {
    labels: L,
    error: &'static str,
}

impl<L: EncodeLabelSet> EncodeLabelSet for Closed<L> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.labels.encode(encoder)?;
        ("error", self.error).encode(encoder.encode_label())
    }
}

/// Why a connection was closed, as the close families label it.
pub(super) mod close {
    pub(in super::super) const NONE: &str = "";
    pub(in super::super) const FORBIDDEN: &str = "forbidden";
    pub(in super::super) const INVALID_BACKEND: &str = "invalid_backend";
    pub(in super::super) const UNEXPECTED: &str = "unexpected";
}

impl L4RouteMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        Self {
            tls: Families::register(registry, "outbound_tls_route", "TLS"),
            tcp: Families::register(registry, "outbound_tcp_route", "TCP"),
            named: Arc::default(),
        }
    }

    /// `value` as route `route` of `network` labels it: itself, unless the
    /// route already labels as many others as it may, on any port, when
    /// it is empty. An empty value (a ClientHello without an SNI) names
    /// nothing and takes no place, as an IP literal takes none of an HTTP
    /// egress route's.
    fn label(&self, network: &Captured, route: &RouteRef, value: &str) -> Box<str> {
        if value.is_empty() {
            return Box::default();
        }
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        let values = named.entry((network.clone(), route.clone())).or_default();
        if values.contains(value) || values.len() < HOSTNAMES_PER_ROUTE {
            values.insert(value.into());
            return value.into();
        }
        Box::default()
    }

    /// Counts a connection opened on `route` of `network`, its parent the
    /// network on `dst`'s port: a TLS one with its `sni`, or a TCP one to
    /// `dst`.
    pub(super) fn open(
        &self,
        tls: bool,
        network: &Captured,
        route: RouteRef,
        sni: Option<&Sni>,
        dst: SocketAddr,
    ) -> Opened {
        let parent = ServiceRef::egress_network(&network.namespace, &network.name, dst.port());
        let labels = if tls {
            let hostname = sni.map(Sni::as_str).unwrap_or_default();
            let hostname = self.label(network, &route, hostname);
            Labels::Tls(RouteLabels::new(parent, route).with_hostname(&hostname))
        } else {
            let ip = self.label(network, &route, &dst.ip().to_string());
            Labels::Tcp(TargetLabels::new(parent, route, &ip, dst.port()))
        };
        match &labels {
            Labels::Tls(labels) => self.tls.open.get_or_create(labels).inc(),
            Labels::Tcp(labels) => self.tcp.open.get_or_create(labels).inc(),
        };
        Opened {
            metrics: self.clone(),
            labels: Some(labels),
        }
    }

    /// Counts a connection opened on `route`, a `TLSRoute` (`tls`) or
    /// `TCPRoute` of `parent`, a service on one of its ports. A service's
    /// connections are labelled as Linkerd labels them: `hostname` empty
    /// (linkerd2-proxy fills it only when told to export hostnames, off by
    /// default), and `target_ip` empty, `target_port` the service port,
    /// as for a logical address that is a name
    /// (`linkerd/app/outbound/src/opaq/logical/route.rs`). Nothing
    /// unbounded is labelled, so nothing is counted against a bound.
    pub(super) fn open_service(
        &self,
        tls: bool,
        parent: &ServiceRef,
        route: RouteRef,
        port: u16,
    ) -> Opened {
        let labels = if tls {
            let labels = RouteLabels::new(parent.clone(), route);
            self.tls.open.get_or_create(&labels).inc();
            Labels::Tls(labels)
        } else {
            let labels = TargetLabels::new(parent.clone(), route, "", port);
            self.tcp.open.get_or_create(&labels).inc();
            Labels::Tcp(labels)
        };
        Opened {
            metrics: self.clone(),
            labels: Some(labels),
        }
    }
}

#[derive(Debug)]
enum Labels {
    Tls(RouteLabels),
    Tcp(TargetLabels),
}

/// A connection counted open, to be counted closed once: by
/// [`close`](Self::close) with why it ended, or, when it is dropped
/// first, as `unexpected`. A connection's future is dropped unfinished
/// when its listener's shutdown grace runs out and its task is aborted,
/// and it would otherwise stay counted open for good.
#[derive(Debug)]
pub(super) struct Opened {
    metrics: L4RouteMetrics,
    /// `None` once counted closed.
    labels: Option<Labels>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.count_close(close::UNEXPECTED);
    }
}

impl Opened {
    pub(super) fn close(mut self, error: &'static str) {
        self.count_close(error);
    }

    fn count_close(&mut self, error: &'static str) {
        let Some(labels) = self.labels.take() else {
            return;
        };
        match labels {
            Labels::Tls(labels) => {
                self.metrics
                    .tls
                    .close
                    .get_or_create(&Closed { labels, error })
                    .inc();
            }
            Labels::Tcp(labels) => {
                self.metrics
                    .tcp
                    .close
                    .get_or_create(&Closed { labels, error })
                    .inc();
            }
        }
    }
}

/// What a connection's first bytes say it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Hello {
    /// A TLS handshake: a ClientHello naming this server, or one that
    /// names none or cannot be read whole.
    Tls(Option<Sni>),
    /// Anything else, or nothing.
    Other,
}

/// What `buf`, a tunnel's first bytes, says, once it can tell: `None`
/// while a TLS record has begun and is not all there.
pub(super) fn classify(buf: &[u8]) -> Option<Hello> {
    if *buf.first()? != HANDSHAKE {
        return Some(Hello::Other);
    }
    match server_name(buf) {
        ServerName::NeedMore(_) => None,
        ServerName::Named(sni) => Some(Hello::Tls(Some(sni))),
        ServerName::Unnamed => Some(Hello::Tls(None)),
    }
}

/// Reads a connection's first bytes until they tell what it carries, at most
/// one TLS record, for at most `timeout`: see the [module docs](self).
/// Returns what they say and the bytes read, which are the connection's,
/// to be sent first on the connection to its backend.
pub(super) async fn peek<I: AsyncRead + Unpin>(
    io: &mut I,
    timeout: Duration,
) -> io::Result<(Hello, BytesMut)> {
    let mut buf = BytesMut::new();
    // Bytes land in `buf` only when a read completes, so the timeout
    // loses none.
    let read = async {
        loop {
            if let Some(hello) = classify(&buf) {
                return Ok::<_, io::Error>(hello);
            }
            if buf.len() >= MAX_RECORD {
                return Ok(Hello::Tls(None));
            }
            buf.reserve(MAX_RECORD - buf.len());
            let mut room = (&mut *io).take((MAX_RECORD - buf.len()) as u64);
            if room.read_buf(&mut buf).await? == 0 {
                return Ok(partial(&buf));
            }
        }
    };
    let hello = match tokio::time::timeout(timeout, read).await {
        Ok(hello) => hello?,
        Err(_) => partial(&buf),
    };
    Ok((hello, buf))
}

/// What first bytes that did not decide say: nothing, a TCP connection;
/// part of a TLS record, a TLS one without SNI.
pub(super) fn partial(buf: &[u8]) -> Hello {
    if buf.first() == Some(&HANDSHAKE) {
        Hello::Tls(None)
    } else {
        Hello::Other
    }
}

/// Where a route sends a connection: [`pick`]'s answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Picked<'r> {
    /// The rule names no backend: the parent itself takes it.
    Parent,
    /// This backend, drawn by weight.
    Backend(&'r L4Backend),
    /// Nowhere: closed, with this `error`.
    Refused(&'static str),
}

/// Draws one of `route`'s backends by weight, as Linkerd's proxy
/// draws one of a rule's (`RandomAvailable`): each in proportion to its
/// weight; [`Picked::Parent`] for a rule without backends, which Linkerd's
/// policy controller serves the parent's own backend; refused
/// (`forbidden`) when every weight is 0, as the Gateway API asks.
pub(super) fn pick(route: &L4Route) -> Picked<'_> {
    if route.backends.is_empty() {
        return Picked::Parent;
    }
    let total: u64 = route.backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return Picked::Refused(close::FORBIDDEN);
    }
    let mut at = fastrand::u64(0..total);
    let backend = route.backends.iter().find(|b| {
        let weight = u64::from(b.weight);
        if at < weight {
            return true;
        }
        at -= weight;
        false
    });
    backend.map_or(Picked::Refused(close::UNEXPECTED), Picked::Backend)
}

/// Every outbound service's TCP forwarder on one runtime, in the order
/// of `outbound.services`: `None` for one without endpoints.
pub(super) type Forwards = Arc<[(ServiceName, Option<TcpForward>)]>;

/// The forwarder of the outbound service `name` in `service_namespace`,
/// as a route's backend names it, for a workload in `namespace`: as
/// Kubernetes DNS resolves names, `emoji` is `emoji` in the workload's
/// namespace, `emoji.emojivoto` is `emoji` in `emojivoto`. `None` when it
/// is no outbound service, or has no endpoint.
pub(super) fn forward_of(
    forwards: &[(ServiceName, Option<TcpForward>)],
    name: &str,
    service_namespace: &str,
    namespace: &str,
) -> Option<TcpForward> {
    forwards
        .iter()
        .find(|(service, _)| {
            let mut labels = service.as_str().split('.');
            let short = labels.next().unwrap_or_default();
            let in_namespace = labels.next().unwrap_or(namespace);
            short == name && in_namespace == service_namespace
        })?
        .1
        .clone()
}

/// One outbound service's connection routes, as planned.
#[derive(Debug)]
struct L4Service {
    /// Its index in `outbound.services`.
    index: usize,
    /// The service as the route families name their parent, without a
    /// port.
    parent: ServiceRef,
    /// Its `TLSRoute`s and `TCPRoute`s, as the workload's namespace is
    /// served them.
    policy: ServiceRetryPolicy,
}

/// How the connections to one port of a service are routed: what a
/// connection reads once, when it is accepted.
#[derive(Clone, Debug)]
pub(crate) struct PortPlan {
    service: Arc<L4Service>,
    /// The service port: the `parentRefs` port the routes are matched
    /// against, and `parent_port`.
    port: u16,
    /// The parent, with its port, as the families label it.
    parent: ServiceRef,
    /// Whether `TLSRoute`s take the port (else `TCPRoute`s do).
    tls: bool,
}

impl PortPlan {
    fn new(service: &Arc<L4Service>, port: u16) -> Option<Self> {
        let tls = match service.policy.l4_routes_on(port) {
            PortRoutes::Tls => true,
            PortRoutes::Tcp => false,
            PortRoutes::Http | PortRoutes::None => return None,
        };
        Some(Self {
            service: service.clone(),
            port,
            parent: service.parent.clone().with_port(port),
            tls,
        })
    }
}

/// The services' connection routes in force.
#[derive(Debug, Default)]
struct L4Plan {
    /// By index in `outbound.services`; `None` for a service without
    /// connection routes.
    services: Vec<Option<Arc<L4Service>>>,
    /// By index in `outbound.ports`; `None` for a port without routes.
    ports: Vec<Option<PortPlan>>,
    /// Whether any service has connection routes: when none does, a
    /// `CONNECT` looks no further.
    any: bool,
}

/// The outbound services' `TLSRoute`s and `TCPRoute`s in force, as the
/// workload's namespace is served them: replaced whole on each reload of
/// the policy files, read by each connection to an `outbound.ports`
/// listener and each `CONNECT` to a service. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ServiceL4 {
    namespace: Box<str>,
    /// `outbound.services`, in order.
    names: Box<[ServiceName]>,
    /// Each `outbound.ports` entry's service (an index into `names`) and
    /// service port.
    ports: Box<[(Option<usize>, u16)]>,
    current: ArcSwap<L4Plan>,
}

impl ServiceL4 {
    /// The routes of `resources` for the services `names`, a workload in
    /// `namespace`, and the ports `ports` (each entry's service index and
    /// service port).
    pub(crate) fn new(
        names: Vec<ServiceName>,
        ports: Vec<(Option<usize>, u16)>,
        resources: &RetryResources,
        namespace: &str,
    ) -> Self {
        let this = Self {
            namespace: namespace.into(),
            names: names.into(),
            ports: ports.into(),
            current: ArcSwap::default(),
        };
        this.reload(resources);
        this
    }

    /// Puts the routes of `resources` in force for the connections that
    /// follow; those already open keep the route they took.
    pub(crate) fn reload(&self, resources: &RetryResources) {
        let policies = super::plan::service_l4_policies(&self.names, resources, &self.namespace);
        let services: Vec<Option<Arc<L4Service>>> = policies
            .into_iter()
            .zip(self.names.iter())
            .enumerate()
            .map(|(index, (policy, name))| {
                Some(Arc::new(L4Service {
                    index,
                    parent: ServiceRef::new(name.as_str(), &self.namespace),
                    policy: policy?,
                }))
            })
            .collect();
        let ports = self
            .ports
            .iter()
            .map(|&(service, port)| {
                let service = services.get(service?)?.as_ref()?;
                PortPlan::new(service, port)
            })
            .collect();
        let any = services.iter().any(Option::is_some);
        self.current.store(Arc::new(L4Plan {
            services,
            ports,
            any,
        }));
    }

    /// How the connections to `outbound.ports[index]` are routed; `None`
    /// when its service has no route on its port, and they are forwarded
    /// as they always were.
    fn port(&self, index: usize) -> Option<PortPlan> {
        self.current.load().ports.get(index)?.clone()
    }

    /// How a `CONNECT` to `authority` is routed: when it names an outbound
    /// service (as a tunnel's authority names it, by host) with routes on
    /// the authority's port. `None` for every other `CONNECT`, which goes
    /// on as it always did.
    pub(crate) fn connect(&self, authority: &Authority) -> Option<PortPlan> {
        let current = self.current.load();
        if !current.any || authority.as_str().contains('@') {
            return None;
        }
        let port = authority.port_u16()?;
        let index = self
            .names
            .iter()
            .position(|name| name.matches_authority(authority.as_str()))?;
        let service = current.services.get(index)?.as_ref()?;
        PortPlan::new(service, port)
    }
}

/// What routing a service's connections needs on one runtime: the routes
/// in force, every service's forwarder, the route families, and the
/// bound on the wait for a ClientHello.
#[derive(Debug)]
pub(crate) struct L4Routing {
    pub(super) routes: Arc<ServiceL4>,
    pub(super) forwards: Forwards,
    pub(super) metrics: L4RouteMetrics,
    pub(super) detect_timeout: Duration,
}

/// Why a routed connection was closed before any backend took it, where
/// its route (or the lack of one) says so.
#[derive(Debug)]
struct Unrouted(String);

impl fmt::Display for Unrouted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unrouted {}

impl L4Routing {
    /// Routes `conn` as `plan` says: see the [module docs](self).
    pub(super) async fn route(
        self: Arc<Self>,
        plan: PortPlan,
        conn: OpaqueConnection,
    ) -> Result<(), BoxError> {
        let OpaqueConnection { mut io, info } = conn;
        let service = &plan.service;
        let (route, prefix) = if plan.tls {
            let (hello, prefix) = peek(&mut io, self.detect_timeout).await?;
            let Hello::Tls(Some(sni)) = hello else {
                return Err(Box::new(Unrouted(format!(
                    "a connection to service {} port {} names no SNI, and its TLSRoutes take \
                     only TLS connections that name one",
                    service.parent_name(),
                    plan.port
                ))));
            };
            let Some(route) = service.policy.tls_route(plan.port, Some(sni.as_str())) else {
                return Err(Box::new(Unrouted(format!(
                    "no TLSRoute of service {} port {} takes SNI {}",
                    service.parent_name(),
                    plan.port,
                    sni.as_str()
                ))));
            };
            (route, prefix)
        } else {
            let Some(route) = service.policy.tcp_route(plan.port) else {
                return Err(Box::new(Unrouted(format!(
                    "no TCPRoute of service {} takes port {}",
                    service.parent_name(),
                    plan.port
                ))));
            };
            (route, BytesMut::new())
        };
        let route_ref = RouteRef::resource(
            &route.group,
            route.kind.kind(),
            route
                .namespace
                .as_deref()
                .unwrap_or(plan.parent.namespace()),
            &route.name,
        );
        let opened = self.metrics.open_service(
            route.kind == L4RouteKind::Tls,
            &plan.parent,
            route_ref,
            plan.port,
        );
        let forward = match self.destination(service, route) {
            Ok(forward) => forward,
            Err(error) => {
                opened.close(error);
                return Err(Box::new(Unrouted(format!(
                    "{} {} of service {} closed the connection: {error}",
                    route.kind.kind(),
                    route.name,
                    service.parent_name()
                ))));
            }
        };
        let conn = OpaqueConnection {
            io: Box::new(PrefixedIo::new(prefix.freeze(), io)),
            info,
        };
        match forward.oneshot(conn).await {
            Ok(()) => {
                opened.close(close::NONE);
                Ok(())
            }
            Err(error) => {
                opened.close(close::UNEXPECTED);
                Err(error)
            }
        }
    }

    /// The forwarder `route`, one of `service`'s, sends a connection to,
    /// or why it sends it nowhere.
    fn destination(
        &self,
        service: &L4Service,
        route: &L4Route,
    ) -> Result<TcpForward, &'static str> {
        let own = || {
            self.forwards
                .get(service.index)
                .and_then(|(_, forward)| forward.clone())
        };
        match pick(route) {
            Picked::Parent => own().ok_or(close::INVALID_BACKEND),
            Picked::Refused(error) => Err(error),
            Picked::Backend(backend) => {
                // The reader refuses any other kind on a Service's route.
                if backend.kind != BackendKind::Service {
                    return Err(close::INVALID_BACKEND);
                }
                // A backend without a namespace is in its route's, and a
                // route written without one is applied in the workload's;
                // an outbound service written without one is the
                // workload's too, whatever namespace the parent is in (as
                // the HTTP routes' backends are planned).
                let namespace = &*self.routes.namespace;
                let in_namespace = backend.namespace.as_deref().unwrap_or(namespace);
                forward_of(&self.forwards, &backend.name, in_namespace, namespace).ok_or_else(
                    || {
                        tracing::debug!(
                            backend = backend.name,
                            namespace = in_namespace,
                            route = route.name,
                            "connection route: the backend is no outbound service with endpoints"
                        );
                        close::INVALID_BACKEND
                    },
                )
            }
        }
    }
}

impl L4Service {
    fn parent_name(&self) -> &str {
        self.parent.name()
    }
}

/// The service of an `outbound.ports` listener: each connection goes to
/// the port's service, by its connection routes when it has any on the
/// port, else straight to its forwarder, as it always has.
#[derive(Clone, Debug)]
pub(crate) struct PortForward {
    forward: TcpForward,
    index: usize,
    routing: Arc<L4Routing>,
}

impl PortForward {
    pub(super) fn new(forward: TcpForward, index: usize, routing: Arc<L4Routing>) -> Self {
        Self {
            forward,
            index,
            routing,
        }
    }
}

impl Service<OpaqueConnection> for PortForward {
    type Response = ();
    type Error = BoxError;
    type Future = Either<
        <TcpForward as Service<OpaqueConnection>>::Future,
        BoxFuture<'static, Result<(), BoxError>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.forward.poll_ready(cx)
    }

    fn call(&mut self, conn: OpaqueConnection) -> Self::Future {
        match self.routing.routes.port(self.index) {
            None => Either::Left(self.forward.call(conn)),
            Some(plan) => Either::Right(Box::pin(self.routing.clone().route(plan, conn))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Routes of service `pg` in `emojivoto`: a `TCPRoute` on 5432 split
    /// 3:1 between `old` and `new`, one on 6379 whose weights are all 0,
    /// and a `TLSRoute` on 8443 without backends.
    fn pg_routes() -> RetryResources {
        let route = |kind: &str, name: &str, port: u16, backends: &str| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: {kind}\n\
                 metadata: {{name: {name}, namespace: emojivoto}}\n\
                 spec: {{parentRefs: [{{kind: Service, group: core, name: pg, port: {port}}}], \
                 rules: [{{backendRefs: {backends}}}]}}\n"
            )
        };
        let text = [
            route(
                "TCPRoute",
                "split",
                5432,
                "[{name: old, port: 1, weight: 3}, {name: new, port: 1, weight: 1}]",
            ),
            route("TCPRoute", "off", 6379, "[{name: old, port: 1, weight: 0}]"),
            route("TLSRoute", "tls", 8443, "null"),
        ]
        .join("---\n");
        mesh_retry::config::load("routes.yaml", &text).unwrap()
    }

    fn names(names: &[&str]) -> Vec<ServiceName> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn a_backend_is_drawn_by_weight_and_a_rule_of_weight_zero_refuses() {
        let resources = pg_routes();
        let pg = resources.service("pg", Some("emojivoto")).unwrap();
        let split = pg.tcp_route(5432).unwrap();
        let mut old = 0;
        for _ in 0..4000 {
            match pick(split) {
                Picked::Backend(b) if b.name == "old" => old += 1,
                Picked::Backend(b) => assert_eq!(b.name, "new"),
                other => panic!("{other:?}"),
            }
        }
        // 3000 expected, with a standard deviation of 27.
        assert!((2800..=3200).contains(&old), "{old}");
        let off = pg.tcp_route(6379).unwrap();
        assert_eq!(pick(off), Picked::Refused(close::FORBIDDEN));
        let tls = pg.tls_route(8443, Some("any.test")).unwrap();
        assert_eq!(pick(tls), Picked::Parent);
    }

    #[test]
    fn a_port_is_routed_by_its_services_routes_on_the_port_it_stands_for() {
        let resources = pg_routes();
        // Ports of `pg` standing for 5432, 6379, 8443 and 80, and one of
        // `web`, which has no routes.
        let l4 = ServiceL4::new(
            names(&["pg", "web"]),
            vec![
                (Some(0), 5432),
                (Some(0), 6379),
                (Some(0), 8443),
                (Some(0), 80),
                (Some(1), 5432),
            ],
            &resources,
            "emojivoto",
        );
        let routed = |i| l4.port(i).map(|plan| (plan.port, plan.tls));
        assert_eq!(routed(0), Some((5432, false)));
        assert_eq!(routed(1), Some((6379, false)));
        assert_eq!(routed(2), Some((8443, true)));
        assert_eq!(routed(3), None);
        assert_eq!(routed(4), None);
        let connect = |authority: &str| {
            l4.connect(&authority.parse().unwrap())
                .map(|plan| (plan.port, plan.tls))
        };
        assert_eq!(connect("pg:5432"), Some((5432, false)));
        assert_eq!(connect("PG:8443"), Some((8443, true)));
        assert_eq!(connect("pg:80"), None);
        assert_eq!(connect("web:5432"), None);
        assert_eq!(connect("user@pg:5432"), None);
        // Another namespace's workload is served the routes of `pg` in
        // its own namespace, which has none.
        let elsewhere = ServiceL4::new(names(&["pg"]), vec![(Some(0), 5432)], &resources, "web");
        assert!(elsewhere.port(0).is_none());
        // A reload without the routes takes them out.
        l4.reload(&RetryResources::default());
        assert!(l4.port(0).is_none());
        assert_eq!(connect("pg:5432"), None);
    }

    // A routed connection whose task is aborted (a listener's shutdown
    // grace ran out) drops its handle unclosed: it is counted closed, as
    // `unexpected`, once; one closed on its own is not counted twice.
    #[test]
    fn a_connection_dropped_unclosed_is_counted_closed_once_as_unexpected() {
        let mut registry = Registry::default();
        let metrics = L4RouteMetrics::register(&mut registry);
        let parent = ServiceRef::new("pg", "emojivoto").with_port(5432);
        let route =
            || RouteRef::resource("gateway.networking.k8s.io", "TCPRoute", "emojivoto", "r");
        drop(metrics.open_service(false, &parent, route(), 5432));
        metrics
            .open_service(false, &parent, route(), 5432)
            .close(close::NONE);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let value = |prefix: &str, error: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix) && l.contains(&format!("error=\"{error}\"")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        let open = text
            .lines()
            .find(|l| l.starts_with("outbound_tcp_route_open_total{"))
            .unwrap();
        assert!(open.ends_with(" 2"), "{text}");
        let close = "outbound_tcp_route_close_total{";
        assert_eq!(value(close, "unexpected").as_deref(), Some("1"), "{text}");
        assert_eq!(value(close, "").as_deref(), Some("1"), "{text}");
    }

    fn net() -> Captured {
        Captured {
            namespace: "emojivoto".into(),
            name: "net".into(),
            allow: false,
        }
    }

    #[test]
    fn first_bytes_tell_tls_from_the_rest_once_a_record_is_whole() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"EHLO x\r\n"), Some(Hello::Other));
        // A handshake record's header alone: more is needed.
        assert_eq!(classify(&[HANDSHAKE, 3, 1, 0, 10]), None);
        assert_eq!(partial(&[HANDSHAKE, 3]), Hello::Tls(None));
        assert_eq!(partial(b""), Hello::Other);
    }

    #[test]
    fn a_route_labels_a_hundred_names_and_the_rest_unnamed() {
        let metrics = L4RouteMetrics::register(&mut Registry::default());
        let network = net();
        let route = RouteRef::default_named("tls-egress-deny");
        for n in 0..HOSTNAMES_PER_ROUTE {
            let name = format!("h{n}.test");
            assert_eq!(&*metrics.label(&network, &route, &name), name);
        }
        assert_eq!(&*metrics.label(&network, &route, "late.test"), "");
        // A name already labelled keeps its label; another route has its
        // own hundred.
        assert_eq!(&*metrics.label(&network, &route, "h0.test"), "h0.test");
        let other = RouteRef::default_named("tcp-egress-deny");
        assert_eq!(&*metrics.label(&network, &other, "late.test"), "late.test");
    }

    #[test]
    fn a_client_hello_without_an_sni_takes_none_of_the_hundred_places() {
        let metrics = L4RouteMetrics::register(&mut Registry::default());
        let network = net();
        let route = RouteRef::default_named("tls-egress-deny");
        assert_eq!(&*metrics.label(&network, &route, ""), "");
        for n in 0..HOSTNAMES_PER_ROUTE {
            let name = format!("h{n}.test");
            assert_eq!(&*metrics.label(&network, &route, &name), name);
        }
    }

    // A default route takes every port: its hundred names are its own on
    // all of them, not a hundred more on each port a client tries.
    #[test]
    fn a_routes_hundred_names_are_shared_by_its_ports() {
        let mut registry = Registry::default();
        let metrics = L4RouteMetrics::register(&mut registry);
        let network = net();
        let route = || RouteRef::default_named("tls-egress-deny");
        let sni = |name: &str| Sni::parse(name).unwrap();
        for n in 0..HOSTNAMES_PER_ROUTE {
            let dst = SocketAddr::from(([127, 0, 0, 1], 443));
            let opened = metrics.open(
                true,
                &network,
                route(),
                Some(&sni(&format!("h{n}.test"))),
                dst,
            );
            opened.close(close::FORBIDDEN);
        }
        let dst = SocketAddr::from(([127, 0, 0, 1], 8443));
        let opened = metrics.open(true, &network, route(), Some(&sni("late.test")), dst);
        opened.close(close::FORBIDDEN);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let late = text
            .lines()
            .find(|l| {
                l.starts_with("outbound_tls_route_open_total{")
                    && l.contains("parent_port=\"8443\"")
            })
            .unwrap();
        assert!(late.contains("hostname=\"\""), "{late}");
        assert!(!text.contains("late.test"), "{text}");
    }

    /// The first bytes a rustls client sends for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let config = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    /// What a tunnel forwards after `peek`: the bytes it read, then the
    /// rest of `io` until its end.
    async fn forwarded<I: AsyncRead + Unpin>(prefix: BytesMut, io: I) -> Vec<u8> {
        let mut all = Vec::new();
        PrefixedIo::new(prefix.freeze(), io)
            .read_to_end(&mut all)
            .await
            .unwrap();
        all
    }

    // A ClientHello that comes in small pieces, over many reads, is read
    // whole, and what follows it in the same reads is kept: every byte
    // the client sent is forwarded once, in order.
    #[tokio::test]
    async fn a_client_hello_in_pieces_is_read_whole_and_every_byte_forwarded_once() {
        let mut sent = client_hello("httpbin.test");
        sent.extend_from_slice(b"\x17\x03\x03\x00\x05after and more");
        let (mut client, mut server) = tokio::io::duplex(16);
        let writing = sent.clone();
        tokio::spawn(async move {
            for piece in writing.chunks(7) {
                tokio::io::AsyncWriteExt::write_all(&mut client, piece)
                    .await
                    .unwrap();
            }
        });
        let (hello, prefix) = peek(&mut server, Duration::from_secs(10)).await.unwrap();
        let sni = Sni::parse("httpbin.test").unwrap();
        assert_eq!(hello, Hello::Tls(Some(sni)));
        assert!(prefix.len() <= MAX_RECORD);
        assert_eq!(forwarded(prefix, server).await, sent);
    }

    // A client that ends its side in the middle of a record is a TLS one
    // without SNI, and the part it sent is forwarded; so is a record that
    // is not a handshake, read as TCP.
    #[tokio::test]
    async fn a_record_cut_short_or_not_a_handshake_is_forwarded_as_it_came() {
        let hello = client_hello("httpbin.test");
        let half = hello[..hello.len() / 2].to_vec();
        let (mut client, mut server) = tokio::io::duplex(MAX_RECORD);
        tokio::io::AsyncWriteExt::write_all(&mut client, &half)
            .await
            .unwrap();
        drop(client);
        let (got, prefix) = peek(&mut server, Duration::from_secs(10)).await.unwrap();
        assert_eq!(got, Hello::Tls(None));
        assert_eq!(forwarded(prefix, server).await, half);

        let data = b"\x17\x03\x03\x00\x02hi".to_vec();
        let (mut client, mut server) = tokio::io::duplex(MAX_RECORD);
        tokio::io::AsyncWriteExt::write_all(&mut client, &data)
            .await
            .unwrap();
        drop(client);
        let (got, prefix) = peek(&mut server, Duration::from_secs(10)).await.unwrap();
        assert_eq!(got, Hello::Other);
        assert_eq!(forwarded(prefix, server).await, data);
    }

    // A timeout of zero: the reads that can complete do, then it passes.
    #[tokio::test]
    async fn a_client_that_sends_nothing_is_tcp_at_the_timeout() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let (hello, buf) = peek(&mut server, Duration::ZERO).await.unwrap();
        assert_eq!(hello, Hello::Other);
        assert!(buf.is_empty());
        tokio::io::AsyncWriteExt::write_all(&mut client, &[HANDSHAKE, 3])
            .await
            .unwrap();
        let (hello, buf) = peek(&mut server, Duration::ZERO).await.unwrap();
        assert_eq!(hello, Hello::Tls(None));
        assert_eq!(&buf[..], &[HANDSHAKE, 3]);
    }
}
