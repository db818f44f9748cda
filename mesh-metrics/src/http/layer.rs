use std::sync::Arc;

use mesh_core::{classify::Classify, conn::Tls};
use tower_layer::Layer;

use super::{
    HttpMetrics, Metrics,
    memo::Targets,
    target::{ServerTls, Shared},
};
use crate::labels::{Direction, TlsLabels};

/// Records Linkerd's request, response and latency metrics for every request
/// through the services it wraps. See the [module docs](super).
///
/// Build one per direction and stack; each keeps its own cache of resolved
/// label handles, shared by every service it makes. Each service (one per
/// [`layer`](Layer::layer) call, shared by its clones) also keeps the first
/// 128 targets it sees with the values they came from, so that most
/// requests find theirs by comparing a few addresses; reading it takes no
/// lock, so threads that share a service do not contend.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    shared: Arc<Shared>,
    /// Kept out of `shared`, so that layers for several ports share one
    /// cache of label handles: the port is part of each target's labels.
    target_port: Option<u16>,
}

impl MetricsLayer {
    /// A layer for the server side: TLS labels come from each request's
    /// [`ConnectionInfo`](mesh_core::conn::ConnectionInfo) (`client_id`),
    /// policy labels from its [`Authorized`](mesh_core::labels::Authorized)
    /// and route labels from its [`RouteId`](mesh_core::route::RouteId).
    /// A [`DstService`](mesh_core::labels::DstService) is not read: as in
    /// Linkerd, inbound series name the server, not a destination.
    ///
    /// The connection's local address is the target (`target_addr`,
    /// `target_ip`, `target_port`): the address the client reached. Its
    /// port is the one the connection was accepted on, unless
    /// [`with_target_port`](Self::with_target_port) names another.
    pub fn inbound(metrics: &HttpMetrics) -> Self {
        Self::new(metrics, Direction::Inbound, ServerTls::default())
    }

    /// A layer for the client side: the service label comes from each
    /// request's [`DstService`](mesh_core::labels::DstService), the route
    /// label from its [`RouteId`](mesh_core::route::RouteId), and TLS labels
    /// (`server_id`) from the server identity configured with
    /// [`with_server_tls`](Self::with_server_tls) or
    /// [`with_service_tls`](Self::with_service_tls). Without either, the
    /// TLS labels are left out. An
    /// [`Authorized`](mesh_core::labels::Authorized) is not read: a client
    /// is not subject to the server's policy.
    pub fn outbound(metrics: &HttpMetrics) -> Self {
        Self::new(metrics, Direction::Outbound, ServerTls::default())
    }

    fn new(metrics: &HttpMetrics, direction: Direction, server_tls: ServerTls) -> Self {
        Self {
            shared: Arc::new(Shared::new(
                metrics.clone(),
                direction,
                server_tls,
                Classify::default(),
            )),
            target_port: None,
        }
    }

    /// Inbound: labels requests with `target_port` `port`, and with
    /// `target_addr` the connection's local IP and `port`, in place of
    /// the port the connection was accepted on. Ignored outbound.
    ///
    /// A proxy that listens on one port and forwards to an application
    /// on another (the sidecar's inbound listeners) authorizes requests
    /// as the application's port, the port a `Server` selects
    /// (mesh-policy's `AuthorizeLayer::with_port`). Give the same port
    /// here: Linkerd's `target_port` is that port too (the original
    /// destination, which is what a Server's `port` matches), so
    /// `linkerd viz stat-inbound`, which groups by `target_port`, shows
    /// one row per application port, and a Server's series have
    /// `target_port` equal to their `srv_port`. Without it, every
    /// application behind the listener would be labelled with the
    /// listener's port.
    ///
    /// Layers made from one another by this method share their cache of
    /// label handles.
    #[must_use]
    pub fn with_target_port(mut self, port: u16) -> Self {
        self.target_port = Some(port);
        self
    }

    /// Classifies responses with `classify`, the same rules the retry layer
    /// uses, so both agree on what a failure is. Default is
    /// [`Classify::default`].
    ///
    /// A request whose [`RouteId`](mesh_core::route::RouteId) carries
    /// rules of its own ([`RouteId::with_classify`](mesh_core::route::RouteId::with_classify),
    /// a ServiceProfile route's `responseClasses`) is classified by those
    /// instead, as Linkerd counts a profile route's responses by its
    /// classes. They are found with the target the request is counted
    /// under, which the layer reads anyway: no lookup more per request.
    #[must_use]
    pub fn with_classify(self, classify: Classify) -> Self {
        self.rebuild(|shared| shared.classify = classify)
    }

    /// Outbound: labels every request with the TLS status the client
    /// expects of the server, typically `Tls::Mutual { peer }` naming the
    /// server identity it verifies. Services named in
    /// [`with_service_tls`](Self::with_service_tls) take theirs from there.
    /// Ignored inbound, where the connection says.
    #[must_use]
    pub fn with_server_tls(self, tls: &Tls) -> Self {
        self.rebuild(|shared| shared.server_tls.default = Some(TlsLabels::of(tls)))
    }

    /// Outbound: labels requests to `service` (their
    /// [`DstService`](mesh_core::labels::DstService)) with the TLS status
    /// the client expects of that service's servers.
    #[must_use]
    pub fn with_service_tls(self, service: &str, tls: &Tls) -> Self {
        self.rebuild(|shared| {
            shared
                .server_tls
                .by_service
                .insert(Arc::from(service), TlsLabels::of(tls));
        })
    }

    /// The direction this layer records.
    pub fn direction(&self) -> Direction {
        self.shared.direction
    }

    fn rebuild(self, change: impl FnOnce(&mut Parts)) -> Self {
        let mut parts = Parts {
            metrics: self.shared.metrics.clone(),
            direction: self.shared.direction,
            server_tls: self.shared.server_tls.clone(),
            classify: self.shared.classify.clone(),
        };
        change(&mut parts);
        Self {
            shared: Arc::new(Shared::new(
                parts.metrics,
                parts.direction,
                parts.server_tls,
                parts.classify,
            )),
            target_port: self.target_port,
        }
    }
}

/// The configuration of a layer, while a `with_*` method changes it.
struct Parts {
    metrics: HttpMetrics,
    direction: Direction,
    server_tls: ServerTls,
    classify: Classify,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(
            inner,
            Arc::new(Targets::new(self.shared.clone(), self.target_port)),
        )
    }
}
