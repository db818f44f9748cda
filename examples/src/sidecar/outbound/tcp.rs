//! Opaque TCP to outbound services: the listeners of `outbound.ports`.
//!
//! Each connection the application opens to a TCP port goes to one
//! endpoint of the port's service, picked by the same balancer as its
//! HTTP requests (a balancer of its own, over the same endpoints, kept
//! current by the same DNS lookups), through the service's TCP connector:
//! mutual TLS expecting the service's identity, or plaintext, and counted
//! in the TCP metrics (`direction="outbound"`) as its HTTP connections
//! are. Then bytes are copied both ways until the connection ends
//! (mesh-core's [`ForwardTcp`]).
//!
//! The forwarder cannot know what the bytes are, so over mutual TLS the
//! connector offers no ALPN
//! ([`Alpn::None`](mesh_tls::connect::Alpn::None)): a negotiated
//! `http/1.1` would have the peer sidecar serve them as HTTP unread.
//! With none, a peer port that detects its protocol reads the client's
//! first bytes, as it does for plaintext, and carries a database
//! protocol as bytes and HTTP sent through the port as HTTP. A protocol
//! whose server speaks first sends no first bytes: the peer's detection
//! waits for them until its `detect_timeout`, then forwards the
//! connection to its application as opaque bytes, as Linkerd's proxy
//! does, so the greeting comes that much late; a service port served
//! `opaque` is connected at once.
//!
//! The listener itself does not detect: every connection to it is the
//! port's service's, whatever it carries, so it is served opaque from
//! the first byte and never waits. A service with `TLSRoute`s or
//! `TCPRoute`s on the port the listener stands for (its entry's `port`,
//! else the port it is bound to) has its connections routed by them
//! ([`l4_route`](super::l4_route), [`PortForward`]): split between
//! backend services by weight, or by the SNI of the ClientHello, which
//! alone is read first; a port without routes is forwarded as above.
//!
//! The outbound HTTP listener tunnels a `CONNECT` whose authority names a
//! service through the same forwarders (mesh-core's
//! [`ConnectTunnel`](mesh_core::proxy::ConnectTunnel); by the service's
//! connection routes on the `CONNECT`'s port when it has any,
//! [`egress_tunnel`](super::egress_tunnel)): an application
//! that uses the sidecar as its HTTP proxy reaches the service's
//! endpoints as a TCP port's connections do. Where a TCP port can only
//! close a connection it cannot forward, a `CONNECT` is answered `502`
//! or `503` before any `200`. Both wait for an endpoint when none is
//! ready, for `outbound.tcp_failfast_timeout` at most, in a queue of
//! `outbound.tcp_queue_capacity` places.
//!
//! A `CONNECT` whose authority names no service is egress when the policy
//! has `EgressNetwork`s ([`egress`](super::egress)): its host (an IP
//! literal, or a name looked up first, [`ResolveConnect`]) and port give
//! the destination address ([`TcpServices::egress_target`]), and the
//! network that captures it decides, by its `TLSRoute`s and `TCPRoute`s
//! on that port ([`egress_tunnel`](super::egress_tunnel)): an `Allow`
//! network's is connected to in plain TCP (the bytes leave the mesh),
//! answered `200` and tunnelled; a `Deny` network without routes on the
//! port leaves it to the router, whose egress answers it `403`
//! (`mesh-error: egress denied`), counted in the HTTP route families
//! under the network as a refused request is; and one no network
//! captures gets the router's 404.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Ready,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::{BoxFuture, Either, FutureExt};
use http::{Method, Request, Response, uri::Authority};
use hyper::body::Incoming;
use mesh_core::{body::BoxBody, error::ProxyErrorKind, proxy::ForwardTcp};
use tower::Service;

use super::egress::{Captured, EgressShared, EgressSource, host_of};
use super::egress_tunnel::EgressRoutes;
use super::l4_route::{Forwards, L4RouteMetrics, L4Routing, PortForward, PortPlan, forward_of};
use super::{Outbound, upstream::Connector};

/// The TCP forwarder of one service on one runtime.
pub(crate) type TcpForward = ForwardTcp<Connector>;

/// Every service's TCP forwarder on one runtime, in the order of
/// `outbound.services`, which one each `outbound.ports` entry uses, and
/// the services' connection routes ([`l4_route`](super::l4_route)).
#[derive(Debug)]
pub(crate) struct TcpServices {
    services: Forwards,
    ports: Vec<Option<usize>>,
    routing: Arc<L4Routing>,
    egress: EgressTcp,
}

