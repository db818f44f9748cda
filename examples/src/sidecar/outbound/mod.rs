//! The outbound side: from the local application to other services.
//!
//! A request goes through, in order:
//!
//! ```text
//! route lookup (service by authority, route by its matches)
//!   ─ metrics (outbound, labelled with the service's TLS)
//!   ─ header filters (the route's RequestHeaderModifier and
//!     ResponseHeaderModifier)
//!   ─ request timeout ─ retry (budget per service) ─ per-try timeout
//!   ─ backend (the route's backendRefs by weight; else the service)
//!   ─ endpoint (Forward: the backend service's endpoints in turn)
//!   ─ connector (mutual TLS expecting the service's identity, or plaintext)
//!   ─ TCP metrics (the bytes on the wire, under TLS)
//! ```
//!
//! The lookup does no I/O and answers nothing itself except the 404 of an
//! unknown authority (which goes through metrics too); it comes first so
//! that metrics, retries and timeouts can read the service and route it
//! names. Metrics then see every request as the application does: one
//! logical request, whatever the retries below. The request timeout covers
//! every attempt and the backoff between them; the per-try timeout sits
//! inside retry, so a slow attempt is retried.
//! A service's routes come from the `HTTPRoute`s whose parent is the
//! service and from its `ServiceProfile` (in the policy resources), tried
//! in that order; requests none of them matches take the service's own
//! `retry` and `timeouts`.
//!
//! A route whose rule has `backendRefs` splits its requests between the
//! outbound services they name, by weight (see [`split`]): each backend
//! is reached at its own endpoints, over its own TLS. Metrics and retries
//! still count the request under the service it was addressed to.

mod router;
mod split;
mod upstream;

use std::{net::SocketAddr, sync::Arc};

use hyper::body::Incoming;
use mesh_core::{
    BoxError, RouteId,
    client::ClientConfig,
    labels::DstService,
    proxy::Forward,
    route::{EditHeaders, EditHeadersLayer},
};
use mesh_metrics::{HttpMetrics, MetricsLayer, TcpMetrics, http::Metrics};
use mesh_retry::{
    Budget, RetryMetrics, RetryPolicy, RouteRetryPolicy, RouteStackLayer,
    config::{RetryResources, ServiceRetryPolicy},
    replay::ReplayBody,
    timeout::TimeoutBody,
};
use mesh_tls::CredentialStore;
use tower::Layer;

use self::router::{NoRoute, OutboundRouter, Route, ServiceRoutes};
use self::split::Split;
pub(crate) use self::upstream::{ServiceConnectors, Upstream, tls_label};
use super::config::{OutboundConfig, ServiceConfig, ServiceName};
use super::run::StartError;

/// The endpoints of a service on one runtime.
type Endpoint = Forward<Upstream<ReplayBody<Incoming>>>;

/// One route's stack on one runtime: request timeout, retry and per-try
/// timeout as mesh-retry's one fused service, over the route's backends.
pub(crate) type RouteStack = Metrics<EditHeaders<mesh_retry::RouteStack<Split<Endpoint>>>>;

/// What answers requests for unknown authorities, counted like the rest.
type NotFound = Metrics<NoRoute<TimeoutBody<mesh_core::body::Proxied<Incoming>>, BoxError>>;

/// The outbound stack of one runtime.
pub(crate) type Stack = OutboundRouter<RouteStack, NotFound>;

/// Everything outbound that is built once, in `start`, and shared by every
/// runtime: the connectors (and their TLS configurations), the budgets,
/// the route layers with their metrics resolved.
#[derive(Debug)]
pub(crate) struct Outbound {
    services: Vec<ServicePlan>,
    metrics: MetricsLayer,
}

#[derive(Debug)]
struct ServicePlan {
    name: ServiceName,
    dst: DstService,
    endpoints: Vec<SocketAddr>,
    connectors: ServiceConnectors,
    routes: Vec<RoutePlan>,
    fallback: RoutePlan,
}

