//! The outbound routes, planned from the policy resources: what each
//! service's routes match, how they retry and time out, how they edit
//! headers, whether they answer with a redirect, and where they send their
//! requests. Planned once at start, and
//! again on every reload of the policy files; the runtimes then build their
//! stacks from the plan (see [`Outbound`](super::Outbound)).

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use mesh_core::{
    RouteId,
    classify::Classify,
    labels::DstService,
    route::{EditHeadersLayer, Redirect, RouteMatch},
};
use mesh_policy::egress::EgressNetworks;
use mesh_retry::{
    Budget, RetryMetrics, RetryPolicy, RouteRetryPolicy, RouteStackLayer,
    config::{
        BackendKind, ConfigWarning, MatchRef, RetryResources, RouteHosts, ServiceRetryPolicy,
        Unmatched,
    },
};

use super::super::config::{OutboundConfig, ServiceConfig, ServiceName};
use super::BackendMetrics;
use super::backend::RouteTimeouts;
use super::labels::{RouteLabels, RouteRef, ServiceRef};
use super::profile::ProfileLabels;
use super::router::{Route, ServiceRoutes};
use super::split::Missing;

/// The name of the route of requests no configured route matches.
const FALLBACK_ROUTE: &str = "default";

/// Plans routes for the services of one outbound configuration.
#[derive(Debug)]
pub(super) struct Planner {
    config: OutboundConfig,
    /// The workload's namespace, where short service names live.
    namespace: String,
    metrics: RetryMetrics,
    /// Where each route's retries are also counted, in Linkerd's families.
    families: BackendMetrics,
}

/// Every service's routes, in the order of `outbound.services`, and the
/// routes of the `EgressNetwork`s the workload is served.
#[derive(Debug)]
pub(super) struct RoutePlans {
    pub(super) services: Vec<ServicePlan>,
    pub(super) egress: EgressPlans,
}

/// The `HTTPRoute`s and `GRPCRoute`s attached to each `EgressNetwork`, as
/// a client in the workload's namespace is served them: by the network's
/// namespace, then its name. A network without routes has no entry; its
/// traffic takes its default route ([`egress`](super::egress)).
#[derive(Debug, Default)]
pub(super) struct EgressPlans {
    networks: HashMap<Box<str>, HashMap<Box<str>, NetworkPlan>>,
}

impl EgressPlans {
    /// The routes of the network `name` of `namespace`, if it has any.
    pub(super) fn network(&self, namespace: &str, name: &str) -> Option<&NetworkPlan> {
        self.networks.get(namespace)?.get(name)
    }
}

/// One `EgressNetwork`'s routes, for each destination port: those of the
/// ports its routes name, and those of every other port (the routes
/// attached without a port), each looked up as a service's routes are
/// (their hostnames, then their matches, in precedence order).
#[derive(Debug)]
pub(super) struct NetworkPlan {
    /// Shared by the network's routes, and kept across reloads.
    pub(super) budget: Arc<Budget>,
    ports: HashMap<u16, EgressRoutes>,
    other: EgressRoutes,
}

/// The routes of one destination port of a network. No route matching a
/// request leaves it to the network's default route.
pub(super) type EgressRoutes = ServiceRoutes<Arc<EgressRulePlan>>;

impl NetworkPlan {
    /// The routes of traffic to destination port `port`.
    pub(super) fn port(&self, port: u16) -> &EgressRoutes {
        self.ports.get(&port).unwrap_or(&self.other)
    }
}

/// One rule of an `EgressNetwork`'s route, ready to be layered over the
/// destination a request is for. Its parent's labels (the network and
/// the destination port) and its `hostname` are a request's, so the
/// stacks are built as requests come ([`egress`](super::egress)).
#[derive(Debug)]
pub(super) struct EgressRulePlan {
    /// Which rule of its network and port, for a runtime to keep its
    /// stacks apart.
    pub(super) index: usize,
    pub(super) id: RouteId,
    /// The route's labels: the `HTTPRoute` or `GRPCRoute`.
    pub(super) route: RouteRef,
    /// Its retries and timeouts; its matches are the router's.
    pub(super) policy: RouteRetryPolicy,
    pub(super) timeouts: RouteTimeouts,
    pub(super) edits: EditHeadersLayer,
    /// Where its requests go, by weight: the original destination when
    /// the rule names none.
    pub(super) backends: Vec<(PlannedBackend, u32)>,
}

impl EgressRulePlan {
    /// Whether the rule's backends are some, all of weight 0.
    pub(super) fn has_no_weight(&self) -> bool {
        has_no_weight(&self.backends)
    }
}

/// One service's routes, tried in order, and the route of requests none
/// of them matches, if it has one.
///
/// A service whose ServiceProfile has routes or `dstOverrides` is served
/// by the profile alone, as Linkerd's proxy serves it: its routes as
/// written, then the profile's default route; every `HTTPRoute` and
/// `GRPCRoute` of the service is set aside, with a warning naming each
/// ([`ServiceRetryPolicy::set_aside_for_profile`]). A profile with
/// neither (a `retryBudget` alone) leaves the service to its rules.
///
/// The order of those rules is that of the service's matches
/// ([`ServiceRetryPolicy::match_order`]): the `GRPCRoute` precedence among
/// its `GRPCRoute` rules' matches (a match naming the call's service, then
/// its method, then more header matches), or, for a service without
/// `GRPCRoute`s, the Gateway API's HTTP precedence among its `HTTPRoute`
/// rules' matches. The two
/// kinds are never ranked together: a service with both is served its
/// `GRPCRoute`s alone, as Linkerd serves it, and the reader warns about
/// each `HTTPRoute` set aside. A rule whose matches are not next to each
/// other in that order is planned once for each run of them, each plan
/// with those matches and a clone of the rule's layers, so that the
/// router can keep trying routes in turn.
#[derive(Debug)]
pub(super) struct ServicePlan {
    pub(super) name: ServiceName,
    /// The service, as the parent or a backend of a route.
    pub(super) service: ServiceRef,
    pub(super) dst: DstService,
    /// Shared by the service's routes, and kept across reloads while its
    /// configuration stays the same, so that a reload does not refill it.
    budget: Arc<Budget>,
    pub(super) routes: Vec<RoutePlan>,
    /// The route of requests none of `routes` matches: the service's own
    /// `retry` and `timeouts`, as Linkerd's default route. `None` for a
    /// service whose routes are all `HTTPRoute` or `GRPCRoute` rules
    /// ([`Unmatched::NotFound`]): such a request gets the mesh's 404
    /// (gRPC `NOT_FOUND`), as Linkerd's proxy answers it and the Gateway
    /// API requires; a route on a Service replaces its implicit routing
    /// (GEP-1294). A service served by its ServiceProfile (one with
    /// routes or `dstOverrides`), or without routes, keeps it, as a
    /// Linkerd profile's default route takes what its routes leave; the
    /// `dstOverrides` split the requests it takes.
    pub(super) fallback: Option<RoutePlan>,
}

/// One route, ready to be layered over a runtime's endpoints.
#[derive(Clone, Debug)]
pub(super) struct RoutePlan {
    pub(super) id: RouteId,
    /// The labels of the route's families: its service and itself.
    pub(super) labels: RouteLabels,
    /// The labels of its ServiceProfile route families, for a
    /// ServiceProfile route and the default route of a service with
    /// ServiceProfile routes; `None` for any other
    /// ([`profile`](super::profile)).
    pub(super) profile: Option<ProfileLabels>,
    /// The `hostnames` of the `HTTPRoute` or `GRPCRoute` the route is a
    /// rule of ([`ServiceRetryPolicy::hosts`]); any host for a
    /// ServiceProfile route or the fallback. The router ranks them before
    /// the match order.
    pub(super) hosts: RouteHosts,
    pub(super) matches: Box<[RouteMatch]>,
    pub(super) layer: RouteStackLayer,
    /// The timeouts `layer` holds the route's requests and attempts to,
    /// which its families tell apart ([`RouteTimeouts`]).
    pub(super) timeouts: RouteTimeouts,
    /// The route's filters, outside its retries: every attempt carries
    /// the edited request; a route with a `RequestRedirect` answers with
    /// it there, and its requests go no further.
    pub(super) edits: EditHeadersLayer,
    /// The services its requests go to and their weights: the service's
    /// ServiceProfile `dstOverrides` when it has any, for every profile
    /// route and the fallback, else the rule's `backendRefs`; empty for
    /// the service
    /// the route belongs to; all of weight 0 for a route the mesh answers
    /// itself.
    pub(super) backends: Vec<(PlannedBackend, u32)>,
}

/// A backend of a route, as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PlannedBackend {
    /// An outbound service: its index into `outbound.services`.
    Service(usize),
    /// A service the route names that is not an outbound service: the
    /// requests drawn to it are answered 500 (see [`super::split`]).
    Missing(Missing),
    /// The address an `EgressNetwork` captured the request for: a
    /// network's route's `backendRefs` entry of kind `EgressNetwork`, or
    /// its rule without any.
    OriginalDestination,
}

