//! Egress `CONNECT` tunnels, routed by the `TLSRoute`s and `TCPRoute`s of
//! Linkerd's `EgressNetwork`s and counted in its TLS and TCP route
//! families.
//!
//! # Why
//!
//! Most egress is not plain HTTP: HTTPS, a database, a message queue. An
//! application that uses the sidecar as its proxy sends a `CONNECT` for
//! it, and the bytes after the `200` are its own. Linkerd 2.17 controls
//! that traffic with routes attached to the `EgressNetwork`
//! (<https://linkerd.io/2.17/tasks/managing-egress-traffic/>): a
//! `TLSRoute` whose `hostnames` match the SNI of the ClientHello lets
//! `https://httpbin.org` out of a `Deny` network while `github.com` stays
//! closed, a `TCPRoute` takes every connection to its port, and what no
//! route takes goes to the network's default route (`tls-egress-allow` or
//! `tls-egress-deny`, `tcp-egress-allow` or `tcp-egress-deny`). Each
//! connection is counted in `outbound_tls_route_open_total` and
//! `outbound_tls_route_close_total` (or the `tcp` pair) under the
//! network and its route, a refused one closed with `error="forbidden"`.
//! The sidecar reads the same routes (mesh-retry's
//! [`L4Route`]) and does the same with a `CONNECT`.
//!
//! # How
//!
//! [`EgressConnect`] sits in front of mesh-core's `ConnectTunnel`. A
//! `CONNECT` whose authority names a service with `TLSRoute`s or
//! `TCPRoute`s on the `CONNECT`'s port is answered `200` and routed by
//! them as a connection to the service's TCP port is
//! ([`l4_route`](super::l4_route)); one to a service without is left to
//! the tunnel, as it always was. A
//! `CONNECT` whose authority names no service, and whose address an
//! `EgressNetwork` captures ([`TcpServices::egress_target`]), is decided
//! by the routes that network has on the destination port
//! ([`ServiceRetryPolicy::routes_on`]):
//!
//! - `TLSRoute`s: the route can only be known from the client's first
//!   bytes, which it sends only after the `200`. So the `CONNECT` is
//!   answered `200` at once, then at most one TLS record
//!   ([`MAX_RECORD`], 16 KiB and its header) is read, for at most
//!   `server.detect_timeout`. A ClientHello takes the `TLSRoute` that
//!   matches its SNI most specifically
//!   ([`tls_route`](ServiceRetryPolicy::tls_route)); anything else takes
//!   the port's `TCPRoute`; failing those, the network's default route. A
//!   client that sends nothing in that time (a protocol whose server
//!   speaks first: SMTP, MySQL) is a TCP connection; one that sent part
//!   of a TLS record, a TLS one without SNI.
//! - `TCPRoute`s alone: the port is opaque, as Linkerd's policy
//!   controller serves it, and its `TCPRoute` takes every connection
//!   whatever it carries. The `CONNECT` is answered `200` as above, so
//!   that a route that refuses it does so alike, but nothing is read
//!   first: a client that waits for its server to speak would wait
//!   `server.detect_timeout` for a read that decides nothing.
//!
//!   Either way, the bytes read are then sent first, on the connection
//!   to the route's backend: the original destination (a rule without
//!   `backendRefs`, or the `EgressNetwork` itself as a backend), or an
//!   outbound service, through its endpoints and its TLS as its TCP port
//!   forwards. A connection the route refuses (the `Deny` default, a
//!   rule whose backends all have weight 0) is closed, as Linkerd closes
//!   it: the `200` has gone.
//! - none, `Allow`: the original destination is connected to first, and
//!   a connect that fails is answered `502` (`mesh-error: upstream
//!   connect error`), as before; then `200` and the tunnel, which is not
//!   held back: its first bytes are read as they pass
//!   ([`Sniff`]) and name the default route it is counted under; when
//!   they have not by `server.detect_timeout`, it is counted then as a
//!   routed tunnel's would be, so that a tunnel whose client waits for
//!   its server is counted open while it lasts.
//! - none, `Deny`: the router answers `403` (`mesh-error: egress
//!   denied`), counted in the HTTP route families, as before: nothing
//!   could be allowed, and a client is told so in words.
//!
//! The first bytes are read ([`peek`]), a backend drawn by weight
//! ([`pick`]) and the tunnel counted ([`L4RouteMetrics`]) as a service's
//! routed connections are, by the code [`l4_route`](super::l4_route)
//! shares with them. The TLS families are labelled as linkerd2-proxy
//! labels them
//! (`linkerd/app/outbound/src/tls/logical/route.rs`: the parent, the
//! route, `hostname`, the SNI), the TCP ones too
//! (`linkerd/app/outbound/src/opaq/logical/route.rs`: `target_ip`,
//! `target_port`), and both close families with `error` as its
//! `metrics/transport.rs` names it: empty, `forbidden`,
//! `invalid_backend` (a backend that is no outbound service, or has no
//! endpoint), or `unexpected` (a connect or a copy that failed). SNIs and
//! addresses are unbounded, so each route labels at most
//! [`HOSTNAMES_PER_ROUTE`](super::egress::HOSTNAMES_PER_ROUTE) distinct ones, and counts the rest under an
//! empty label.