#[derive(Debug)]
struct RoutePlan {
    id: RouteId,
    policy: RouteRetryPolicy,
    layer: RouteStackLayer,
    /// The route's header filters, outside its retries: every attempt
    /// carries the edited request.
    edits: EditHeadersLayer,
    /// The services its requests go to (indexes into
    /// [`Outbound::services`]) and their weights; empty for the service
    /// the route belongs to.
    backends: Vec<(usize, u32)>,
}

/// The metric families outbound requests and connections count into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutboundMetrics<'a> {
    pub(crate) http: &'a HttpMetrics,
    pub(crate) tcp: &'a TcpMetrics,
    pub(crate) retry: &'a RetryMetrics,
}

/// The name of the route of requests no configured route matches.
const FALLBACK_ROUTE: &str = "default";

impl Outbound {
    /// Plans every service of `config`: its connectors over `store`, its
    /// routes from `resources` (looked up by name, in `namespace` unless
    /// the name says), and one budget shared by all of them.
    pub(crate) fn new(
        config: &OutboundConfig,
        resources: &RetryResources,
        namespace: &str,
        store: &CredentialStore,
        client: &ClientConfig,
        metrics: &OutboundMetrics<'_>,
    ) -> Result<Self, StartError> {
        let mut services = Vec::with_capacity(config.services.len());
        let mut http = MetricsLayer::outbound(metrics.http);
        for (index, service) in config.services.iter().enumerate() {
            let connectors = ServiceConnectors::new(client, store, &service.tls, metrics.tcp)
                .map_err(|source| StartError::Tls {
                    field: format!("outbound.services[{index}]"),
                    source,
                })?;
            http = http.with_service_tls(service.name.as_str(), &tls_label(&service.tls));
            let from_resources = retry_policy_of(resources, &service.name, namespace);
            let mut plan = ServicePlan::new(service, from_resources, connectors, metrics.retry);
            for route in &mut plan.routes {
                route.backends = route_backends(&route.policy, index, config, namespace)?;
            }
            services.push(plan);
        }
        for unused in resources.services.iter().filter(|s| {
            !config
                .services
                .iter()
                .any(|c| names_service(&c.name, &s.name, s.namespace.as_deref(), namespace))
        }) {
            tracing::warn!(
                service = %unused.name,
                namespace = unused.namespace.as_deref().unwrap_or(namespace),
                "routes for a service that is not in outbound.services are not used"
            );
        }
        Ok(Self {
            services,
            metrics: http,
        })
    }

    /// The outbound stack of one runtime, with its own connection pools.
    pub(crate) fn stack(&self, client: &ClientConfig) -> Stack {
        let endpoints: Vec<Option<Endpoint>> = self
            .services
            .iter()
            .map(|plan| {
                Forward::new(
                    plan.connectors.client(client),
                    plan.endpoints.iter().copied(),
                )
                .ok()
            })
            .collect();
        let services = self
            .services
            .iter()
            .zip(&endpoints)
            .filter_map(|(plan, own)| {
                let own = own.as_ref()?;
                // A backend without endpoints cannot be configured; its share
                // would fall to the others, and a route left with none to the
                // service itself.
                let split = |route: &RoutePlan| {
                    let backends = route.backends.iter().filter_map(|&(i, weight)| {
                        let endpoint = endpoints.get(i)?.as_ref()?;
                        Some((endpoint.clone(), weight))
                    });
                    Split::new(backends).unwrap_or_else(|| Split::One(own.clone()))
                };
                let route = |plan: &RoutePlan| Route {
                    id: plan.id.clone(),
                    matches: plan.policy.matches.clone().into(),
                    service: self
                        .metrics
                        .layer(plan.edits.layer(plan.layer.layer(split(plan)))),
                };
                let routes = ServiceRoutes {
                    dst: plan.dst.clone(),
                    routes: plan.routes.iter().map(route).collect(),
                    fallback: route(&plan.fallback),
                };
                Some((plan.name.as_str().to_owned(), routes))
            });
        OutboundRouter::new(services, self.metrics.layer(NoRoute::new()))
    }
}