impl Planner {
    pub(super) fn new(
        config: &OutboundConfig,
        namespace: &str,
        metrics: &RetryMetrics,
        families: &BackendMetrics,
    ) -> Self {
        Self {
            config: config.clone(),
            namespace: namespace.to_owned(),
            metrics: metrics.clone(),
            families: families.clone(),
        }
    }

    /// Plans every service's routes from `resources`, as a client in the
    /// workload's namespace is served them: producer routes (in their
    /// Service's namespace) and the consumer routes of the workload's
    /// namespace, not those of others. Budgets whose
    /// configuration `previous` already had are kept. What the resources
    /// hold but do not apply (an `HTTPRoute` set aside for a service's
    /// `GRPCRoute`s, a route set aside for a ServiceProfile that serves
    /// its service alone, an unsupported filter) is logged, each time, as
    /// `sidecar check` shows it; so is each backend that is not an
    /// outbound service, whose share of the requests is answered 500, and
    /// each resource for a service that is not one, which goes unused.
    pub(super) fn plan(
        &self,
        resources: &RetryResources,
        previous: Option<&RoutePlans>,
    ) -> RoutePlans {
        // The routes this workload is a client of: the producer routes,
        // and the consumer routes of its own namespace, as Linkerd serves
        // a client's namespace; selected before a GRPCRoute sets an
        // HTTPRoute aside and before the matches are ranked.
        let resources = &resources.for_namespace(&self.namespace);
        let mut merged_aside = Vec::new();
        let policies: Vec<_> = self
            .config
            .services
            .iter()
            .map(|service| {
                retry_policy_of(resources, &service.name, &self.namespace, &mut merged_aside)
            })
            .collect();
        let mut missing = Vec::new();
        let backends: Vec<PlannedBackends> = policies
            .iter()
            .enumerate()
            .map(|(index, policy)| match policy.as_deref() {
                Some(policy) => {
                    PlannedBackends::new(policy, index, &self.config, &self.namespace, &mut missing)
                }
                None => PlannedBackends::default(),
            })
            .collect();
        let mut services = Vec::with_capacity(self.config.services.len());
        for (((index, service), backends), policy) in self
            .config
            .services
            .iter()
            .enumerate()
            .zip(backends)
            .zip(&policies)
        {
            let PlannedBackends {
                routes: backends,
                split,
            } = backends;
            let from_resources = policy.as_deref();
            let budget = service
                .budget
                .or(from_resources.map(|r| r.budget))
                .unwrap_or_default();
            let budget = previous
                .and_then(|p| p.services.get(index))
                .map(|p| p.budget.clone())
                .filter(|kept| *kept.config() == budget)
                .unwrap_or_else(|| Arc::new(Budget::new(budget)));
            let name = service.name.as_str();
            let parent = ServiceRef::new(name, &self.namespace);
            let plan = |policy: &RouteRetryPolicy,
                        route: RouteRef,
                        profile: Option<ProfileLabels>,
                        hosts: RouteHosts,
                        backends: Vec<(PlannedBackend, u32)>,
                        redirect: Option<&Redirect>,
                        classes: Option<&Classify>| {
                let labels = RouteLabels::new(parent.clone(), route);
                let metrics = self
                    .metrics
                    .route(name, &policy.name)
                    .with_observer(self.families.retries(&labels, profile.as_ref()));
                // The mesh answers a route whose backends all have weight 0
                // itself, the same each time: retrying would only spend
                // the budget and wait out the backoff.
                let layer = if has_no_weight(&backends) {
                    RouteRetryPolicy {
                        retry: RetryPolicy::never(),
                        ..policy.clone()
                    }
                    .layer(budget.clone())
                } else {
                    policy.layer(budget.clone())
                }
                .with_metrics(metrics);
                // A ServiceProfile route's `responseClasses` classify its
                // responses in the metrics too, as in Linkerd: they go
                // with the route's id, which the metrics read anyway.
                let id = RouteId::new(policy.name.clone());
                RoutePlan {
                    id: match classes {
                        Some(classes) => id.with_classify(classes.clone()),
                        None => id,
                    },
                    labels,
                    profile,
                    hosts,
                    matches: policy.matches.clone().into(),
                    layer,
                    timeouts: RouteTimeouts::new(&policy.timeouts),
                    edits: EditHeadersLayer::new(
                        policy.request_headers.clone(),
                        policy.response_headers.clone(),
                    )
                    .with_redirect(redirect.cloned()),
                    backends,
                }
            };
            let redirect = |index| from_resources.and_then(|r| r.redirect(index));
            let rules: Vec<RoutePlan> = from_resources
                .map(|r| &r.routes[..])
                .unwrap_or_default()
                .iter()
                .zip(backends)
                .enumerate()
                .map(|(index, (policy, backends))| {
                    let hosts = from_resources.map(|r| r.hosts(index)).unwrap_or_default();
                    let route = from_resources.map_or_else(
                        || profile_route(&parent, &policy.name),
                        |r| route_ref(r, index, &parent, &policy.name),
                    );
                    let profile = from_resources
                        .is_some_and(|r| r.rule_route(index).is_none())
                        .then(|| ProfileLabels::new(name, Some(&policy.name)));
                    let classes = from_resources.and_then(|r| r.response_classes(index));
                    plan(
                        policy,
                        route,
                        profile,
                        hosts,
                        backends,
                        redirect(index),
                        classes,
                    )
                })
                .collect();
            // Linkerd's profile stack, and its families, serve a service
            // whose ServiceProfile has routes or dstOverrides, its default
            // route included (`has_routes_or_targets` in linkerd2-proxy).
            let has_profile_routes =
                from_resources.is_some_and(ServiceRetryPolicy::served_by_profile);
            let order = from_resources
                .map(ServiceRetryPolicy::match_order)
                .unwrap_or_default();
            let routes = in_match_order(&rules, &order);
            if !routes.is_empty() {
                tracing::info!(
                    service = name,
                    routes = ?routes.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                    "outbound routes"
                );
            }
            // A service served by its profile has no rules left: its
            // default route takes the requests its routes leave, split by
            // its dstOverrides when it has any.
            let fallback = match from_resources.map(ServiceRetryPolicy::unmatched) {
                Some(Unmatched::NotFound) => None,
                Some(_) | None => Some(plan(
                    &fallback(service),
                    RouteRef::default_named(FALLBACK_ROUTE),
                    has_profile_routes.then(|| ProfileLabels::new(name, None)),
                    RouteHosts::default(),
                    split,
                    None,
                    None,
                )),
            };
            services.push(ServicePlan {
                name: service.name.clone(),
                service: parent,
                dst: DstService(Arc::from(name)),
                budget,
                routes,
                fallback,
            });
        }
        for warning in resources.warnings.iter().chain(&merged_aside) {
            tracing::warn!(%warning, "outbound routes: read but not applied");
        }
        for warning in &missing {
            tracing::warn!(%warning, "outbound routes: backend not an outbound service");
        }
        for warning in unused_services(&self.config, resources, &self.namespace) {
            tracing::warn!(%warning, "outbound routes: service not in outbound.services");
        }
        for warning in l4_missing_backends(&self.config, resources, &self.namespace) {
            tracing::warn!(%warning, "connection routes: backend not an outbound service");
        }
        let mut unapplied = Vec::new();
        let egress = plan_egress(
            &self.config,
            &self.namespace,
            resources,
            previous.map(|p| &p.egress),
            &mut unapplied,
        );
        for warning in &unapplied {
            tracing::warn!(%warning, "egress routes: read but not applied");
        }
        RoutePlans { services, egress }
    }
}