use std::{
    fmt, io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError, RwLock},
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::BytesMut;
use futures_util::future::{BoxFuture, Either};
use http::{HeaderMap, Method, Request, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use mesh_core::{
    conn::{ConnectionInfo, Sni},
    error::{ProxyErrorKind, UpstreamCause},
    io::PrefixedIo,
    proxy::connect::{connect_with_content, has_content},
    serve::OpaqueConnection,
};
use mesh_retry::config::{
    BackendKind, L4Route, L4RouteKind, PortRoutes, RetryResources, ServiceRetryPolicy,
};
use mesh_tls::accept::client_hello::MAX_RECORD;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::{Service, ServiceExt};

use super::egress::Captured;
use super::l4_route::{
    HANDSHAKE, Hello, L4RouteMetrics, Opened, Picked, PortPlan, classify, close, peek, pick,
};
use super::labels::RouteRef;
use super::tcp::{EgressTarget, TcpForward, TcpServices};

/// The `EgressNetwork`s' `TLSRoute`s and `TCPRoute`s in force, as the
/// workload's namespace is served them: replaced whole on each reload of
/// the policy files, read by each egress `CONNECT`.
#[derive(Debug)]
pub(crate) struct EgressRoutes {
    namespace: Box<str>,
    current: RwLock<Arc<RetryResources>>,
}

impl EgressRoutes {
    /// The routes of `resources` for a workload in `namespace`.
    pub(crate) fn new(resources: &RetryResources, namespace: &str) -> Self {
        Self {
            namespace: namespace.into(),
            current: RwLock::new(Arc::new(select(resources, namespace))),
        }
    }

    /// Puts the routes of `resources` in force for the `CONNECT`s that
    /// follow; tunnels already open keep the route they took.
    pub(crate) fn reload(&self, resources: &RetryResources) {
        let selected = Arc::new(select(resources, &self.namespace));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = selected;
    }

    /// The workload's namespace.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The routes in force, and the index of `network`'s among them.
    fn of(&self, network: &Captured) -> (Arc<RetryResources>, Option<usize>) {
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let index = current.egress_networks.iter().position(|policy| {
            *policy.name == *network.name
                && policy.namespace.as_deref().unwrap_or(&self.namespace) == &*network.namespace
        });
        (current, index)
    }
}

/// The `EgressNetwork`s' routes alone, as `namespace`'s clients are
/// served them: the services' are planned elsewhere.
fn select(resources: &RetryResources, namespace: &str) -> RetryResources {
    let only = RetryResources {
        services: Vec::new(),
        egress_networks: resources.egress_networks.clone(),
        warnings: Vec::new(),
    };
    only.for_namespace(namespace)
}

/// The route a tunnel takes: one of the network's, or its default.
#[derive(Clone, Copy, Debug)]
enum Chosen<'p> {
    Route(&'p L4Route),
    Default { tls: bool },
}

impl Chosen<'_> {
    fn tls(self) -> bool {
        match self {
            Self::Route(route) => route.kind == L4RouteKind::Tls,
            Self::Default { tls } => tls,
        }
    }

    /// The route as the families label it: the resource, its namespace
    /// the network's when it was written without one; or Linkerd's
    /// default route for the network's policy.
    fn route_ref(self, network: &Captured) -> RouteRef {
        match self {
            Self::Route(route) => RouteRef::resource(
                &route.group,
                route.kind.kind(),
                route.namespace.as_deref().unwrap_or(&network.namespace),
                &route.name,
            ),
            Self::Default { tls } => RouteRef::default_named(default_route(tls, network.allow)),
        }
    }
}

