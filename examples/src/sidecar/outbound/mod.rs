//! The outbound side: from the local application to other services.
//!
//! A request goes through, in order:
//!
//! ```text
//! route lookup (service by authority, or by destination override in
//!   ingress mode; route by its hostnames, then its matches)
//!   ─ metrics (outbound, labelled with the service's TLS)
//!   ─ route metrics (Linkerd's `outbound_*_route_request_*`, once per
//!     logical request: [`backend`])
//!   ─ header filters (the route's RequestHeaderModifier and
//!     ResponseHeaderModifier), and a RequestRedirect's answer
//!   ─ request timeout ─ retry (budget per service) ─ per-try timeout
//!   ─ backend (the route's backendRefs by weight; else the service),
//!     each attempt counted under it ([`backend`])
//!   ─ endpoint (Forward: the cheaper of two of the backend service's
//!     endpoints, which DNS names keep current: [`endpoints`])
//!   ─ connector (mutual TLS expecting the service's identity, or plaintext)
//!   ─ TCP metrics (the bytes on the wire, under TLS)
//! ```
//!
//! The lookup does no I/O and answers nothing itself except the 404 of an
//! unknown authority or override and the 400 of a request that names no
//! one authority (two `Host`s, or userinfo in its `Host` or target), both
//! of which go through metrics too (an unknown authority goes to
//! [`egress`] first, which looks its host up only when the policy has
//! `EgressNetwork`s); it
//! comes first so that metrics, retries and timeouts can read the service
//! and route it names. Metrics then see every request as the application does: one
//! logical request, whatever the retries below. The request timeout covers
//! every attempt and the backoff between them; the per-try timeout sits
//! inside retry, so a slow attempt is retried. A gRPC call's retries read
//! the first frame of an answer whose head carries no `grpc-status`, while
//! another attempt is possible, so that trailers sent right after the
//! head with a retried code are retried, as linkerd2-proxy's are; the
//! per-try timeout bounds that wait too, and any other first frame reaches
//! the application unchanged.
//! A service's routes come from the `HTTPRoute`s whose parent is the
//! service (those in the service's namespace, which apply to every
//! client, and those in the workload's own namespace, which apply to its
//! clients alone, as Linkerd serves consumer routes; not those of other
//! namespaces), or from its `ServiceProfile` (in the policy resources)
//! when the profile has routes or `dstOverrides`: Linkerd's proxy serves
//! such a service by its profile alone, so its `HTTPRoute`s and
//! `GRPCRoute`s are then set aside, each with a warning. Requests none of
//! a profile's routes matches take the service's own `retry` and
//! `timeouts`. The routes are planned again whenever the
//! policy files change ([`Outbound::reload`]): each runtime then rebuilds
//! its route stacks over the connection pools it already has, and swaps
//! them in for the requests that follow. Requests in flight finish on the
//! routes they started on. Policy files that cannot be read leave the last
//! good routes in force.
//!
//! In ingress mode (`outbound.ingress_mode`, for the sidecar of an
//! ingress controller) the lookup reads the request's destination
//! override first: `mesh-dst-override`, or Linkerd's `l5d-dst-override`,
//! which the ingress sets per route to name the service, since the
//! request's authority is the public name it was asked for. A request
//! without one goes by its authority. The override is then the authority
//! in every respect: the service's routes, retries, timeouts and metric
//! labels are the ones it names. Outside ingress mode it is not read, so
//! that an application cannot steer a sidecar with it, and in both modes
//! it is removed before the routes are matched and the request goes on
//! ([`dst_override`]).
//!
//! A route whose rule has `backendRefs` splits its requests between the
//! outbound services they name, by weight (see [`split`]): each backend
//! is reached at its own endpoints, over its own TLS. Metrics and retries
//! still count the request under the service it was addressed to. A rule
//! whose backends all have weight 0 sends its requests nowhere: the mesh
//! answers them `500` (gRPC `UNAVAILABLE`), without retries, as the
//! Gateway API asks. So does a backend that is not an outbound service
//! (a route applied before the service it names) to the requests drawn
//! to it, by its weight; the sidecar starts, and reloads, with a warning
//! naming where the backend is written. A service whose `ServiceProfile`
//! has `dstOverrides` (Linkerd's split of a whole service), or that is
//! the apex of an SMI `TrafficSplit` (read as the `dstOverrides`
//! linkerd-smi writes for it), splits every request by them instead, on
//! its profile routes and off them, as Linkerd's proxy serves such a
//! service by its profile.
//!
//! Not every application speaks HTTP. The listeners of `outbound.ports`
//! each take TCP connections for one service and forward them as opaque
//! bytes ([`tcp`]):
//!
//! ```text
//! TCP accept ─ endpoint (ForwardTcp: the cheaper of two of the service's
//!   endpoints, a balancer of its own over the same endpoint set)
//!   ─ connector (the service's: mutual TLS or plaintext) ─ TCP metrics
//!   ─ bytes both ways until either side closes
//! ```
//!
//! A service's HTTP routes, retries, timeouts, budget and `http2_upgrade`
//! are about requests and do not apply to its TCP port; its endpoints,
//! TLS and failure accrual do, and so do its `TLSRoute`s and `TCPRoute`s,
//! which split the port's connections between backend services, or send
//! each where the SNI of its ClientHello says ([`l4_route`]).
//!
//! A `CONNECT` to the outbound listener whose authority names a service
//! is tunnelled the same way, through the same forwarders, before any
//! route is looked up (mesh-core's `ConnectTunnel`, set up in the
//! worker; by the service's connection routes on the `CONNECT`'s port
//! when it has any); one to an unknown authority is egress, as below.
//!
//! A request whose authority names no service is egress ([`egress`]):
//! Linkerd's `EgressNetwork`s, compiled with the policy, decide by the
//! address its host resolves to. A rule of the `HTTPRoute`s and
//! `GRPCRoute`s attached to the network (planned with the services'
//! routes, for each destination port) that takes the request serves it
//! as a service's rule would, over the original destination or outbound
//! services. Else the network's default route: `Allow` sends it there in
//! plaintext, without retries or timeouts; `Deny` answers `403`. An
//! address no network captures, or a policy without any network, gets
//! the router's 404 as before. A `CONNECT` to such an
//! authority is tunnelled in plain TCP to an `Allow` network's address,
//! and refused by egress otherwise ([`tcp`]).