/// What a `CONNECT` to no service needs to leave the mesh: the
/// `EgressNetwork`s in force and their routes, the lookups, the plaintext
/// connector, and the forwarders made so far.
struct EgressTcp {
    shared: Arc<EgressShared>,
    source: Arc<dyn EgressSource>,
    routes: Arc<EgressRoutes>,
    connect_timeout: Duration,
    /// A forwarder per destination, kept for the tunnels that follow: a
    /// destination is an endpoint, whose streak of failed connects is
    /// logged at `warn` once, then at `debug` until it takes a
    /// connection ([`ForwardTcp`]); one made per tunnel would begin a
    /// streak, and warn, at each. At most [`CACHED_FORWARDS`]; when full,
    /// all are dropped and made again as tunnels come.
    forwards: Mutex<HashMap<SocketAddr, TcpForward>>,
}

/// The egress destinations a runtime keeps a forwarder for.
const CACHED_FORWARDS: usize = 1024;

/// Where a `CONNECT` that is egress goes: the address its authority
/// names, and the `EgressNetwork` that captures it.
#[derive(Debug)]
pub(crate) struct EgressTarget {
    pub(crate) network: Captured,
    pub(crate) dst: SocketAddr,
}

impl std::fmt::Debug for EgressTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressTcp")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TcpServices {
    /// The service of `outbound.ports[index]`: its service's forwarder,
    /// by the service's connection routes on the port when it has any
    /// ([`PortForward`]); `None` when its service has no endpoint.
    pub(crate) fn port(&self, index: usize) -> Option<PortForward> {
        let service = (*self.ports.get(index)?)?;
        let forward = self.services.get(service)?.1.clone()?;
        Some(PortForward::new(forward, index, self.routing.clone()))
    }

    /// How a `CONNECT` to `authority` is routed by the connection routes
    /// of the service it names, when it has any on the authority's port.
    pub(crate) fn l4_connect(&self, authority: &Authority) -> Option<PortPlan> {
        self.routing.routes.connect(authority)
    }

    /// What routes the services' connections.
    pub(crate) fn l4_routing(&self) -> &Arc<L4Routing> {
        &self.routing
    }
}

impl TcpServices {
    /// The forwarder of the service a `CONNECT` to `authority` is for, as
    /// a request's authority names its service: by host, whatever the
    /// port. None for an authority with userinfo, which a `CONNECT`
    /// target never has (RFC 9110 §9.3.6: `host:port`): it goes on to the
    /// router, which answers it `400` as it answers userinfo in any
    /// request's target, rather than tunnel to the host after the `@`.
    pub(crate) fn by_authority(&self, authority: &Authority) -> Option<TcpForward> {
        if authority.as_str().contains('@') {
            return None;
        }
        self.services
            .iter()
            .find(|(name, _)| name.matches_authority(authority.as_str()))?
            .1
            .clone()
    }

    /// Whether `authority` names one of the services.
    fn names_service(&self, authority: &Authority) -> bool {
        self.services
            .iter()
            .any(|(name, _)| name.matches_authority(authority.as_str()))
    }

    /// The forwarder a `CONNECT` to `authority` is tunnelled through: its
    /// service's ([`by_authority`](Self::by_authority)). `None` for the
    /// rest: egress (in front, [`egress_tunnel`](super::egress_tunnel)),
    /// and what the router answers.
    pub(crate) fn target(&self, authority: &Authority) -> Option<TcpForward> {
        self.by_authority(authority)
    }

    /// Where a `CONNECT` to `authority` goes when it is egress: one that
    /// names no service, whose address (read from the lookups
    /// [`ResolveConnect`] made before) an `EgressNetwork` captures, and
    /// that would not loop to the sidecar's own listeners.
    pub(crate) fn egress_target(&self, authority: &Authority) -> Option<EgressTarget> {
        if authority.as_str().contains('@') || self.names_service(authority) {
            return None;
        }
        let egress = &self.egress;
        if egress.source.is_empty() {
            return None;
        }
        let port = authority.port_u16()?;
        let host = host_of(authority);
        let ip = egress.shared.hosts.peek(&host)?;
        let dst = SocketAddr::new(ip, port);
        if egress.shared.loops(dst) {
            return None;
        }
        let network = egress.source.find(ip)?;
        Some(EgressTarget { network, dst })
    }

    /// A plain TCP forwarder to `dst`, out of the mesh: the one the
    /// runtime's earlier tunnels to `dst` took, if it is kept.
    pub(crate) fn egress_forward(&self, dst: SocketAddr) -> Option<TcpForward> {
        let egress = &self.egress;
        let mut forwards = egress
            .forwards
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(forward) = forwards.get(&dst) {
            return Some(forward.clone());
        }
        let forward = ForwardTcp::new(egress.shared.tcp(), [dst])
            .ok()?
            .with_connect_timeout(egress.connect_timeout);
        if forwards.len() >= CACHED_FORWARDS {
            forwards.clear();
        }
        forwards.insert(dst, forward.clone());
        Some(forward)
    }