/// The name of Linkerd's default egress route for a TLS or TCP
/// connection through a network of that policy.
fn default_route(tls: bool, allow: bool) -> &'static str {
    match (tls, allow) {
        (true, true) => "tls-egress-allow",
        (true, false) => "tls-egress-deny",
        (false, true) => "tcp-egress-allow",
        (false, false) => "tcp-egress-deny",
    }
}

/// The route of a tunnel to `port` whose first bytes said `hello`, among
/// `policy`'s (the network's routes; `None` when it has none).
fn choose<'p>(policy: Option<&'p ServiceRetryPolicy>, port: u16, hello: &Hello) -> Chosen<'p> {
    let tls = match hello {
        Hello::Tls(sni) => Some(sni.as_ref().map(Sni::as_str)),
        Hello::Other => None,
    };
    let Some(policy) = policy else {
        return Chosen::Default { tls: tls.is_some() };
    };
    match tls {
        Some(sni) if policy.routes_on(port) != PortRoutes::Tcp => policy
            .tls_route(port, sni)
            .map_or(Chosen::Default { tls: true }, Chosen::Route),
        _ => policy
            .tcp_route(port)
            .map_or(Chosen::Default { tls: tls.is_some() }, Chosen::Route),
    }
}

/// Where a tunnel goes.
enum Destination {
    /// The address the `CONNECT` named.
    Original,
    /// An outbound service's endpoints.
    Service(TcpForward),
    /// Nowhere: closed, with this `error`.
    Refused(&'static str),
}

/// Where `chosen` sends a tunnel through `network`: see the
/// [module docs](self).
fn destination(
    chosen: Chosen<'_>,
    network: &Captured,
    tcp: &TcpServices,
    namespace: &str,
) -> Destination {
    let route = match chosen {
        Chosen::Default { .. } if network.allow => return Destination::Original,
        Chosen::Default { .. } => return Destination::Refused(close::FORBIDDEN),
        Chosen::Route(route) => route,
    };
    let backend = match pick(route) {
        Picked::Parent => return Destination::Original,
        Picked::Refused(error) => return Destination::Refused(error),
        Picked::Backend(backend) => backend,
    };
    match backend.kind {
        BackendKind::OriginalDestination => Destination::Original,
        BackendKind::Service => {
            let in_namespace = backend.namespace.as_deref().unwrap_or(namespace);
            match tcp.service_forward(&backend.name, in_namespace, namespace) {
                Some(forward) => Destination::Service(forward),
                None => {
                    tracing::debug!(
                        backend = backend.name,
                        namespace = in_namespace,
                        route = route.name,
                        "egress tunnel: the backend is no outbound service with endpoints"
                    );
                    Destination::Refused(close::INVALID_BACKEND)
                }
            }
        }
    }
}

/// The hook told of each `CONNECT` answered with an error here.
type OnError = Arc<dyn Fn(ProxyErrorKind, &HeaderMap, Option<UpstreamCause>) + Send + Sync>;

/// Tunnels the `CONNECT`s that are egress through an `EgressNetwork`,
/// by its routes; hands every other request to `S`. See the
/// [module docs](self).
#[derive(Clone)]
pub(crate) struct EgressConnect<S> {
    inner: S,
    tcp: Arc<TcpServices>,
    detect_timeout: Duration,
    on_error: OnError,
}

impl<S: fmt::Debug> fmt::Debug for EgressConnect<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressConnect")
            .field("inner", &self.inner)
            .field("detect_timeout", &self.detect_timeout)
            .finish_non_exhaustive()
    }
}