mod backend;
mod dst_override;
mod duration;
mod egress;
mod egress_tunnel;
mod endpoints;
mod ends;
mod l4_route;
mod labels;
mod plan;
mod profile;
mod router;
mod split;
mod tcp;
#[cfg(test)]
mod tests;
mod upstream;

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use hyper::body::Incoming;
use mesh_core::{BoxError, client::ClientConfig, proxy::Forward, route::EditHeaders};
use mesh_metrics::{HttpMetrics, MetricsLayer, TcpMetrics, http::Metrics};
use mesh_retry::{
    RetryMetrics,
    config::RetryResources,
    replay::ReplayBody,
    retry::{PeekBody, PeekTrailers},
    timeout::TimeoutBody,
};
use mesh_tls::CredentialStore;
use tokio::sync::watch;
use tower::Layer;

pub(crate) use self::backend::BackendMetrics;
use self::backend::{Counted, CountedBody};
use self::egress::Egress;
use self::egress::EgressShared;
pub(crate) use self::egress::EgressSource;
pub(crate) use self::egress_tunnel::EgressConnect;
use self::egress_tunnel::EgressRoutes;
pub(crate) use self::endpoints::ResolveMetrics;
use self::endpoints::{FirstAnswers, Queues, ServiceEndpoints};
use self::l4_route::ServiceL4;
use self::labels::ServiceRef;
use self::plan::{PlannedBackend, Planner, RoutePlan, RoutePlans};
pub(crate) use self::plan::{planning_warnings, unserved_egress_routes};
use self::profile::ProfileLevel;
use self::router::{NoRoute, OutboundRouter, Route, RouteTable, ServiceRoutes};
use self::split::{Backend, Rescue, Split};
pub(crate) use self::tcp::{NoHttp, ResolveConnect, TcpServices};
pub(crate) use self::upstream::{ServiceConnectors, Upstream, tls_label};
use super::config::{OutboundConfig, ServiceName};
use super::start_error::StartError;