    /// The forwarder of the outbound service `name` in `service_namespace`,
    /// as a route's backend names it, for a workload in `namespace`: as
    /// Kubernetes DNS resolves names, `emoji` is `emoji` in the workload's
    /// namespace, `emoji.emojivoto` is `emoji` in `emojivoto`. `None` when
    /// it is no outbound service, or has no endpoint.
    pub(crate) fn service_forward(
        &self,
        name: &str,
        service_namespace: &str,
        namespace: &str,
    ) -> Option<TcpForward> {
        forward_of(&self.services, name, service_namespace, namespace)
    }

    /// The `EgressNetwork`s' routes in force.
    pub(crate) fn egress_routes(&self) -> &EgressRoutes {
        &self.egress.routes
    }

    /// The TLS and TCP route families.
    pub(crate) fn l4_metrics(&self) -> &L4RouteMetrics {
        &self.routing.metrics
    }

    /// The workload's namespace.
    pub(crate) fn namespace(&self) -> &str {
        self.egress.routes.namespace()
    }

    /// Whether a `CONNECT` to `authority` may be egress whose host must be
    /// looked up first: a name, not a service's, while the policy has
    /// `EgressNetwork`s.
    fn needs_lookup(&self, authority: &Authority) -> Option<String> {
        if authority.as_str().contains('@')
            || self.egress.source.is_empty()
            || self.names_service(authority)
        {
            return None;
        }
        let host = host_of(authority);
        host.parse::<std::net::IpAddr>().is_err().then_some(host)
    }
}

/// Looks up the host of a `CONNECT` that may be egress before the tunnel
/// reads it ([`TcpServices::target`], which cannot wait): every other
/// request goes straight to `inner`.
#[derive(Clone, Debug)]
pub(crate) struct ResolveConnect<S> {
    inner: S,
    tcp: Arc<TcpServices>,
}

impl<S> ResolveConnect<S> {
    pub(crate) fn new(inner: S, tcp: Arc<TcpServices>) -> Self {
        Self { inner, tcp }
    }
}

impl<S, B> Service<Request<B>> for ResolveConnect<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let host = (req.method() == Method::CONNECT
            && req.extensions().get::<hyper::ext::Protocol>().is_none())
        .then(|| req.uri().authority())
        .flatten()
        .and_then(|authority| self.tcp.needs_lookup(authority));
        let Some(host) = host else {
            return Either::Left(self.inner.call(req));
        };
        // The clone that was made ready takes the request, as tower asks.
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let shared = self.tcp.egress.shared.clone();
        let resolved = async move {
            shared.hosts.resolve(&host).await;
        };
        Either::Right(Box::pin(resolved.then(move |()| {
            let mut inner = inner;
            inner.call(req)
        })))
    }
}

impl Outbound {
    /// Every service's TCP forwarder for one runtime: balancers of its
    /// own, and the connectors every runtime shares. A connect may take
    /// the TCP connect timeout and the TLS handshake timeout, each of
    /// which the connector enforces on its own. `detect_timeout` bounds
    /// the wait for the ClientHello of a connection that `TLSRoute`s
    /// route (`server.detect_timeout`).
    pub(crate) fn tcp_services(
        &self,
        connect_timeout: Duration,
        detect_timeout: Duration,
        egress: Arc<dyn EgressSource>,
    ) -> TcpServices {
        let services: Forwards = self
            .services
            .iter()
            .map(|target| {
                let forward = target
                    .endpoints
                    .forward_tcp(target.connectors.tcp())
                    .map(|forward| forward.with_connect_timeout(connect_timeout));
                (target.name.clone(), forward)
            })
            .collect();
        let routing = Arc::new(L4Routing {
            routes: self.service_l4.clone(),
            forwards: services.clone(),
            metrics: self.backends.l4().clone(),
            detect_timeout,
        });
        TcpServices {
            services,
            ports: self.tcp_ports.clone(),
            routing,
            egress: EgressTcp {
                shared: self.egress.clone(),
                source: egress,
                routes: self.egress_routes.clone(),
                connect_timeout,
                forwards: Mutex::default(),
            },
        }
    }
}

/// The HTTP service of a TCP port, which serves no HTTP: its server hands
/// every connection to the forwarder unread, so this is never called; were
/// it, it would answer the mesh's 404.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NoHttp;

impl tower::Service<Request<Incoming>> for NoHttp {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        std::future::ready(Ok(ProxyErrorKind::NoRoute.response(&req)))
    }
}