impl<S> EgressConnect<S> {
    /// `detect_timeout` bounds the wait for a tunnel's first bytes;
    /// `on_error` is told of each `CONNECT` answered with an error here,
    /// as mesh-core's `ConnectTunnel` tells of its own.
    pub(crate) fn new(
        inner: S,
        tcp: Arc<TcpServices>,
        detect_timeout: Duration,
        on_error: impl Fn(ProxyErrorKind, &HeaderMap, Option<UpstreamCause>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            tcp,
            detect_timeout,
            on_error: Arc::new(on_error),
        }
    }
}

impl<S, B, RB> Service<Request<B>> for EgressConnect<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let extended = req.extensions().get::<hyper::ext::Protocol>().is_some();
        if req.method() != Method::CONNECT || extended {
            return Either::Left(self.inner.call(req));
        }
        // A CONNECT to a service whose connection routes take its port is
        // routed by them (`l4_route`); every other one to a service goes
        // on to the tunnel, as it always did.
        let routed = req
            .uri()
            .authority()
            .and_then(|authority| self.tcp.l4_connect(authority));
        if let Some(plan) = routed {
            return self.service_routed(req, plan);
        }
        let target = req
            .uri()
            .authority()
            .and_then(|authority| self.tcp.egress_target(authority));
        let Some(target) = target else {
            return Either::Left(self.inner.call(req));
        };
        let routes = self.tcp.egress_routes();
        let (resources, index) = routes.of(&target.network);
        let port = target.dst.port();
        let on_port = index
            .and_then(|i| resources.egress_networks.get(i))
            .map_or(PortRoutes::None, |policy| policy.routes_on(port));
        let routed = matches!(on_port, PortRoutes::Tls | PortRoutes::Tcp);
        if !routed && !target.network.allow {
            // The router answers 403, as it always has.
            return Either::Left(self.inner.call(req));
        }
        if let Some(res) = self.refuse_content(&req) {
            return Either::Right(Box::pin(std::future::ready(Ok(res))));
        }
        let Some(downstream) = req.extensions_mut().remove::<OnUpgrade>() else {
            return Either::Left(self.inner.call(req));
        };
        let info = req.extensions_mut().remove::<ConnectionInfo>();
        let tunnel = Tunnel {
            tcp: self.tcp.clone(),
            target,
            downstream,
            info,
        };
        tracing::debug!(
            dst = %tunnel.target.dst,
            namespace = &*tunnel.target.network.namespace,
            network = &*tunnel.target.network.name,
            routed,
            "egress CONNECT"
        );
        if routed {
            // Only a TLSRoute needs the first bytes: a port whose routes
            // are all TCPRoutes is opaque, its route known now.
            let timeout = (on_port == PortRoutes::Tls).then_some(self.detect_timeout);
            tokio::spawn(tunnel.routed(resources, index, timeout));
            return Either::Right(Box::pin(std::future::ready(Ok(Response::new(
                RB::default(),
            )))));
        }
        let on_error = self.on_error.clone();
        let detect_timeout = self.detect_timeout;
        Either::Right(Box::pin(tunnel.connect_first(on_error, detect_timeout)))
    }
}

impl<S> EgressConnect<S> {
    /// The answer to a `CONNECT` with content, which mesh-core's tunnel
    /// refuses, told to the error hook as the tunnel tells its own; `None`
    /// for one without.
    fn refuse_content<B, RB: Default>(&self, req: &Request<B>) -> Option<Response<RB>> {
        if !has_content(req) {
            return None;
        }
        let res = connect_with_content();
        if let Some(&kind) = res.extensions().get::<ProxyErrorKind>() {
            (self.on_error)(kind, res.headers(), None);
        }
        Some(res)
    }