/// The endpoints of a service on one runtime.
type Endpoint = Forward<Upstream<ReplayBody<Incoming>>>;

/// One route's stack on one runtime: the route's own counters (over its
/// filters, as Linkerd's route metrics are), header filters, the answer
/// to a request drawn to a backend that is not an outbound service
/// ([`Rescue`]), then request timeout, retry and per-try timeout as
/// mesh-retry's one fused service, over the route's backends.
///
/// The fused service reads the first frame of a gRPC answer that could
/// still be retried ([`PeekTrailers`]), so that a status sent in trailers
/// right after an ordinary head is retried as a trailers-only one is, as
/// linkerd2-proxy's retries do; its response body is then a
/// [`PeekBody`].
pub(crate) type RouteStack = Metrics<
    Counted<
        EditHeaders<
            Rescue<mesh_retry::RouteStack<Split<Counted<Backend<Endpoint>>>, PeekTrailers>>,
        >,
    >,
>;

/// The body of a route's responses, under its counters.
type RouteBody = TimeoutBody<
    PeekBody<CountedBody<mesh_core::body::Proxied<mesh_core::proxy::ResponseBody<Incoming>>>>,
>;

/// What answers requests for unknown authorities, counted like the rest.
type NotFound = Metrics<NoRoute<CountedBody<RouteBody>, BoxError>>;

/// The outbound stack of one runtime: the services' routes, and egress
/// for the requests that name none ([`egress`]).
pub(crate) type Stack = OutboundRouter<RouteStack, Egress>;

/// Everything outbound that is built once, in `start`, and shared by every
/// runtime: the connectors (and their TLS configurations), the metrics,
/// and the routes in force, which a reload replaces.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// Each service's endpoints and connectors, in the order of
    /// `outbound.services`. The connectors do not change while the
    /// sidecar runs; the endpoints given by name do ([`endpoints`]).
    services: Vec<ServiceTarget>,
    metrics: MetricsLayer,
    backends: BackendMetrics,
    planner: Planner,
    routes: watch::Sender<Arc<RoutePlans>>,
    /// `outbound.ingress_mode`: requests are routed by their destination
    /// override first ([`dst_override`]).
    ingress_mode: bool,
    /// The service of each `outbound.ports` entry, as an index into
    /// `services` ([`tcp`]).
    tcp_ports: Vec<Option<usize>>,
    /// What every runtime's egress shares ([`egress`]).
    egress: Arc<EgressShared>,
    /// The `EgressNetwork`s' `TLSRoute`s and `TCPRoute`s, which a reload
    /// replaces ([`egress_tunnel`]).
    egress_routes: Arc<EgressRoutes>,
    /// The services' `TLSRoute`s and `TCPRoute`s, which their TCP ports
    /// and `CONNECT`s follow and a reload replaces ([`l4_route`]).
    service_l4: Arc<ServiceL4>,
}

#[derive(Debug)]
struct ServiceTarget {
    name: ServiceName,
    endpoints: Arc<ServiceEndpoints>,
    connectors: ServiceConnectors,
    resolve_interval: Duration,
}

/// The metric families outbound requests and connections count into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutboundMetrics<'a> {
    pub(crate) http: &'a HttpMetrics,
    pub(crate) tcp: &'a TcpMetrics,
    pub(crate) retry: &'a RetryMetrics,
    pub(crate) backend: &'a BackendMetrics,
    pub(crate) resolve: &'a ResolveMetrics,
}

impl Outbound {
    /// [`listening_on`](Self::listening_on) the configured addresses of
    /// the outbound listeners, for tests that bind none, as a sidecar
    /// without an identity of its own.
    #[cfg(test)]
    pub(crate) fn new(
        config: &OutboundConfig,
        resources: &RetryResources,
        namespace: &str,
        store: &CredentialStore,
        client: &ClientConfig,
        metrics: &OutboundMetrics<'_>,
    ) -> Result<Self, StartError> {
        let configured: Vec<SocketAddr> = std::iter::once(config.listen)
            .chain(config.ports.iter().map(|port| port.listen))
            .collect();
        Self::listening_on(
            config,
            &configured,
            &[],
            false,
            resources,
            namespace,
            store,
            client,
            metrics,
        )
    }