/// Plans the routes of each `EgressNetwork` of `resources` (selected for
/// the workload's `namespace`), each destination port's with
/// [`ServiceRetryPolicy::for_port`]. A network written without a
/// namespace is the workload's, as mesh-policy reads an `EgressNetwork`
/// without one; both spellings are merged. Budgets are kept from
/// `previous`. What is read but not applied that `resources.warnings`
/// does not already say (an `HTTPRoute` set aside on one port by a
/// `GRPCRoute` of that port, a backend that is not an outbound service)
/// is pushed onto `warnings`, once each, as the planner logs it and
/// `sidecar check` shows it.
fn plan_egress(
    config: &OutboundConfig,
    namespace: &str,
    resources: &RetryResources,
    previous: Option<&EgressPlans>,
    warnings: &mut Vec<String>,
) -> EgressPlans {
    let mut merged: Vec<(String, Cow<'_, ServiceRetryPolicy>)> = Vec::new();
    let mut aside = Vec::new();
    for network in &resources.egress_networks {
        let in_namespace = network.namespace.as_deref().unwrap_or(namespace);
        match merged
            .iter_mut()
            .find(|(ns, known)| ns == in_namespace && known.name == network.name)
        {
            Some((_, known)) => push_new(&mut aside, known.to_mut().merge(network.clone())),
            None => merged.push((in_namespace.to_owned(), Cow::Borrowed(network))),
        }
    }
    let mut missing = Vec::new();
    let mut networks: HashMap<Box<str>, HashMap<Box<str>, NetworkPlan>> = HashMap::new();
    for (in_namespace, network) in merged {
        let budget = previous
            .and_then(|p| p.network(&in_namespace, &network.name))
            .map(|p| p.budget.clone())
            .filter(|kept| *kept.config() == network.budget)
            .unwrap_or_else(|| Arc::new(Budget::new(network.budget)));
        let dst = DstService(Arc::from(format!(
            "EgressNetwork/{in_namespace}/{}",
            network.name
        )));
        let ports = network.ports();
        let mut port_routes = |port: u16| {
            let (selected, set_aside) = network.for_port(port);
            push_new(&mut aside, set_aside);
            let routes = egress_routes(config, namespace, &selected, &in_namespace, &mut missing);
            ServiceRoutes::new(dst.clone(), routes.into(), None)
        };
        let planned: HashMap<u16, EgressRoutes> = ports
            .iter()
            .map(|&port| (port, port_routes(port)))
            .collect();
        // Any port none of the routes names: it takes the routes attached
        // without a port.
        let free = (0..=u16::MAX).find(|p| !ports.contains(p)).unwrap_or(0);
        let other = port_routes(free);
        networks
            .entry(in_namespace.into_boxed_str())
            .or_default()
            .insert(
                network.name.clone().into_boxed_str(),
                NetworkPlan {
                    budget,
                    ports: planned,
                    other,
                },
            );
    }
    let new = aside
        .iter()
        .filter(|w| !resources.warnings.contains(w))
        .map(ToString::to_string)
        .chain(missing);
    for warning in new {
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    EgressPlans { networks }
}

/// The routes of `policy`, a network of `network_namespace` selected for
/// one port, in the order a router tries them; a warning for each backend
/// that is not an outbound service is pushed onto `missing`.
fn egress_routes(
    config: &OutboundConfig,
    namespace: &str,
    policy: &ServiceRetryPolicy,
    network_namespace: &str,
    missing: &mut Vec<String>,
) -> Vec<Route<Arc<EgressRulePlan>>> {
    let parent = ServiceRef::egress_network(network_namespace, &policy.name, 0);
    let rules: Vec<Route<Arc<EgressRulePlan>>> = policy
        .routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let field = |backend| match policy.rule_source(index) {
                Some(rule) => format!("{rule}.backendRefs[{backend}]"),
                None => format!("EgressNetwork {network_namespace}/{}", policy.name),
            };
            let mut backends = route_backends(route, field, config, namespace, missing);
            if backends.is_empty() {
                backends.push((PlannedBackend::OriginalDestination, 1));
            }
            let edits = EditHeadersLayer::new(
                route.request_headers.clone(),
                route.response_headers.clone(),
            )
            .with_redirect(policy.redirect(index).cloned());
            let plan = EgressRulePlan {
                index,
                id: RouteId::new(route.name.clone()),
                route: route_ref(policy, index, &parent, &route.name),
                policy: route.clone(),
                timeouts: RouteTimeouts::new(&route.timeouts),
                edits,
                backends,
            };
            Route {
                id: plan.id.clone(),
                hosts: policy.hosts(index),
                matches: route.matches.clone().into(),
                service: Arc::new(plan),
            }
        })
        .collect();
    in_match_order_by(
        &rules,
        &policy.match_order(),
        |route| &route.matches,
        |route, matches| Route {
            id: route.id.clone(),
            hosts: route.hosts.clone(),
            matches,
            service: route.service.clone(),
        },
    )
}

/// Whether `backends` (of a route) are some, all of weight 0: the route's
/// requests go nowhere, neither to a backend nor to the service itself,
/// and the mesh answers them.
fn has_no_weight(backends: &[(PlannedBackend, u32)]) -> bool {
    !backends.is_empty() && backends.iter().all(|&(_, weight)| weight == 0)
}

impl RoutePlan {
    /// Whether the route's backends are some, all of weight 0.
    pub(super) fn has_no_weight(&self) -> bool {
        has_no_weight(&self.backends)
    }
}

/// The plans of `rules` as a router tries them: one for each run of
/// consecutive entries of `order` (matches of the rules) from the same
/// rule, with those matches. A rule whose matches all run together keeps
/// one plan; one whose matches are apart gets a plan for each run.
fn in_match_order(rules: &[RoutePlan], order: &[MatchRef]) -> Vec<RoutePlan> {
    in_match_order_by(
        rules,
        order,
        |rule| &rule.matches,
        |rule, matches| RoutePlan {
            matches,
            ..rule.clone()
        },
    )
}

/// [`in_match_order`] of any kind of rule: `matches` gives a rule's
/// matches, and `with` a copy of a rule with other matches.
fn in_match_order_by<T>(
    rules: &[T],
    order: &[MatchRef],
    matches: impl Fn(&T) -> &[RouteMatch],
    with: impl Fn(&T, Box<[RouteMatch]>) -> T,
) -> Vec<T> {
    let mut plans: Vec<(usize, Vec<RouteMatch>)> = Vec::new();
    for at in order {
        let Some(rule) = rules.get(at.route) else {
            continue;
        };
        let Some(matcher) = matches(rule).get(at.index) else {
            continue;
        };
        match plans.last_mut() {
            Some((route, run)) if *route == at.route => run.push(matcher.clone()),
            _ => plans.push((at.route, vec![matcher.clone()])),
        }
    }
    plans
        .into_iter()
        .filter_map(|(route, run)| Some(with(rules.get(route)?, run.into())))
        .collect()
}

/// The route of a service's requests that no configured route matches:
/// the service's own `retry` and `timeouts`.
fn fallback(service: &ServiceConfig) -> RouteRetryPolicy {
    RouteRetryPolicy {
        name: FALLBACK_ROUTE.into(),
        matches: Vec::new(),
        retry: service.retry.clone().unwrap_or_else(RetryPolicy::never),
        timeouts: service.timeouts,
        backends: Vec::new(),
        request_headers: Default::default(),
        response_headers: Default::default(),
    }
}

/// What planning `config`'s services with the routes `resources` give
/// them warns of, for `sidecar check`, in the words the sidecar logs.
///
/// The backends of those routes that are not outbound services, one
/// warning each: the
/// sidecar starts with them, and answers the requests drawn to them 500.
/// Each is named where it is written: the route's file, document and
/// `backendRefs` entry, or the ServiceProfile's `dstOverrides` entry,
/// where the mistake (or the service missing from `outbound.services`)
/// is to be found. A route set aside (below) is not served, and its
/// backends are not named.
///
/// After them, one warning for each resource that names a service that
/// is not in `outbound.services` ([`unused_services`]), which the
/// sidecar does not use.
///
/// Before them all, one warning for each route set aside as the
/// planner merges the routes of one service written with and without
/// its namespace ([`retry_policy_of`]), which the reader keeps apart, so
/// that its own warnings do not name them: each `HTTPRoute` whose
/// service a `GRPCRoute` of the other spelling takes, and each
/// `HTTPRoute` and `GRPCRoute` of a service its ServiceProfile serves
/// alone (one with routes or `dstOverrides`, of either spelling). The
/// planner logs each of these with the same text.
///
/// Last, those of the routes attached to `EgressNetwork`s ([`plan_egress`]):
/// each `HTTPRoute` set aside on one port only, and each backend that is
/// not an outbound service.
pub(crate) fn planning_warnings(
    config: &OutboundConfig,
    resources: &RetryResources,
    namespace: &str,
) -> Vec<String> {
    let resources = &resources.for_namespace(namespace);
    let mut merged_aside = Vec::new();
    let mut missing = Vec::new();
    for (index, service) in config.services.iter().enumerate() {
        if let Some(policy) =
            retry_policy_of(resources, &service.name, namespace, &mut merged_aside)
        {
            PlannedBackends::new(&policy, index, config, namespace, &mut missing);
        }
    }
    let mut egress = Vec::new();
    plan_egress(config, namespace, resources, None, &mut egress);
    merged_aside
        .iter()
        .map(ToString::to_string)
        .chain(missing)
        .chain(l4_missing_backends(config, resources, namespace))
        .chain(unused_services(config, resources, namespace))
        .chain(egress)
        .collect()
}