    /// A `CONNECT` to a service with connection routes on its port:
    /// answered `200` at once, as a routed egress tunnel is, since a
    /// `TLSRoute` can only be chosen from the client's first bytes, sent
    /// after it; then routed as a connection to the service's TCP port
    /// would be ([`L4Routing::route`](super::l4_route::L4Routing)), the
    /// `CONNECT`'s port the service port.
    fn service_routed<B, RB, E>(
        &mut self,
        mut req: Request<B>,
        plan: PortPlan,
    ) -> Either<S::Future, BoxFuture<'static, Result<Response<RB>, E>>>
    where
        S: Service<Request<B>, Response = Response<RB>, Error = E>,
        RB: Default + Send + 'static,
        E: Send + 'static,
    {
        if let Some(res) = self.refuse_content(&req) {
            return Either::Right(Box::pin(std::future::ready(Ok(res))));
        }
        let Some(downstream) = req.extensions_mut().remove::<OnUpgrade>() else {
            return Either::Left(self.inner.call(req));
        };
        let info = req.extensions_mut().remove::<ConnectionInfo>();
        let routing = self.tcp.l4_routing().clone();
        tracing::debug!(authority = ?req.uri().authority(), "CONNECT routed by the service's connection routes");
        tokio::spawn(async move {
            let Some(io) = Tunnel::client(downstream).await else {
                return;
            };
            let conn = OpaqueConnection {
                io: Box::new(io),
                info: Tunnel::info(info),
            };
            if let Err(error) = routing.route(plan, conn).await {
                tracing::debug!(%error, "routed CONNECT tunnel ended with an error");
            }
        });
        Either::Right(Box::pin(std::future::ready(Ok(Response::new(
            RB::default(),
        )))))
    }
}

/// One egress tunnel, its `200` sent or about to be.
struct Tunnel {
    tcp: Arc<TcpServices>,
    target: EgressTarget,
    downstream: OnUpgrade,
    info: Option<ConnectionInfo>,
}

impl Tunnel {
    /// The client's connection, once its side of the upgrade completes.
    async fn client(downstream: OnUpgrade) -> Option<TokioIo<hyper::upgrade::Upgraded>> {
        match downstream.await {
            Ok(upgraded) => Some(TokioIo::new(upgraded)),
            Err(error) => {
                tracing::debug!(%error, "egress tunnel: the client's upgrade failed");
                None
            }
        }
    }

    fn info(info: Option<ConnectionInfo>) -> ConnectionInfo {
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        info.unwrap_or_else(|| ConnectionInfo::plaintext(unknown, unknown))
    }

    /// A tunnel on a port with routes, answered `200` already: reads its
    /// first bytes for at most `timeout` (`None` on a port whose routes
    /// are all `TCPRoute`s, which takes every connection whatever it
    /// carries: none are read, so that a client waiting for its server to
    /// speak first is connected at once), takes its route, and goes where
    /// the route says.
    async fn routed(
        self,
        resources: Arc<RetryResources>,
        index: Option<usize>,
        timeout: Option<Duration>,
    ) {
        let Self {
            tcp,
            target,
            downstream,
            info,
        } = self;
        let Some(mut io) = Self::client(downstream).await else {
            return;
        };
        let peeked = match timeout {
            Some(timeout) => peek(&mut io, timeout).await,
            None => Ok((Hello::Other, BytesMut::new())),
        };
        let (hello, prefix) = match peeked {
            Ok(peeked) => peeked,
            Err(error) => {
                tracing::debug!(%error, "egress tunnel: reading the first bytes failed");
                return;
            }
        };
        let network = &target.network;
        let dst = target.dst;
        let policy = index.and_then(|i| resources.egress_networks.get(i));
        let chosen = choose(policy, dst.port(), &hello);
        let sni = match &hello {
            Hello::Tls(sni) => sni.as_ref(),
            Hello::Other => None,
        };
        let opened =
            tcp.l4_metrics()
                .open(chosen.tls(), network, chosen.route_ref(network), sni, dst);
        let forward = match destination(chosen, network, &tcp, tcp.namespace()) {
            Destination::Refused(error) => {
                tracing::debug!(%dst, sni = sni.map(Sni::as_str), error, "egress tunnel refused");
                opened.close(error);
                return;
            }
            Destination::Service(forward) => forward,
            Destination::Original => match tcp.egress_forward(dst) {
                Some(forward) => forward,
                None => {
                    opened.close(close::UNEXPECTED);
                    return;
                }
            },
        };
        let conn = OpaqueConnection {
            io: Box::new(PrefixedIo::new(prefix.freeze(), io)),
            info: Self::info(info),
        };
        match forward.oneshot(conn).await {
            Ok(()) => opened.close(close::NONE),
            Err(error) => {
                tracing::debug!(%dst, %error, "egress tunnel ended with an error");
                opened.close(close::UNEXPECTED);
            }
        }
    }