    /// Plans every service of `config`: its connectors over `store`, its
    /// routes from `resources` (looked up by name, in `namespace` unless
    /// the name says), and one budget shared by all of them.
    ///
    /// `listeners` are the addresses the outbound listeners were bound to
    /// (`outbound.listen`, then each of `outbound.ports`), which no
    /// service may have as an endpoint: a request sent there would loop
    /// (see `endpoints/own.rs`). They are the bound addresses, not the
    /// configured ones, because a listener configured on port 0 has its
    /// port only once bound.
    ///
    /// `others` are the sidecar's other listeners, as bound (admin,
    /// inbound): egress never sends a request or a `CONNECT` there, nor to
    /// `listeners` ([`EgressShared::loops`]).
    ///
    /// `local_identity` says whether the sidecar has an identity of its
    /// own, which the TLS label of a plaintext service's traffic tells
    /// ([`tls_label`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn listening_on(
        config: &OutboundConfig,
        listeners: &[SocketAddr],
        others: &[SocketAddr],
        local_identity: bool,
        resources: &RetryResources,
        namespace: &str,
        store: &CredentialStore,
        client: &ClientConfig,
        metrics: &OutboundMetrics<'_>,
    ) -> Result<Self, StartError> {
        let mut services = Vec::with_capacity(config.services.len());
        let mut http = MetricsLayer::outbound(metrics.http);
        let first = FirstAnswers::look_up(
            config
                .services
                .iter()
                .flat_map(|service| &service.endpoints),
        );
        for (index, service) in config.services.iter().enumerate() {
            let connectors = ServiceConnectors::new(
                client,
                store,
                &service.tls,
                local_identity,
                service.http2_upgrade,
                metrics.tcp,
            )
            .map_err(|source| StartError::Tls {
                field: format!("outbound.services[{index}]"),
                source,
            })?;
            http = http.with_service_tls(
                service.name.as_str(),
                &tls_label(&service.tls, local_identity),
            );
            let endpoints = ServiceEndpoints::new(
                service.name.as_str(),
                &service.endpoints,
                service.failure_accrual,
                metrics.resolve,
                &first,
            )
            .without_listeners(listeners)
            .with_queues(Queues {
                http: config.http_queue,
                tcp: config.tcp_queue,
            });
            services.push(ServiceTarget {
                name: service.name.clone(),
                endpoints: Arc::new(endpoints),
                connectors,
                resolve_interval: service.resolve_interval,
            });
        }
        if config.ingress_mode {
            tracing::info!(
                services = config.services.len(),
                "outbound routing in ingress mode: by mesh-dst-override or l5d-dst-override, \
                 else by authority"
            );
        }
        let tcp_ports: Vec<Option<usize>> = config
            .ports
            .iter()
            .map(|port| config.services.iter().position(|s| s.name == port.service))
            .collect();
        // The service port each TCP listener stands for: its `port`, else
        // the port it is bound to (the last of `listeners`).
        let first_port = listeners.len().saturating_sub(config.ports.len());
        let l4_ports = config
            .ports
            .iter()
            .zip(&tcp_ports)
            .enumerate()
            .map(|(i, (port, &service))| {
                let bound = listeners.get(first_port + i).map_or(0, SocketAddr::port);
                (service, port.port.unwrap_or(bound))
            })
            .collect();
        let service_l4 = ServiceL4::new(
            config.services.iter().map(|s| s.name.clone()).collect(),
            l4_ports,
            resources,
            namespace,
        );
        let planner = Planner::new(config, namespace, metrics.retry, metrics.backend);
        let plans = planner.plan(resources, None);
        // Egress leaves the mesh: plaintext, whatever identity the
        // sidecar has.
        let egress = ServiceConnectors::new(
            client,
            store,
            &mesh_tls::OutboundTls::Plaintext,
            local_identity,
            false,
            metrics.tcp,
        )
        .map_err(|source| StartError::Tls {
            field: "egress".to_owned(),
            source,
        })?;
        let egress = EgressShared::new(
            egress,
            RouteLayers {
                metrics: http.clone(),
                backends: metrics.backend.clone(),
            },
            listeners.iter().chain(others).copied(),
            metrics.retry,
        );
        Ok(Self {
            services,
            metrics: http,
            backends: metrics.backend.clone(),
            planner,
            routes: watch::Sender::new(Arc::new(plans)),
            ingress_mode: config.ingress_mode,
            tcp_ports,
            egress: Arc::new(egress),
            egress_routes: Arc::new(EgressRoutes::new(resources, namespace)),
            service_l4: Arc::new(service_l4),
        })
    }

    /// Plans the routes again from `resources` and puts them in force on
    /// every runtime. Budgets whose configuration did not change are kept.
    /// Whatever `resources` hold is planned, a backend that is not an
    /// outbound service included ([`split`]).
    pub(crate) fn reload(&self, resources: &RetryResources) {
        let plans = self.planner.plan(resources, Some(&self.routes.borrow()));
        self.routes.send_replace(Arc::new(plans));
        self.egress_routes.reload(resources);
        self.service_l4.reload(resources);
    }

    /// The outbound stack of one runtime, with its own connection pools,
    /// and the task that rebuilds its routes over those pools when they
    /// are reloaded. `egress` says which `EgressNetwork`s are in force.
    pub(crate) fn stack(
        &self,
        client: &ClientConfig,
        egress: Arc<dyn EgressSource>,
    ) -> (Stack, RouteUpdates) {
        let endpoints: Arc<[Option<Endpoint>]> = self
            .services
            .iter()
            .map(|target| target.endpoints.forward(target.connectors.client(client)))
            .collect();
        let routes = self.routes.subscribe();
        let layers = RouteLayers {
            metrics: self.metrics.clone(),
            backends: self.backends.clone(),
        };
        let table = RouteTable::new(routes_of(&layers, &endpoints, &routes.borrow()));
        let not_found = self.metrics.layer(NoRoute::new());
        let egress = Egress::new(
            not_found,
            self.egress.clone(),
            egress,
            client,
            endpoints.clone(),
            routes.clone(),
        );
        let router =
            OutboundRouter::new(table.clone(), egress).with_ingress_mode(self.ingress_mode);
        let updates = RouteUpdates {
            endpoints,
            layers,
            routes,
            table,
        };
        (router, updates)
    }
}