/// The `TLSRoute`s and `TCPRoute`s of each service of `names` (those of
/// `outbound.services`, in order), as a client in `namespace` is served
/// them, merged over every spelling of the service's name as its HTTP
/// routes are ([`retry_policy_of`]); `None` for a service without any.
pub(super) fn service_l4_policies(
    names: &[ServiceName],
    resources: &RetryResources,
    namespace: &str,
) -> Vec<Option<ServiceRetryPolicy>> {
    let resources = resources.for_namespace(namespace);
    let mut aside = Vec::new();
    names
        .iter()
        .map(|name| {
            retry_policy_of(&resources, name, namespace, &mut aside)
                .filter(|policy| policy.has_l4_routes())
                .map(Cow::into_owned)
        })
        .collect()
}

/// One warning for each backend of a `TLSRoute` or `TCPRoute` (of an
/// outbound service, or of an `EgressNetwork`) that is no outbound
/// service, named where it is written, as [`route_backends`] warns of an
/// HTTP route's: the connections drawn to it are closed
/// (`error="invalid_backend"`). `resources` are those a client in
/// `namespace` is served.
fn l4_missing_backends(
    config: &OutboundConfig,
    resources: &RetryResources,
    namespace: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let parents = resources.services.iter().chain(&resources.egress_networks);
    for route in parents.flat_map(|p| p.tls_routes().iter().chain(p.tcp_routes())) {
        for (j, backend) in route.backends.iter().enumerate() {
            if backend.kind != BackendKind::Service {
                continue;
            }
            let Err(name) = planned_backend(
                &backend.name,
                backend.namespace.as_deref(),
                config,
                namespace,
            ) else {
                continue;
            };
            let warning = format!(
                "{}: {} {} sends connections to service {name}, which is not in \
                 outbound.services; the connections drawn to it are closed",
                route.place_of(&format!("spec.rules[0].backendRefs[{j}]")),
                route.kind.kind(),
                route.name
            );
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
    }
    warnings
}

/// One warning for each route attached to an `EgressNetwork` that serves
/// none of this workload's requests because the network is not one of
/// `networks`, those of the compiled policy that apply to the workload: a
/// route of `resources` that a client in the workload's `namespace` is
/// served ([`RetryResources::for_namespace`]), named at its `parentRefs`
/// entry ([`ServiceRetryPolicy::places`]), as the other planning warnings
/// name theirs. Such a route is read and planned, but no request of the
/// workload ever reaches it: its egress is captured by the networks that
/// apply to it alone, and what the route was meant to take gets the
/// default route of one of those, or the 404. Linkerd's policy
/// controller marks a route whose network does not exist in the route's
/// status (`Accepted: False`, reason `NoMatchingParent`), where `kubectl
/// get httproute -o yaml` shows it; the sidecar has no status to write,
/// so it warns at start, on each reload, and in `sidecar check`.
///
/// The warning says why the network does not apply, since the fix differs:
/// no `EgressNetwork` of that namespace and name is written at all (a
/// typo in the `parentRefs` entry, or a network not written yet); one is
/// written in another namespace than the workload's and than
/// `egress_namespace`, the global one (it applies to that namespace's
/// workloads alone); or one is written in the global namespace while the
/// workload's namespace has networks of its own, which hide the global
/// ones, as mesh-policy picks them ([`mesh_policy::egress`]). `written`
/// gives the namespace and name of every `EgressNetwork` of the policy
/// files (a network without a namespace in the workload's); it reads the
/// files again, so it is called only when some route's network does not
/// apply.
pub(crate) fn unserved_egress_routes(
    resources: &RetryResources,
    namespace: &str,
    networks: &EgressNetworks,
    egress_namespace: &str,
    written: impl FnOnce() -> Vec<(String, String)>,
) -> Vec<String> {
    let resources = resources.for_namespace(namespace);
    let unserved: Vec<(&str, &str, Vec<String>)> = resources
        .egress_networks
        .iter()
        .filter_map(|parent| {
            let in_namespace = parent.namespace.as_deref().unwrap_or(namespace);
            let applies = networks
                .iter()
                .any(|n| n.namespace() == in_namespace && n.name() == parent.name);
            let places = parent.places();
            (!applies && !places.is_empty()).then_some((in_namespace, &*parent.name, places))
        })
        .collect();
    if unserved.is_empty() {
        return Vec::new();
    }
    let written = written();
    let mut warnings = Vec::new();
    for (in_namespace, name, places) in unserved {
        let network = format!("EgressNetwork {in_namespace}/{name}");
        let why = if !written
            .iter()
            .any(|(ns, n)| ns == in_namespace && n == name)
        {
            format!(
                "no {network} is in the policy, so this route serves no request (Linkerd marks \
                 its parent not accepted, NoMatchingParent); correct the name or namespace, or \
                 add the network"
            )
        } else if in_namespace == egress_namespace {
            format!(
                "{network} of the global egress namespace does not apply to this workload, as \
                 the workload's namespace {namespace} has EgressNetworks of its own, which take \
                 the place of the global ones; so this route serves no request here"
            )
        } else {
            format!(
                "{network} does not apply to this workload: a workload in {namespace} is \
                 served the EgressNetworks of its own namespace, else those of the global \
                 egress namespace {egress_namespace}; so this route serves no request here"
            )
        };
        warnings.extend(places.into_iter().map(|place| format!("{place}: {why}")));
    }
    warnings
}

/// One warning for each resource that names a service `config` does not
/// list in `outbound.services` (an `HTTPRoute` or `GRPCRoute` attached to
/// it, its ServiceProfile, a `TrafficSplit` of it), at the place the
/// resource names it ([`ServiceRetryPolicy::places`]): the workload does
/// not call the service, so none of it is used. A route written before
/// its service is added is not an error; a misspelt service name in
/// either is, and this is where it shows. `resources` are those selected
/// for the workload's `namespace`. The planner logs each, and `sidecar
/// check` shows each, with the same text.
fn unused_services(
    config: &OutboundConfig,
    resources: &RetryResources,
    namespace: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for unused in resources.services.iter().filter(|s| {
        !config
            .services
            .iter()
            .any(|c| names_service(&c.name, &s.name, s.namespace.as_deref(), namespace))
    }) {
        let service = format!(
            "{}.{}",
            unused.name,
            unused.namespace.as_deref().unwrap_or(namespace)
        );
        let message = format!(
            "service {service} is not in outbound.services, so the sidecar does not use \
             this resource; add the service, or correct the name"
        );
        let places = unused.places();
        if places.is_empty() {
            warnings.push(message);
            continue;
        }
        warnings.extend(
            places
                .into_iter()
                .map(|place| format!("{place}: {message}")),
        );
    }
    warnings
}

/// Where the requests of one service's routes go, as planned.
#[derive(Debug, Default)]
struct PlannedBackends {
    /// Each route's backends, by its index into the service's routes.
    routes: Vec<Vec<(PlannedBackend, u32)>>,
    /// The service's ServiceProfile `dstOverrides`, which every route and
    /// the fallback share; empty when it has none.
    split: Vec<(PlannedBackend, u32)>,
}

impl PlannedBackends {
    /// The backends of the routes of `policy`, the service at `index`
    /// of `outbound.services`: the service's ServiceProfile
    /// `dstOverrides` when it has any, for every route (its profile's
    /// alone by then: [`retry_policy_of`] has set the others aside), as
    /// Linkerd's proxy serves such a service by its profile
    /// ([`ServiceRetryPolicy::dst_overrides`]); else each route's own
    /// `backendRefs`. A warning is pushed onto `missing` for each backend
    /// that is not an outbound service.
    fn new(
        policy: &ServiceRetryPolicy,
        index: usize,
        config: &OutboundConfig,
        namespace: &str,
        missing: &mut Vec<String>,
    ) -> Self {
        let overrides = policy.dst_overrides();
        // Named as the user wrote them: a TrafficSplit's backends are
        // dstOverrides only once linkerd-smi has written them.
        let sends = if policy.dst_overrides_from_traffic_split() {
            "TrafficSplit sends"
        } else {
            "dstOverrides send"
        };
        let split: Vec<_> = overrides
            .iter()
            .map(|o| {
                let planned = planned_backend(&o.name, o.namespace.as_deref(), config, namespace)
                    .unwrap_or_else(|name| {
                        missing.push(format!(
                            "{}: service {}'s {sends} requests to service {name}, which is not in \
                             outbound.services; the requests drawn to it are answered 500 (gRPC \
                             UNAVAILABLE)",
                            o.source, policy.name
                        ));
                        PlannedBackend::Missing(Missing::new(&name))
                    });
                (planned, o.weight.get())
            })
            .collect();
        let routes = policy
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                if split.is_empty() {
                    let field = backend_field(policy, i, index);
                    route_backends(route, field, config, namespace, missing)
                } else {
                    split.clone()
                }
            })
            .collect();
        Self { routes, split }
    }
}