impl ServicePlan {
    fn new(
        service: &ServiceConfig,
        resources: Option<&ServiceRetryPolicy>,
        connectors: ServiceConnectors,
        metrics: &RetryMetrics,
    ) -> Self {
        let name = service.name.as_str();
        let budget = service
            .budget
            .or(resources.map(|r| r.budget))
            .unwrap_or_default();
        let budget = Arc::new(Budget::new(budget));
        metrics.observe_budget(name, &budget);
        let plan = |policy: RouteRetryPolicy| RoutePlan {
            id: RouteId::new(policy.name.clone()),
            layer: policy.layer_with_metrics(budget.clone(), metrics, name),
            edits: EditHeadersLayer::new(
                policy.request_headers.clone(),
                policy.response_headers.clone(),
            ),
            policy,
            backends: Vec::new(),
        };
        let fallback = RouteRetryPolicy {
            name: FALLBACK_ROUTE.into(),
            matches: Vec::new(),
            retry: service.retry.clone().unwrap_or_else(RetryPolicy::never),
            timeouts: service.timeouts,
            backends: Vec::new(),
            request_headers: Default::default(),
            response_headers: Default::default(),
        };
        let routes: Vec<RoutePlan> = resources
            .map(|r| r.routes.iter().cloned().map(plan).collect())
            .unwrap_or_default();
        if !routes.is_empty() {
            tracing::info!(
                service = name,
                routes = ?routes.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                "outbound routes"
            );
        }
        Self {
            name: service.name.clone(),
            dst: DstService(Arc::from(name)),
            endpoints: service.endpoints.clone(),
            connectors,
            routes,
            fallback: plan(fallback),
        }
    }
}

/// The routes the resources give the outbound service `name`.
fn retry_policy_of<'r>(
    resources: &'r RetryResources,
    name: &ServiceName,
    namespace: &str,
) -> Option<&'r ServiceRetryPolicy> {
    resources
        .services
        .iter()
        .find(|s| names_service(name, &s.name, s.namespace.as_deref(), namespace))
}

/// Checks that every route `resources` gives `config`'s services sends
/// its requests to outbound services: what [`Outbound::new`] refuses to
/// start without, for `sidecar check`.
///
/// # Errors
///
/// The first route with a backend that is not an outbound service.
pub(crate) fn check_backends(
    config: &OutboundConfig,
    resources: &RetryResources,
    namespace: &str,
) -> Result<(), StartError> {
    for (index, service) in config.services.iter().enumerate() {
        let routes = retry_policy_of(resources, &service.name, namespace).map(|r| &r.routes);
        for route in routes.into_iter().flatten() {
            route_backends(route, index, config, namespace)?;
        }
    }
    Ok(())
}

/// The outbound services the backends of `route` (a route of
/// `config.services[index]`) name, as indexes into `config.services`,
/// with their weights: empty when the route names none.
fn route_backends(
    route: &RouteRetryPolicy,
    index: usize,
    config: &OutboundConfig,
    namespace: &str,
) -> Result<Vec<(usize, u32)>, StartError> {
    route
        .backends
        .iter()
        .map(|backend| {
            let backend_namespace = backend.namespace.as_deref();
            config
                .services
                .iter()
                .position(|s| names_service(&s.name, &backend.name, backend_namespace, namespace))
                .map(|i| (i, backend.weight))
                .ok_or_else(|| StartError::Backend {
                    field: format!("outbound.services[{index}]"),
                    route: route.name.to_string(),
                    backend: format!(
                        "{}.{}",
                        backend.name,
                        backend_namespace.unwrap_or(namespace)
                    ),
                })
        })
        .collect()
}

/// Whether the outbound service `name` is the service `service` in
/// `service_namespace` (the workload's `namespace` when `None`): as
/// Kubernetes DNS resolves names, `emoji` is `emoji` in the workload's
/// namespace, and `emoji.emojivoto` or `emoji.emojivoto.svc.cluster.local`
/// is `emoji` in `emojivoto`.
fn names_service(
    name: &ServiceName,
    service: &str,
    service_namespace: Option<&str>,
    namespace: &str,
) -> bool {
    let mut labels = name.as_str().split('.');
    let short = labels.next().unwrap_or_default();
    let in_namespace = labels.next().unwrap_or(namespace);
    short == service && in_namespace == service_namespace.unwrap_or(namespace)
}