impl Outbound {
    /// The tasks that look the services' endpoint names up again, one per
    /// service with a name among its endpoints, pushing changes to every
    /// runtime's stack built so far and after.
    pub(crate) fn resolvers(&self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send + 'static>>> {
        self.services
            .iter()
            .filter_map(|target| {
                let lookups = endpoints::lookup::one_at_a_time(endpoints::lookup::system);
                let task = target
                    .endpoints
                    .resolver(lookups, target.resolve_interval)?;
                Some(Box::pin(task) as Pin<Box<dyn Future<Output = ()> + Send>>)
            })
            .collect()
    }
}

/// Keeps one runtime's routes current: see [`Outbound::stack`].
#[derive(Debug)]
pub(crate) struct RouteUpdates {
    endpoints: Arc<[Option<Endpoint>]>,
    layers: RouteLayers,
    routes: watch::Receiver<Arc<RoutePlans>>,
    table: RouteTable<RouteStack>,
}

impl RouteUpdates {
    /// Rebuilds the runtime's routes each time they are reloaded, until
    /// the sidecar stops.
    pub(crate) async fn run(mut self) {
        while self.routes.changed().await.is_ok() {
            let plans = self.routes.borrow_and_update().clone();
            self.table
                .replace(routes_of(&self.layers, &self.endpoints, &plans));
        }
    }
}

/// What every route stack is layered with besides its plan: the HTTP
/// metrics over it, and Linkerd's route families, over its filters and
/// under its retries.
#[derive(Clone, Debug)]
struct RouteLayers {
    metrics: MetricsLayer,
    backends: BackendMetrics,
}