/// Where the backends of route `route` of `policy` are written, by their
/// index, for the warning of one that is not an outbound service: the
/// route's file, document and `backendRefs` entry, or, for a route no
/// document wrote, the outbound service `service` (an index into
/// `outbound.services`) it was planned for. The sidecar's log and
/// `sidecar check` name the same place.
fn backend_field(
    policy: &ServiceRetryPolicy,
    route: usize,
    service: usize,
) -> impl Fn(usize) -> String + '_ {
    move |backend| match policy.rule_source(route) {
        Some(rule) => format!("{rule}.backendRefs[{backend}]"),
        None => format!("outbound.services[{service}]"),
    }
}

/// The backends of `route`, with their weights: empty when the route
/// names none. A backend that is not an outbound service is planned as
/// [`PlannedBackend::Missing`], and a warning for it, naming where it is
/// written (`field` of its index), is pushed onto `missing`.
fn route_backends(
    route: &RouteRetryPolicy,
    field: impl Fn(usize) -> String,
    config: &OutboundConfig,
    namespace: &str,
    missing: &mut Vec<String>,
) -> Vec<(PlannedBackend, u32)> {
    route
        .backends
        .iter()
        .enumerate()
        .map(|(j, backend)| {
            if backend.kind == BackendKind::OriginalDestination {
                return (PlannedBackend::OriginalDestination, backend.weight);
            }
            let found = planned_backend(
                &backend.name,
                backend.namespace.as_deref(),
                config,
                namespace,
            );
            let planned = match found {
                Ok(planned) => planned,
                Err(name) => {
                    missing.push(format!(
                        "{}: route {} sends requests to service {name}, which is not in \
                         outbound.services; the requests drawn to it are answered 500 \
                         (gRPC UNAVAILABLE)",
                        field(j),
                        route.name
                    ));
                    PlannedBackend::Missing(Missing::new(&name))
                }
            };
            (planned, backend.weight)
        })
        .collect()
}

/// The outbound service `name` in `service_namespace` (the workload's
/// `namespace` when `None`), as a backend; or, when it is not one, its
/// name as `name.namespace`.
fn planned_backend(
    name: &str,
    service_namespace: Option<&str>,
    config: &OutboundConfig,
    namespace: &str,
) -> Result<PlannedBackend, String> {
    config
        .services
        .iter()
        .position(|s| names_service(&s.name, name, service_namespace, namespace))
        .map(PlannedBackend::Service)
        .ok_or_else(|| format!("{name}.{}", service_namespace.unwrap_or(namespace)))
}

/// The routes the resources give the outbound service `name`, all of
/// them: the resources keep a route written without a namespace apart
/// from one written in the workload's (the reader does not know which
/// namespace the first is applied to), and a ServiceProfile named
/// `emoji.emojivoto.svc.cluster.local` apart from an `HTTPRoute` of
/// `emoji` written without one; each names the same service here, and is
/// served with the others, as the cluster would serve routes applied in
/// the workload's namespace. Several are merged into one, ranked together
/// ([`ServiceRetryPolicy::merge`]), once per plan; `resources` are those
/// selected for the workload's namespace, where a route written without
/// one ranks as that namespace's. When the `GRPCRoute`s of one set the
/// `HTTPRoute`s of another aside, as the reader does within one, a
/// warning naming each `HTTPRoute` is pushed onto `aside` (once, however
/// many outbound services name the service). So is one naming each
/// `HTTPRoute` and `GRPCRoute` set aside because the service's
/// ServiceProfile has routes or `dstOverrides`, which serves it alone, as
/// Linkerd's proxy serves it ([`ServiceRetryPolicy::set_aside_for_profile`]).
fn retry_policy_of<'r>(
    resources: &'r RetryResources,
    name: &ServiceName,
    namespace: &str,
    aside: &mut Vec<ConfigWarning>,
) -> Option<Cow<'r, ServiceRetryPolicy>> {
    let mut found = resources
        .services
        .iter()
        .filter(|s| names_service(name, &s.name, s.namespace.as_deref(), namespace));
    let first = found.next()?;
    let Some(second) = found.next() else {
        if !first.served_by_profile() {
            return Some(Cow::Borrowed(first));
        }
        let mut policy = first.clone();
        push_new(aside, policy.set_aside_for_profile());
        return Some(Cow::Owned(policy));
    };
    let mut merged = first.clone();
    // Each names the service in one namespace, which a warning about the
    // merge names it by, whichever spelling came first.
    let in_namespace = name.as_str().split('.').nth(1).unwrap_or(namespace);
    merged.namespace = Some(in_namespace.to_owned());
    for other in std::iter::once(second).chain(found) {
        // The merge sets the HTTPRoutes of both aside when either has
        // GRPCRoutes, as the reader does within one of them.
        push_new(aside, merged.merge(other.clone()));
    }
    // Whichever spelling the profile is written in, it takes the routes
    // of every spelling.
    push_new(aside, merged.set_aside_for_profile());
    Some(Cow::Owned(merged))
}

/// Pushes each of `warnings` onto `aside` that is not there yet.
fn push_new(aside: &mut Vec<ConfigWarning>, warnings: Vec<ConfigWarning>) {
    for warning in warnings {
        if !aside.contains(&warning) {
            aside.push(warning);
        }
    }
}

/// The reference of route `index` of `policy`, labelled `name`, a route
/// of `parent`: an `HTTPRoute` or `GRPCRoute` rule, with the API group,
/// kind and namespace of the route it is a rule of (a route written
/// without a namespace is in the one it is applied to: its parent
/// service's), or else a ServiceProfile route ([`profile_route`]).
fn route_ref(
    policy: &ServiceRetryPolicy,
    index: usize,
    parent: &ServiceRef,
    name: &str,
) -> RouteRef {
    match policy.rule_route(index) {
        Some(rule) => RouteRef::resource(
            rule.group,
            rule.kind,
            rule.namespace.unwrap_or(parent.namespace()),
            name,
        ),
        None => profile_route(parent, name),
    }
}

/// A ServiceProfile route of `parent`, named `name`. Linkerd labels no
/// route family with these (its profile routes have families of their
/// own, which the sidecar writes too: [`profile`](super::profile)); the
/// sidecar counts them also as it counts rules, naming the
/// resource they come from: a `linkerd.io` `ServiceProfile` in the
/// service's namespace.
fn profile_route(parent: &ServiceRef, name: &str) -> RouteRef {
    RouteRef::resource("linkerd.io", "ServiceProfile", parent.namespace(), name)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prometheus_client::registry::Registry;

    use super::*;
    use crate::sidecar::config::SidecarConfig;

    /// The outbound section of a sidecar with one service, `emoji`.
    fn outbound() -> OutboundConfig {
        let text = "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: emoji\n      endpoints: [127.0.0.1:1]\n";
        SidecarConfig::from_yaml(text, "sidecar.yaml")
            .unwrap()
            .outbound
    }

    /// The plans of `outbound`'s services for a workload in `namespace`,
    /// from the resources in `text`.
    fn plan_in(outbound: &OutboundConfig, namespace: &str, text: &str) -> RoutePlans {
        let resources = mesh_retry::config::load("routes.yaml", text).unwrap();
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        let families = BackendMetrics::register(&mut registry);
        Planner::new(outbound, namespace, &metrics, &families).plan(&resources, None)
    }

    /// The names of the routes of network `web/all` for traffic to
    /// `port`, in the order a request tries them, with their backends.
    fn egress_routes(plans: &RoutePlans, port: u16) -> Vec<(String, Vec<(PlannedBackend, u32)>)> {
        plans
            .egress
            .network("emojivoto", "all")
            .map(|network| {
                network
                    .port(port)
                    .routes
                    .iter()
                    .map(|r| (r.id.as_str().to_owned(), r.service.backends.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_networks_routes_are_planned_per_port_with_the_original_destination_as_backend() {
        let route = |name: &str, namespace: &str, port: &str, rule: &str| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: HTTPRoute
metadata: {{name: {name}{namespace}}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: EgressNetwork, name: all{port}}}]
  rules:
  - {rule}
"
            )
        };
        let text = [
            route(
                "get",
                ", namespace: emojivoto",
                ", port: 80",
                "matches: [{path: {type: Exact, value: /get}}]",
            ),
            // Without a namespace: the workload's, merged with the other.
            route(
                "any",
                "",
                "",
                "backendRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: all, \
                 weight: 3}, {name: emoji, port: 80, weight: 1}]",
            ),
        ]
        .join("---\n");
        let plans = plan_in(&outbound(), "emojivoto", &text);
        let original = (PlannedBackend::OriginalDestination, 1);
        let split = vec![
            (PlannedBackend::OriginalDestination, 3),
            (PlannedBackend::Service(0), 1),
        ];
        assert_eq!(
            egress_routes(&plans, 80),
            [
                ("get".to_owned(), vec![original]),
                ("any".to_owned(), split.clone())
            ]
        );
        assert_eq!(egress_routes(&plans, 8080), [("any".to_owned(), split)]);
        // The services' plans are untouched, and another namespace's
        // network has no routes here.
        assert!(plans.services[0].routes.is_empty());
        assert!(plans.egress.network("other", "all").is_none());
    }

    #[test]
    fn a_networks_unapplied_routes_are_warned_about_once_each() {
        let parent = "[{group: policy.linkerd.io, kind: EgressNetwork, name: all}]";
        let text = format!(
            "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: HTTPRoute
metadata: {{name: web, namespace: emojivoto}}
spec:
  parentRefs: {parent}
  rules:
  - backendRefs: [{{name: nowhere, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: calls, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: EgressNetwork, name: all, port: 443}}]
  rules:
  - matches: [{{method: {{service: emojivoto.v1.EmojiService}}}}]
"
        );
        let resources = mesh_retry::config::load("routes.yaml", &text).unwrap();
        let warnings = planning_warnings(&outbound(), &resources, "emojivoto");
        // The HTTPRoute is planned for port 443, where the GRPCRoute sets
        // it aside, and for every other port, where its backend is named.
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].contains("(HTTPRoute emojivoto/web)") && warnings[0].contains("set aside"),
            "{warnings:#?}"
        );
        assert!(
            warnings[1].starts_with(
                "routes.yaml: document 1 (HTTPRoute emojivoto/web): spec.rules[0].backendRefs[0]: \
                 route web sends requests to service nowhere.emojivoto, which is not in \
                 outbound.services"
            ),
            "{warnings:#?}"
        );
        let plans = plan_in(&outbound(), "emojivoto", &text);
        let missing = PlannedBackend::Missing(Missing::new("nowhere.emojivoto"));
        assert_eq!(
            egress_routes(&plans, 80),
            [("web".to_owned(), vec![(missing, 1)])]
        );
        assert_eq!(egress_routes(&plans, 443).len(), 1);
        assert_eq!(egress_routes(&plans, 443)[0].0, "calls");
    }

    /// Networks of the workload's namespace, of the global egress
    /// namespace and of another, with a route for each, one for a network
    /// written nowhere, and a consumer route of a third namespace.
    const UNSERVED: &str = "apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: local, namespace: emojivoto}