    /// A tunnel on a port without routes through an `Allow` network:
    /// connects to the original destination before it answers, `502` when
    /// that fails; then tunnels, counted under the default route its first
    /// bytes name, or, when they have not named one by `detect_timeout`
    /// (a client that waits for its server to speak first), under the one
    /// a routed tunnel's would take then: so that a tunnel is counted open
    /// while it lasts, not only once it closes.
    async fn connect_first<RB: Default, E>(
        self,
        on_error: OnError,
        detect_timeout: Duration,
    ) -> Result<Response<RB>, E> {
        let Self {
            tcp,
            target,
            downstream,
            info,
        } = self;
        let connected = match tcp.egress_forward(target.dst) {
            Some(forward) => forward.connect().await,
            None => Err("no egress forwarder".into()),
        };
        let connected = match connected {
            Ok(connected) => connected,
            Err(error) => {
                tracing::debug!(dst = %target.dst, %error, "cannot connect an egress CONNECT tunnel");
                let kind = ProxyErrorKind::UpstreamUnreachable;
                let mut res = kind.response_for(false);
                res.extensions_mut().insert(UpstreamCause::Connect);
                on_error(kind, res.headers(), Some(UpstreamCause::Connect));
                return Ok(res);
            }
        };
        tokio::spawn(async move {
            let Some(io) = Self::client(downstream).await else {
                return;
            };
            let sniffed = Arc::new(Sniffed {
                metrics: tcp.l4_metrics().clone(),
                network: target.network,
                dst: target.dst,
                state: Mutex::new(SniffState::default()),
            });
            let conn = OpaqueConnection {
                io: Box::new(Sniff {
                    io,
                    seen: Some(BytesMut::new()),
                    sniffed: sniffed.clone(),
                }),
                info: Self::info(info),
            };
            let forward = connected.forward(conn);
            tokio::pin!(forward);
            let result = tokio::select! {
                result = &mut forward => result,
                () = tokio::time::sleep(detect_timeout) => {
                    sniffed.undecided();
                    forward.await
                }
            };
            let opened = sniffed.opened();
            match result {
                Ok(()) => opened.close(close::NONE),
                Err(error) => {
                    tracing::debug!(%error, "egress tunnel ended with an error");
                    opened.close(close::UNEXPECTED);
                }
            }
        });
        Ok(Response::new(RB::default()))
    }
}

/// What a [`Sniff`] shares with its tunnel: how to count it open under
/// the default route its first bytes name, and, once counted, its handle.
struct Sniffed {
    metrics: L4RouteMetrics,
    network: Captured,
    dst: SocketAddr,
    state: Mutex<SniffState>,
}

#[derive(Default)]
struct SniffState {
    opened: Option<Opened>,
    /// Whether the bytes seen so far begin a TLS record.
    partial_tls: bool,
}

impl SniffState {
    /// What the first bytes say though they did not decide: see
    /// [`partial`](super::l4_route::partial).
    fn partial(&self) -> Hello {
        if self.partial_tls {
            Hello::Tls(None)
        } else {
            Hello::Other
        }
    }
}

impl Sniffed {
    fn open(&self, hello: &Hello) -> Opened {
        let chosen = choose(None, self.dst.port(), hello);
        let sni = match hello {
            Hello::Tls(sni) => sni.as_ref(),
            Hello::Other => None,
        };
        self.metrics.open(
            chosen.tls(),
            &self.network,
            chosen.route_ref(&self.network),
            sni,
            self.dst,
        )
    }

    /// Counts the tunnel open under what its first bytes said, unless it
    /// is counted already.
    fn decide(&self, hello: &Hello) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.opened.is_none() {
            state.opened = Some(self.open(hello));
        }
    }

    /// Counts the tunnel open, unless it is counted already, under what
    /// its first bytes say though they did not decide
    /// ([`partial`](super::l4_route::partial)): the
    /// detection timeout has passed, or the tunnel has ended.
    fn undecided(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.opened.is_none() {
            state.opened = Some(self.open(&state.partial()));
        }
    }

    /// The tunnel's handle, counted open now if it was not yet.
    fn opened(&self) -> Opened {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.opened.take() {
            Some(opened) => opened,
            None => self.open(&state.partial()),
        }
    }
}