/// Each service's routes on one runtime, by host: `plans` layered over the
/// runtime's `endpoints`.
fn routes_of(
    layers: &RouteLayers,
    endpoints: &[Option<Endpoint>],
    plans: &RoutePlans,
) -> Vec<(String, ServiceRoutes<RouteStack>)> {
    plans
        .services
        .iter()
        .zip(endpoints)
        .filter_map(|(plan, own)| {
            let own = own.as_ref()?;
            let parent = plan.name.as_str();
            let counted = |route: &RoutePlan,
                           attempts: &Option<Arc<ProfileLevel>>,
                           backend: Backend<Endpoint>,
                           name: ServiceRef| {
                let handles = layers
                    .backends
                    .backend(&route.labels, name, attempts.clone());
                Counted::new(backend, handles).of_attempts(route.timeouts)
            };
            // A backend without endpoints cannot be configured; its share
            // would fall to the others, and a route left with none to the
            // service itself. A backend that is not an outbound service
            // keeps its share, which it answers 500. A route whose
            // backends all have weight 0 sends nothing anywhere, the
            // service included: the split answers its requests.
            let split = |route: &RoutePlan| {
                if route.has_no_weight() {
                    return Split::Nowhere;
                }
                // A ServiceProfile route's attempts, whichever backend
                // each goes to.
                let attempts = route.profile.as_ref().map(|profile| {
                    layers
                        .backends
                        .profile_attempts(profile, route.id.classify())
                });
                let attempts = &attempts;
                let backends =
                    route
                        .backends
                        .iter()
                        .filter_map(|(backend, weight)| match backend {
                            PlannedBackend::Service(i) => {
                                let endpoint = endpoints.get(*i)?.as_ref()?;
                                let service = plans.services.get(*i)?.service.clone();
                                let backend = Backend::Service(endpoint.clone());
                                Some((counted(route, attempts, backend, service), *weight))
                            }
                            PlannedBackend::Missing(missing) => {
                                let backend = Backend::Missing(missing.clone());
                                let service = ServiceRef::new(missing.name(), "");
                                Some((counted(route, attempts, backend, service), *weight))
                            }
                            // A service's routes have none: the reader
                            // refuses one there.
                            PlannedBackend::OriginalDestination => None,
                        });
                Split::new(backends).unwrap_or_else(|| {
                    let service = plan.service.clone();
                    Split::One(counted(
                        route,
                        attempts,
                        Backend::Service(own.clone()),
                        service,
                    ))
                })
            };
            let route = |route: &RoutePlan| Route {
                id: route.id.clone(),
                hosts: route.hosts.clone(),
                matches: route.matches.clone(),
                service: route_stack(
                    layers,
                    &route.labels,
                    route.profile.as_ref(),
                    &route.id,
                    &route.edits,
                    route.layer.clone(),
                    route.timeouts,
                    split(route),
                ),
            };
            let routes = ServiceRoutes::new(
                plan.dst.clone(),
                plan.routes.iter().map(route).collect(),
                plan.fallback.as_ref().map(route),
            );
            Some((parent.to_owned(), routes))
        })
        .collect()
}

/// A route's stack, as the module docs draw it: under the HTTP metrics,
/// the route's counters of `labels` (and `profile`'s), over its filters
/// `edits`, the answer to a request drawn to a backend that is not an
/// outbound service, and `layer` (timeouts and retries) over `split`.
/// A service's routes and an `EgressNetwork`'s ([`egress`]) are built so.
#[allow(clippy::too_many_arguments)]
fn route_stack(
    layers: &RouteLayers,
    labels: &labels::RouteLabels,
    profile: Option<&profile::ProfileLabels>,
    id: &mesh_core::RouteId,
    edits: &mesh_core::route::EditHeadersLayer,
    layer: mesh_retry::RouteStackLayer,
    timeouts: backend::RouteTimeouts,
    split: Split<Counted<Backend<Endpoint>>>,
) -> RouteStack {
    layers.metrics.layer(
        Counted::new(
            edits.layer(Rescue::new(layer.peek_grpc_trailers().layer(split)).of_route(timeouts)),
            layers.backends.route(labels, profile, id.classify()),
        )
        .of_route(timeouts),
    )
}