spec: {trafficPolicy: Allow}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: global, namespace: linkerd-egress}
spec: {trafficPolicy: Allow}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: theirs, namespace: books}
spec: {trafficPolicy: Deny}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-local, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: local}]
  rules: [{}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-typo, namespace: emojivoto}
spec:
  parentRefs:
  - {group: core, kind: Service, name: emoji}
  - {group: policy.linkerd.io, kind: EgressNetwork, name: locl, port: 80}
  rules: [{}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: to-theirs, namespace: books}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: theirs, port: 5432}]
  rules:
  - backendRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: theirs}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: to-global, namespace: emojivoto}
spec:
  parentRefs:
  - {group: policy.linkerd.io, kind: EgressNetwork, name: global, namespace: linkerd-egress}
  rules: [{}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: web}
spec:
  parentRefs:
  - {group: policy.linkerd.io, kind: EgressNetwork, name: theirs, namespace: books}
  rules: [{}]
";

    /// [`unserved_egress_routes`] of `text` for a workload in `namespace`,
    /// with the networks the policy compiled from `text` gives it.
    fn unserved_in(namespace: &str, text: &str) -> Vec<String> {
        let sources = [mesh_policy::PolicySource::new("routes.yaml", text)];
        let compiled = mesh_policy::Policy::compile(
            &sources,
            &mesh_policy::Workload::new(namespace),
            &mesh_policy::PolicyConfig::default(),
            &mesh_policy::PolicyMetrics::default(),
        )
        .unwrap();
        let resources = mesh_retry::config::load("routes.yaml", text).unwrap();
        let written = [
            ("emojivoto", "local"),
            ("linkerd-egress", "global"),
            ("books", "theirs"),
        ];
        unserved_egress_routes(
            &resources,
            namespace,
            compiled.egress_networks(),
            mesh_policy::DEFAULT_EGRESS_NAMESPACE,
            || {
                written
                    .iter()
                    .map(|&(ns, name)| (ns.to_owned(), name.to_owned()))
                    .collect()
            },
        )
    }

    #[test]
    fn a_route_on_a_network_that_does_not_apply_is_warned_about_with_the_reason() {
        let warnings = unserved_in("emojivoto", UNSERVED);
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        // Named at the parentRefs entry of the network, not the Service's.
        assert!(
            warnings[0].starts_with(
                "routes.yaml: document 5 (HTTPRoute emojivoto/to-typo): spec.parentRefs[1]: \
                 no EgressNetwork emojivoto/locl is in the policy"
            ),
            "{warnings:#?}"
        );
        assert!(
            warnings[1].starts_with(
                "routes.yaml: document 6 (TCPRoute books/to-theirs): spec.parentRefs[0]: \
                 EgressNetwork books/theirs does not apply to this workload: a workload in \
                 emojivoto is served the EgressNetworks of its own namespace, else those of \
                 the global egress namespace linkerd-egress"
            ),
            "{warnings:#?}"
        );
        assert!(
            warnings[2].starts_with(
                "routes.yaml: document 7 (GRPCRoute emojivoto/to-global): spec.parentRefs[0]: \
                 EgressNetwork linkerd-egress/global of the global egress namespace does not \
                 apply to this workload, as the workload's namespace emojivoto has \
                 EgressNetworks of its own"
            ),
            "{warnings:#?}"
        );
        // The route on the workload's own network, and the consumer route
        // of `web`, which a client in emojivoto is not served: no warning.
        assert!(
            !warnings
                .iter()
                .any(|w| w.contains("to-local") || w.contains("consumer")),
            "{warnings:#?}"
        );
    }

    #[test]
    fn a_global_network_applies_where_the_namespace_has_none_and_the_files_are_not_read_again() {
        // In `shop`, which has no network of its own, the global one
        // applies; the others are not its own.
        let warnings = unserved_in("shop", UNSERVED);
        assert!(
            !warnings.iter().any(|w| w.contains("to-global")),
            "{warnings:#?}"
        );
        // With every route on a network that applies, the files are not
        // read for the networks written.
        let resources = mesh_retry::config::load(
            "routes.yaml",
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-local, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: local}]
  rules: [{}]
",
        )
        .unwrap();
        let sources = [mesh_policy::PolicySource::new("routes.yaml", UNSERVED)];
        let compiled = mesh_policy::Policy::compile(
            &sources,
            &mesh_policy::Workload::new("emojivoto"),
            &mesh_policy::PolicyConfig::default(),
            &mesh_policy::PolicyMetrics::default(),
        )
        .unwrap();
        let warnings = unserved_egress_routes(
            &resources,
            "emojivoto",
            compiled.egress_networks(),
            mesh_policy::DEFAULT_EGRESS_NAMESPACE,
            || panic!("the networks written were read"),
        );
        assert!(warnings.is_empty(), "{warnings:#?}");
    }

    /// The names of the first service's planned routes, in the order a
    /// request tries them.
    fn route_names(plans: &RoutePlans) -> Vec<String> {
        plans.services[0]
            .routes
            .iter()
            .map(|r| r.id.as_str().to_owned())
            .collect()
    }

    /// The names of `emoji`'s planned routes, in the order a request
    /// tries them, planned from `resources`.
    fn planned(resources: &str) -> Vec<String> {
        route_names(&plan_in(&outbound(), "emojivoto", resources))
    }

    const HTTP: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - name: list-by-path
    matches: [{path: {type: Exact, value: /emojivoto.v1.EmojiService/ListAll}}]
";

    const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji-grpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - name: list-methods
    matches: [{method: {method: ListAll}}]
  - name: emoji-service
    matches: [{method: {service: emojivoto.v1.EmojiService}}]
";

    #[test]
    fn a_service_with_grpc_routes_is_planned_its_grpc_routes_alone_in_their_own_order() {
        assert_eq!(planned(HTTP), ["list-by-path"]);
        // The service's GRPCRoute rules, the one naming the service before
        // the one naming only a method; the HTTPRoute is set aside.
        let both = ["emoji-service", "list-methods"];
        assert_eq!(planned(&format!("{HTTP}---\n{GRPC}")), both);
        assert_eq!(planned(&format!("{GRPC}---\n{HTTP}")), both);
    }

    #[test]
    fn routes_written_with_and_without_the_namespace_are_one_services_routes() {
        // The same HTTPRoute and GRPCRoute without `metadata.namespace`:
        // applied in the workload's namespace, emojivoto.
        let bare = |text: &str| text.replace(", namespace: emojivoto}", "}");
        let http = bare(HTTP);
        assert_ne!(http, HTTP);
        // An HTTPRoute of each spelling: both planned, ranked together.
        let other = HTTP
            .replace("name: web,", "name: web-2,")
            .replace("list-by-path", "prefix")
            .replace("type: Exact", "type: PathPrefix");
        assert_eq!(
            planned(&format!("{http}---\n{other}")),
            ["list-by-path", "prefix"]
        );
        // A GRPCRoute of either spelling sets the other's HTTPRoutes aside.
        let both = ["emoji-service", "list-methods"];
        assert_eq!(planned(&format!("{http}---\n{GRPC}")), both);
        assert_eq!(planned(&format!("{HTTP}---\n{}", bare(GRPC))), both);
    }

    #[test]
    fn consumer_routes_of_other_namespaces_are_not_planned_nor_set_aside_http_routes() {
        // The workload is in emojivoto, the service's namespace: a route
        // in another namespace is for the clients there alone.
        let consumer = |kind: &str, name: &str, matches: &str| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: web}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji, namespace: emojivoto}}]
  rules:
  - name: {name}
    matches: {matches}