/// A tunnel's client side, whose first bytes are read as they pass to
/// tell what it carries, never held back.
struct Sniff<I> {
    io: I,
    /// The first bytes, until they decide.
    seen: Option<BytesMut>,
    sniffed: Arc<Sniffed>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Sniff<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if let Some(seen) = this.seen.as_mut() {
            let new = &buf.filled()[before..];
            let take = new.len().min(MAX_RECORD.saturating_sub(seen.len()));
            seen.extend_from_slice(&new[..take]);
            let decided =
                classify(seen).or_else(|| (seen.len() >= MAX_RECORD).then_some(Hello::Tls(None)));
            match decided {
                Some(hello) => {
                    this.seen = None;
                    this.sniffed.decide(&hello);
                }
                None => {
                    let mut state = this
                        .sniffed
                        .state
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    state.partial_tls = seen.first() == Some(&HANDSHAKE);
                    if state.opened.is_some() {
                        // Counted at the detection timeout: no more to see.
                        drop(state);
                        this.seen = None;
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Sniff<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The routes of network `net` in `emojivoto`: a `TLSRoute` for
    /// `httpbin.test` on port 443, and a `TCPRoute` on ports 443 and 25.
    fn routes() -> RetryResources {
        let parent = |port: u16| {
            format!("[{{name: net, kind: EgressNetwork, group: policy.linkerd.io, port: {port}}}]")
        };
        let text = format!(
            "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\n\
             metadata: {{name: https, namespace: emojivoto}}\n\
             spec: {{hostnames: [httpbin.test], parentRefs: {}, rules: [{{}}]}}\n\
             ---\n\
             apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n\
             metadata: {{name: tcp-443, namespace: emojivoto}}\n\
             spec: {{parentRefs: {}, rules: [{{}}]}}\n\
             ---\n\
             apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n\
             metadata: {{name: smtp, namespace: emojivoto}}\n\
             spec: {{parentRefs: {}, rules: [{{}}]}}\n",
            parent(443),
            parent(443),
            parent(25)
        );
        mesh_retry::config::load("routes.yaml", &text).unwrap()
    }

    fn chosen(chosen: Chosen<'_>) -> String {
        match chosen {
            Chosen::Route(route) => route.name.clone(),
            Chosen::Default { tls } => default_route(tls, false).to_owned(),
        }
    }

    #[test]
    fn a_client_hello_takes_a_tls_route_by_sni_and_the_rest_the_tcp_route() {
        let resources = routes();
        let policy = resources.egress_networks.first();
        assert!(policy.is_some());
        let hello = |name: &str| Hello::Tls(Some(Sni::parse(name).unwrap()));
        let take = |port, hello: &Hello| chosen(choose(policy, port, hello));
        assert_eq!(take(443, &hello("httpbin.test")), "https");
        // A name no TLSRoute has: the TLS default, not the TCPRoute, on a
        // port that TLSRoutes take.
        assert_eq!(take(443, &hello("github.test")), "tls-egress-deny");
        assert_eq!(take(443, &Hello::Tls(None)), "tls-egress-deny");
        assert_eq!(take(443, &Hello::Other), "tcp-443");
        // A port with TCPRoutes alone takes TLS by its TCPRoute.
        assert_eq!(take(25, &hello("httpbin.test")), "smtp");
        assert_eq!(take(25, &Hello::Other), "smtp");
        // A port without routes: the defaults.
        assert_eq!(take(80, &hello("httpbin.test")), "tls-egress-deny");
        assert_eq!(take(80, &Hello::Other), "tcp-egress-deny");
        assert_eq!(chosen(choose(None, 443, &Hello::Other)), "tcp-egress-deny");
    }

    #[test]
    fn the_default_routes_are_named_as_linkerd_names_them() {
        assert_eq!(default_route(true, true), "tls-egress-allow");
        assert_eq!(default_route(true, false), "tls-egress-deny");
        assert_eq!(default_route(false, true), "tcp-egress-allow");
        assert_eq!(default_route(false, false), "tcp-egress-deny");
    }
}