"
            )
        };
        let http = consumer(
            "HTTPRoute",
            "web-http",
            "[{path: {type: Exact, value: /x}}]",
        );
        assert_eq!(planned(&format!("{HTTP}---\n{http}")), ["list-by-path"]);
        let grpc = consumer("GRPCRoute", "web-grpc", "[{method: {method: ListAll}}]");
        assert_eq!(planned(&format!("{HTTP}---\n{grpc}")), ["list-by-path"]);
        // A workload in `web` is served them, beside the producer route;
        // and its GRPCRoute sets the HTTPRoutes aside.
        let outbound = SidecarConfig::from_yaml(
            "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: emoji.emojivoto\n      endpoints: [127.0.0.1:1]\n",
            "sidecar.yaml",
        )
        .unwrap()
        .outbound;
        let in_web = |resources: &str| route_names(&plan_in(&outbound, "web", resources));
        assert_eq!(
            in_web(&format!("{HTTP}---\n{http}")),
            ["list-by-path", "web-http"]
        );
        assert_eq!(
            in_web(&format!("{HTTP}---\n{http}---\n{grpc}")),
            ["web-grpc"]
        );
    }

    #[test]
    fn a_service_served_its_gateway_routes_alone_has_no_fallback() {
        let fallback = |resources: &str| {
            plan_in(&outbound(), "emojivoto", resources).services[0]
                .fallback
                .as_ref()
                .map(|f| f.id.as_str().to_owned())
        };
        assert_eq!(fallback(HTTP), None);
        assert_eq!(fallback(GRPC), None);
        assert_eq!(fallback(""), Some("default".to_owned()));
        let profile = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - name: list
    condition: {pathRegex: '/list'}
";
        assert_eq!(
            fallback(&format!("{profile}---\n{GRPC}")),
            Some("default".to_owned())
        );
    }

    #[test]
    fn a_backend_that_is_not_an_outbound_service_keeps_its_weight_with_a_warning() {
        let canary = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - backendRefs: [{name: emoji, weight: 3}, {name: emoji-v3, weight: 1}]
";
        let plans = plan_in(&outbound(), "emojivoto", canary);
        let missing = Missing::new("emoji-v3.emojivoto");
        assert_eq!(
            plans.services[0].routes[0].backends,
            [
                (PlannedBackend::Service(0), 3),
                (PlannedBackend::Missing(missing), 1)
            ]
        );
        assert!(!plans.services[0].routes[0].has_no_weight());
        let resources = mesh_retry::config::load("routes.yaml", canary).unwrap();
        assert_eq!(
            planning_warnings(&outbound(), &resources, "emojivoto"),
            [
                "routes.yaml: document 1 (HTTPRoute emojivoto/canary): spec.rules[0].backendRefs[1]: \
                 route canary sends requests to service emoji-v3.emojivoto, which is not in \
                 outbound.services; the requests drawn to it are answered 500 (gRPC \
                 UNAVAILABLE)"
            ]
        );
        // For a workload in another namespace, whose `emoji` is another
        // service, the route is not used: its backends go unnamed, and
        // the route is named as one of a service it does not call.
        assert_eq!(
            planning_warnings(&outbound(), &resources, "other"),
            [
                "routes.yaml: document 1 (HTTPRoute emojivoto/canary): spec.parentRefs[0]: \
                 service emoji.emojivoto is not in outbound.services, so the sidecar does not \
                 use this resource; add the service, or correct the name"
            ]
        );
    }

    #[test]
    fn a_profiles_dst_overrides_split_every_request_and_set_the_http_routes_aside() {
        let canary = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: emoji, weight: 3}, {name: emoji-v3, weight: 1}]
  - matches: [{path: {type: PathPrefix, value: /b}}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  dstOverrides:
  - {authority: emoji.emojivoto.svc.cluster.local:8080, weight: 900m}
  - {authority: emoji-v2.emojivoto.svc.cluster.local:8080, weight: 100m}
  - {authority: emoji-v4, weight: 0}
";
        let plans = plan_in(&outbound(), "emojivoto", canary);
        let missing = Missing::new("emoji-v2.emojivoto");
        let split = [
            (PlannedBackend::Service(0), 9_000),
            (PlannedBackend::Missing(missing), 1_000),
        ];
        // The profile serves the service alone: the HTTPRoute's rules are
        // set aside, and its default route takes every request, split.
        let service = &plans.services[0];
        assert!(service.routes.is_empty());
        let fallback = service.fallback.as_ref().unwrap();
        assert_eq!(fallback.backends, split);
        assert!(fallback.profile.is_some());
        // The rules' routes would have had no fallback: requests none of
        // them matches get the 404 without the profile.
        let without = canary.split("---").next().unwrap();
        assert!(
            plan_in(&outbound(), "emojivoto", without).services[0]
                .fallback
                .is_none()
        );
        // The set-aside route's backend emoji-v3, not an outbound
        // service, is not named: nothing is drawn to it.
        let resources = mesh_retry::config::load("routes.yaml", canary).unwrap();
        assert_eq!(
            planning_warnings(&outbound(), &resources, "emojivoto"),
            [
                "routes.yaml: document 1 (HTTPRoute emojivoto/canary): spec.parentRefs[0]: set \
                 aside for routes.yaml: document 2 (ServiceProfile \
                 emojivoto/emoji.emojivoto.svc.cluster.local), which serves service \
                 emojivoto/emoji alone: Linkerd's proxy serves a service whose ServiceProfile \
                 has routes or dstOverrides by the profile, and none of this route's rules, \
                 timeouts, retries or filters apply",
                "routes.yaml: document 2 (ServiceProfile emojivoto/emoji.emojivoto.svc.cluster.local): \
                 spec.dstOverrides[1]: service emoji's dstOverrides send requests to service \
                 emoji-v2.emojivoto, which is not in outbound.services; the requests drawn to \
                 it are answered 500 (gRPC UNAVAILABLE)",
            ]
        );
    }

    const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - name: list
    condition: {pathRegex: '/list'}
";

    #[test]
    fn a_profile_with_routes_serves_its_service_alone_whichever_spelling_names_it() {
        // The profile's route, then its default route; the HTTPRoute and
        // the GRPCRoute are set aside, each with a warning.
        let fallback = |text: &str| {
            plan_in(&outbound(), "emojivoto", text).services[0]
                .fallback
                .as_ref()
                .map(|f| f.id.as_str().to_owned())
        };
        for routes in [
            HTTP.to_owned(),
            GRPC.to_owned(),
            format!("{HTTP}---\n{GRPC}"),
        ] {
            let text = format!("{routes}---\n{PROFILE}");
            assert_eq!(planned(&text), ["list"], "{routes}");
            assert_eq!(fallback(&text), Some("default".to_owned()));
        }
        let warnings = |text: &str| {
            let resources = mesh_retry::config::load("routes.yaml", text).unwrap();
            planning_warnings(&outbound(), &resources, "emojivoto")
        };
        let aside = |document: usize, kind: &str, name: &str, profile: usize| {
            format!(
                "routes.yaml: document {document} ({kind} {name}): spec.parentRefs[0]: set aside \
                 for routes.yaml: document {profile} (ServiceProfile \
                 emojivoto/emoji.emojivoto.svc.cluster.local), which serves service \
                 emojivoto/emoji alone: Linkerd's proxy serves a service whose ServiceProfile \
                 has routes or dstOverrides by the profile, and none of this route's rules, \
                 timeouts, retries or filters apply"
            )
        };
        assert_eq!(
            warnings(&format!("{HTTP}---\n{PROFILE}")),
            [aside(1, "HTTPRoute", "emojivoto/web", 2)]
        );
        assert_eq!(
            warnings(&format!("{GRPC}---\n{PROFILE}")),
            [aside(1, "GRPCRoute", "emojivoto/emoji-grpc", 2)]
        );
        // An HTTPRoute written without a namespace is another spelling of
        // the service, which the planner merges: set aside all the same.
        let bare = HTTP.replace(", namespace: emojivoto}", "}");
        let text = format!("{bare}---\n{PROFILE}");
        assert_eq!(planned(&text), ["list"]);
        assert_eq!(warnings(&text), [aside(1, "HTTPRoute", "web", 2)]);
    }

    #[test]
    fn a_traffic_split_of_either_spelling_splits_the_profiles_routes_and_sets_the_rules_aside() {
        // A TrafficSplit written without a namespace, applied in the
        // workload's: the apex is the profile's service all the same.
        let split = "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: emoji-split}
spec:
  service: emoji
  backends: [{service: emoji, weight: 3}, {service: emoji-v2, weight: 1}]
";
        let text = format!("{HTTP}---\n{PROFILE}---\n{split}");
        let plans = plan_in(&outbound(), "emojivoto", &text);
        let service = &plans.services[0];
        assert_eq!(route_names(&plans), ["list"]);
        let missing = Missing::new("emoji-v2.emojivoto");
        let shares = [
            (PlannedBackend::Service(0), 30_000),
            (PlannedBackend::Missing(missing), 10_000),
        ];
        for route in service.routes.iter().chain(&service.fallback) {
            assert_eq!(route.backends, shares, "{}", route.id.as_str());
        }
        // Without the profile, the split's default route serves it, and
        // names the split in the warning.
        let text = format!("{HTTP}---\n{split}");
        let plans = plan_in(&outbound(), "emojivoto", &text);
        assert!(route_names(&plans).is_empty());
        let fallback = plans.services[0].fallback.as_ref().unwrap();
        assert_eq!(fallback.backends, shares);
        let resources = mesh_retry::config::load("routes.yaml", &text).unwrap();
        let warnings = planning_warnings(&outbound(), &resources, "emojivoto");
        assert!(
            warnings[0].starts_with(
                "routes.yaml: document 1 (HTTPRoute emojivoto/web): spec.parentRefs[0]: set \
                 aside for routes.yaml: document 2 (TrafficSplit emoji-split), which serves \
                 service emojivoto/emoji alone"
            ),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with(
                "routes.yaml: document 2 (TrafficSplit emoji-split): spec.backends[1]: service \
                 emoji's TrafficSplit sends requests to service emoji-v2.emojivoto, which is \
                 not in outbound.services"
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_profile_without_routes_or_dst_overrides_leaves_the_routes_in_charge() {
        let budget = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 10s}
";
        let text = format!("{HTTP}---\n{budget}");
        assert_eq!(planned(&text), ["list-by-path"]);
        let plans = plan_in(&outbound(), "emojivoto", &text);
        assert!(plans.services[0].fallback.is_none());
        assert!(plans.services[0].routes[0].profile.is_none());
        let resources = mesh_retry::config::load("routes.yaml", &text).unwrap();
        assert!(planning_warnings(&outbound(), &resources, "emojivoto").is_empty());
        // Its dstOverrides of weight 0 are none either.
        let zero = budget.replace(
            "retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 10s}",
            "dstOverrides: [{authority: emoji-v2, weight: 0}]",
        );
        assert_eq!(planned(&format!("{HTTP}---\n{zero}")), ["list-by-path"]);
    }

    /// What is logged on this thread while `f` runs.
    fn logged_while(f: impl FnOnce()) -> String {
        let lines = crate::sidecar::log::captured::Lines::default();
        // While one dispatcher is registered, tracing asks the calling
        // thread's default whether a callsite is of interest: another test
        // planning at the same time, with none, would turn the log's
        // callsites off for this one. A second keeps it asking each, and
        // the interest is worked out again for callsites already reached.
        let _second = tracing::Dispatch::new(tracing_subscriber::registry());
        let _default = lines.capture();
        tracing::callsite::rebuild_interest_cache();
        f();
        lines.text()
    }

    #[test]
    fn a_set_aside_http_route_is_logged_by_name_when_planned() {
        let logged = logged_while(|| {
            planned(&format!("{HTTP}---\n{GRPC}"));
        });
        let line = logged
            .lines()
            .find(|l| l.contains("set aside"))
            .unwrap_or_else(|| panic!("no warning in {logged}"));
        assert!(
            line.contains("WARN")
                && line.contains("(HTTPRoute emojivoto/web): spec.parentRefs[0]")
                && line.contains("emojivoto/emoji-grpc"),
            "{line}"
        );
    }

    #[test]
    fn an_http_route_the_merge_of_both_spellings_sets_aside_is_logged_as_check_shows_it() {
        // The HTTPRoute written without a namespace, the GRPCRoute with
        // it: the reader keeps them apart, and the merge sets the
        // HTTPRoute aside.
        let text = format!(
            "{}---\n{GRPC}",
            HTTP.replace(", namespace: emojivoto}", "}")
        );
        let resources = mesh_retry::config::load("routes.yaml", &text).unwrap();
        assert!(
            resources.for_namespace("emojivoto").warnings.is_empty(),
            "{:?}",
            resources.warnings
        );
        let warnings = planning_warnings(&outbound(), &resources, "emojivoto");
        assert_eq!(
            warnings,
            [
                "routes.yaml: document 1 (HTTPRoute web): spec.parentRefs[0]: set aside for \
                 service emojivoto/emoji, whose GRPCRoutes (emojivoto/emoji-grpc) take its \
                 requests: a service is served its GRPCRoutes or its HTTPRoutes, not both, and \
                 GRPCRoutes win, as in Linkerd (GEP-1294)"
            ]
        );
        let logged = logged_while(|| {
            assert_eq!(planned(&text), ["emoji-service", "list-methods"]);
        });
        let line = logged
            .lines()
            .find(|l| l.contains(&warnings[0]))
            .unwrap_or_else(|| panic!("no warning in {logged}"));
        assert!(line.contains("WARN"), "{line}");
    }

    #[test]
    fn a_route_without_a_namespace_ties_as_one_in_the_workloads() {
        // Two catch-alls, tied but for their names: `b` written without a
        // namespace is `emojivoto/b` where the workload is, after
        // `emojivoto/a`, whichever spelling each is attached by.
        let route = |name: &str, namespace: &str, parent: &str| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}{namespace}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji{parent}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
"
            )
        };
        let ns = ", namespace: emojivoto";
        for parent in ["", ns] {
            let (b, a) = (route("b", "", parent), route("a", ns, parent));
            assert_eq!(planned(&format!("{b}---\n{a}")), ["a", "b"], "{parent}");
            assert_eq!(planned(&format!("{a}---\n{b}")), ["a", "b"], "{parent}");
        }
        // A workload in `aaa` is served `b` as `aaa/b`, first.
        let outbound = SidecarConfig::from_yaml(
            "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: emoji.emojivoto\n      endpoints: [127.0.0.1:1]\n",
            "sidecar.yaml",
        )
        .unwrap()
        .outbound;
        let text = format!("{}---\n{}", route("b", "", ns), route("a", ns, ns));
        assert_eq!(route_names(&plan_in(&outbound, "aaa", &text)), ["b", "a"]);
    }

    #[test]
    fn each_route_is_labelled_with_its_kind() {
        let labels = |text: &str| {
            let plans = plan_in(&outbound(), "emojivoto", text);
            let service = &plans.services[0];
            service
                .routes
                .iter()
                .chain(&service.fallback)
                .map(|r| format!("{:?}", r.labels))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let grpc = labels(GRPC);
        assert!(grpc.contains("kind: \"GRPCRoute\""), "{grpc}");
        assert!(
            grpc.contains("group: \"gateway.networking.k8s.io\""),
            "{grpc}"
        );
        let http = labels(HTTP);
        assert!(http.contains("kind: \"HTTPRoute\""), "{http}");
        assert!(!http.contains("GRPCRoute"), "{http}");
        // No resource: Linkerd's default route, under the service's own
        // name and the workload's namespace.
        let none = labels("");
        assert!(
            none.contains("kind: \"default\", namespace: \"\", name: \"default\""),
            "{none}"
        );
        assert!(
            none.contains("namespace: \"emojivoto\", name: \"emoji\""),
            "{none}"
        );
    }

    #[test]
    fn a_rule_is_labelled_with_its_routes_group_and_namespace() {
        let labels = |text: &str| {
            let plans = plan_in(&outbound(), "emojivoto", text);
            format!("{:?}", plans.services[0].routes[0].labels)
        };
        let gateway = labels(HTTP);
        assert!(
            gateway.contains(
                "group: \"gateway.networking.k8s.io\", kind: \"HTTPRoute\", \
                 namespace: \"emojivoto\""
            ),
            "{gateway}"
        );
        // Linkerd's own HTTPRoute, written without a namespace: in the one
        // it is applied to, its parent service's.
        let linkerd = labels(
            &HTTP
                .replace("gateway.networking.k8s.io/v1", "policy.linkerd.io/v1beta3")
                .replace("{name: web, namespace: emojivoto}", "{name: web}"),
        );
        assert!(
            linkerd.contains(
                "group: \"policy.linkerd.io\", kind: \"HTTPRoute\", namespace: \"emojivoto\""
            ),
            "{linkerd}"
        );
    }
}
