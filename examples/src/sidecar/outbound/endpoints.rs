//! A service's endpoints on every runtime, kept current by DNS.
//!
//! A service whose endpoints are all addresses gets a fixed `Forward` on
//! each runtime, as it always has. One with a name among them gets an
//! [`EndpointSet`] per runtime, each balanced on its own runtime, and a
//! task that looks the names up every `resolve_interval` and pushes a
//! changed answer to all of them ([`keep_resolving`]).
//!
//! The first lookup happens at start, before the runtimes serve, so that
//! a name that resolves is in use from the first request: every name of
//! every service at once, the start waiting five seconds at most for
//! their answers ([`first`]). One that does not resolve (the service is
//! not up yet), or whose server does not answer in time, does not stop
//! the sidecar, as it does not stop Linkerd's proxy: the service's
//! requests, and its TCP connections, wait in the balancers' queues for a
//! later lookup to answer, then fail fast (the mesh's `503`; a closed
//! connection), and a warning is logged. The queues are
//! `outbound.http_queue_capacity` and `http_failfast_timeout` for
//! requests, and the `tcp_` pair for connections and `CONNECT`s, as
//! Linkerd sets them apart ([`Queues`]).
//!
//! Lookups are counted in `outbound_endpoint_resolutions_total{service,
//! result}` (`result` is `success` or `failure`), and each service's
//! endpoints in `outbound_endpoints{service}`.
//!
//! What the balancers think of those endpoints is read when `/metrics` is
//! scraped (mesh-core's `EndpointGauges`), so requests pay nothing for it:
//! `outbound_http_balancer_endpoints{service, endpoint_state}` for the
//! HTTP balancers and `outbound_tcp_balancer_endpoints` for the TCP ones
//! (`outbound.ports` and `CONNECT`), which keep failure accrual of their
//! own. `endpoint_state` is `ready`, `failing` (out for a failure-accrual
//! penalty), `probing` (the penalty is over; the next request decides) or
//! `pending` (backing off a failed HTTP/2 connect, meshed HTTP/1.1
//! carried as HTTP/2 included).
//! Every runtime has its own balancers for a service; they are counted as
//! one, each endpoint once, in the worst state any runtime holds it in,
//! so the states add up to `outbound_endpoints`, whatever `server.threads`
//! says. The labels are the service's name and the state, never an
//! endpoint's address: DNS decides how many addresses there are.
//!
//! Each balancer's queue, where requests (and connections) wait for an
//! endpoint to be ready, and its fail-fast gate are counted in Linkerd's
//! families, `outbound_http_balancer_queue_*` and
//! `outbound_tcp_balancer_queue_*` (mesh-core's `QueueMetricFamilies`),
//! labelled `service` as the endpoint gauges are: `queue_length`,
//! `queue_requests_total` and `queue_latency_seconds` for the requests
//! that waited, `queue_gate_shut_total` and `queue_gate_open_total` for
//! each time the service went into fail-fast and out of it (one opening
//! at start), the Unix times of the last change, and the timeout. A
//! service's handles are resolved once and handed to each runtime's
//! balancer as it is built; a request that finds an endpoint ready pays
//! nothing for them. The gate of a service is shut while any runtime's
//! is.
//!
//! A TCP forwarder balances over a set even when its endpoints are fixed
//! addresses, so that it can be viewed (mesh-core's `ForwardTcp` offers no
//! view of a fixed balancer): that costs each connection one atomic load.
//! HTTP forwarders with fixed endpoints stay fixed, viewed through
//! `Forward::balancer_view`, and their requests pay nothing.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use mesh_core::{
    client::ForEndpoint,
    proxy::{
        BalancerView, EndpointGauges, EndpointSet, FailureAccrual, Forward, ForwardTcp, Queue,
        balance::{QueueMetricFamilies, QueueMetrics},
        resolve::{EndpointAddr, Resolution, Resolver, Round},
    },
};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

pub(crate) use self::first::FirstAnswers;

/// The metric families endpoint resolution counts into, the gauges of
/// the balancers' endpoints by state, read when scraped, and the
/// balancers' queues.
#[derive(Clone, Debug)]
pub(crate) struct ResolveMetrics {
    resolutions: Family<ResolutionLabels, Counter>,
    endpoints: Family<ServiceLabels, Gauge>,
    http_balancers: EndpointGauges<ServiceLabels>,
    tcp_balancers: EndpointGauges<ServiceLabels>,
    http_queues: QueueMetricFamilies<ServiceLabels>,
    tcp_queues: QueueMetricFamilies<ServiceLabels>,
}

impl Default for ResolveMetrics {
    /// Families registered nowhere.
    fn default() -> Self {
        Self {
            resolutions: Family::default(),
            endpoints: Family::default(),
            http_balancers: EndpointGauges::new(
                "outbound_http_balancer_endpoints",
                "The endpoints of an outbound service's HTTP balancers, by state: ready, \
                 failing (out for a failure-accrual penalty) or probing (penalty over, \
                 the next request decides).",
            ),
            tcp_balancers: EndpointGauges::new(
                "outbound_tcp_balancer_endpoints",
                "The endpoints of an outbound service's TCP balancers, by state: ready, \
                 failing (out for a failure-accrual penalty) or probing (penalty over, \
                 the next connection decides).",
            ),
            http_queues: QueueMetricFamilies::default(),
            tcp_queues: QueueMetricFamilies::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResolutionLabels {
    service: String,
    result: ResolutionResult,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum ResolutionResult {
    success,
    failure,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

impl ResolveMetrics {
    /// Registers the families in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            http_queues: QueueMetricFamilies::register(
                registry.sub_registry_with_prefix("outbound_http_balancer"),
            ),
            tcp_queues: QueueMetricFamilies::register(
                registry.sub_registry_with_prefix("outbound_tcp_balancer"),
            ),
            ..Self::default()
        };
        registry.register(
            "outbound_endpoint_resolutions",
            "Lookups of the DNS names among an outbound service's endpoints, by result",
            metrics.resolutions.clone(),
        );
        registry.register(
            "outbound_endpoints",
            "The endpoints an outbound service balances over",
            metrics.endpoints.clone(),
        );
        registry.register_collector(Box::new(metrics.http_balancers.clone()));
        registry.register_collector(Box::new(metrics.tcp_balancers.clone()));
        metrics
    }

    /// The handles of `service`, resolved once. (Each lookup in a family
    /// holds its lock until the end of the statement: one per statement.)
    fn service(&self, service: &str) -> ResolveHandles {
        let labels = |result| ResolutionLabels {
            service: service.to_owned(),
            result,
        };
        let success = labels(ResolutionResult::success);
        let success = self.resolutions.get_or_create(&success).clone();
        let failure = labels(ResolutionResult::failure);
        let failure = self.resolutions.get_or_create(&failure).clone();
        let service = ServiceLabels {
            service: service.to_owned(),
        };
        let endpoints = self.endpoints.get_or_create(&service).clone();
        ResolveHandles {
            success,
            failure,
            endpoints,
            balancers: BalancerGauges {
                http: self.http_balancers.clone(),
                tcp: self.tcp_balancers.clone(),
                http_queue: self.http_queues.metrics(&service),
                tcp_queue: self.tcp_queues.metrics(&service),
                service,
            },
        }
    }
}

/// One service's counters.
#[derive(Clone, Debug)]
struct ResolveHandles {
    success: Counter,
    failure: Counter,
    endpoints: Gauge,
    balancers: BalancerGauges,
}

/// Where one service's balancers are reported, on every runtime: their
/// endpoints, and their queues in the service's handles.
#[derive(Clone, Debug)]
struct BalancerGauges {
    http: EndpointGauges<ServiceLabels>,
    tcp: EndpointGauges<ServiceLabels>,
    http_queue: QueueMetrics,
    tcp_queue: QueueMetrics,
    service: ServiceLabels,
}

impl ResolveHandles {
    fn count(&self, round: &Round) {
        self.success.inc_by(u64::from(round.resolved));
        self.failure.inc_by(u64::from(round.failed));
    }
}

/// One service's endpoints, as every runtime balances over them.
#[derive(Debug)]
pub(crate) struct ServiceEndpoints {
    service: String,
    accrual: Option<FailureAccrual>,
    /// The names to look up again; `None` when every endpoint is an
    /// address.
    resolution: Option<Resolution>,
    handles: ResolveHandles,
    state: Mutex<Published>,
    /// The sidecar's outbound listeners, left out of every answer
    /// ([`own`]).
    listeners: Vec<SocketAddr>,
    /// How requests, and connections, wait for an endpoint when none is
    /// ready: `outbound.http_queue_capacity` and the rest.
    queues: Queues,
}

/// The queues of a service's balancers: one for its HTTP requests, one
/// for its TCP connections and `CONNECT`s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Queues {
    pub(crate) http: Queue,
    pub(crate) tcp: Queue,
}

/// What the runtimes were last given, and their sets.
#[derive(Debug, Default)]
struct Published {
    endpoints: Vec<SocketAddr>,
    sets: Vec<EndpointSet>,
}

impl ServiceEndpoints {
    /// The endpoints of `service`, configured as `endpoints`; names start
    /// from their answers in `first` ([`FirstAnswers`]).
    pub(crate) fn new(
        service: &str,
        endpoints: &[EndpointAddr],
        accrual: Option<FailureAccrual>,
        metrics: &ResolveMetrics,
        first: &FirstAnswers,
    ) -> Self {
        Self::with_lookup(service, endpoints, accrual, metrics, |host, port| {
            first.answer(host, port)
        })
    }

    /// As [`new`](Self::new), looking names up with `lookup`.
    fn with_lookup(
        service: &str,
        endpoints: &[EndpointAddr],
        accrual: Option<FailureAccrual>,
        metrics: &ResolveMetrics,
        mut lookup: impl FnMut(&str, u16) -> io::Result<Vec<SocketAddr>>,
    ) -> Self {
        let mut resolution = Resolution::new(endpoints);
        let handles = metrics.service(service);
        let names: Vec<(String, u16)> = resolution
            .names()
            .map(|(host, port)| (host.to_owned(), port))
            .collect();
        for (index, (host, port)) in names.iter().enumerate() {
            let counter = match resolution.record(index, lookup(host, *port)) {
                mesh_core::proxy::resolve::Outcome::Resolved => &handles.success,
                mesh_core::proxy::resolve::Outcome::Failed => &handles.failure,
            };
            counter.inc();
        }
        let initial = resolution.endpoints();
        if initial.is_empty() {
            tracing::warn!(
                service,
                "no endpoint resolved yet; requests get 503 until one does"
            );
        }
        handles.endpoints.set(initial.len() as i64);
        Self {
            service: service.to_owned(),
            accrual,
            resolution: resolution.has_names().then_some(resolution),
            handles,
            state: Mutex::new(Published {
                endpoints: initial,
                sets: Vec::new(),
            }),
            listeners: Vec::new(),
            queues: Queues::default(),
        }
    }

    /// Has requests and connections that find no endpoint ready wait as
    /// `queues` says; Linkerd's defaults otherwise.
    pub(crate) fn with_queues(mut self, queues: Queues) -> Self {
        self.queues = queues;
        self
    }

    /// The `Forward` of one runtime, over `client`: fixed when every
    /// endpoint is an address (`None` if there is none), else over a set
    /// of its own that the resolver keeps current.
    ///
    /// The balancer is reported in `outbound_http_balancer_endpoints`, and
    /// its queue in `outbound_http_balancer_queue_*`.
    pub(crate) fn forward<C: ForEndpoint + Clone>(&self, client: C) -> Option<Forward<C>> {
        let queue = self.queues.http;
        let (forward, view) = match self.runtime_endpoints(queue)? {
            RuntimeEndpoints::Fixed(endpoints) => {
                let forward = Forward::new(client, endpoints).ok()?.with_queue(queue);
                let forward = match self.accrual {
                    Some(accrual) => forward.with_failure_accrual(accrual),
                    None => forward,
                };
                let view = forward.balancer_view();
                (forward, view)
            }
            RuntimeEndpoints::Set(set) => (Forward::with_endpoints(client, &set), Some(set.view())),
        };
        if let Some(view) = view {
            let balancers = &self.handles.balancers;
            self.report(&balancers.http, &balancers.http_queue, view);
        }
        Some(forward)
    }

    /// The TCP forwarder of one runtime, over `connector`, balanced as
    /// [`forward`](Self::forward) balances requests, with a balancer of
    /// its own, reported in `outbound_tcp_balancer_endpoints` (its queue
    /// in `outbound_tcp_balancer_queue_*`). Fixed
    /// endpoints get a set that is never updated: the one way to view a
    /// TCP balancer (see the [module docs](self)).
    pub(crate) fn forward_tcp<C>(&self, connector: C) -> Option<ForwardTcp<C>> {
        let queue = self.queues.tcp;
        let set = match self.runtime_endpoints(queue)? {
            RuntimeEndpoints::Fixed(endpoints) => {
                let set = EndpointSet::new(endpoints).ok()?;
                let set = match self.accrual {
                    Some(accrual) => set.with_failure_accrual(accrual),
                    None => set,
                };
                set.with_queue(queue)
            }
            RuntimeEndpoints::Set(set) => set,
        };
        let balancers = &self.handles.balancers;
        self.report(&balancers.tcp, &balancers.tcp_queue, set.view());
        Some(ForwardTcp::with_endpoints(connector, &set))
    }

    /// Reports one runtime's balancer under the service's name, and
    /// counts its queue in `queue`.
    fn report(
        &self,
        gauges: &EndpointGauges<ServiceLabels>,
        queue: &QueueMetrics,
        view: BalancerView,
    ) {
        queue.count(&view);
        gauges.add(self.handles.balancers.service.clone(), view);
    }

    /// The endpoints a new balancer starts from: fixed addresses, or a
    /// set the resolver keeps current (with failure accrual, if on, and
    /// `queue`).
    fn runtime_endpoints(&self, queue: Queue) -> Option<RuntimeEndpoints> {
        let Ok(mut state) = self.state.lock() else {
            return None;
        };
        // Fixed endpoints that were all left out ([`own`]) get an empty
        // set, which answers 503, as a name that does not resolve does.
        if self.resolution.is_none() && !state.endpoints.is_empty() {
            return Some(RuntimeEndpoints::Fixed(state.endpoints.clone()));
        }
        let set = EndpointSet::new(state.endpoints.iter().copied())
            .unwrap_or_else(|_| EndpointSet::empty());
        let set = match self.accrual {
            Some(accrual) => set.with_failure_accrual(accrual),
            None => set,
        };
        // Before the set is shared: each of these starts a fresh one.
        let set = set.with_queue(queue);
        state.sets.push(set.clone());
        Some(RuntimeEndpoints::Set(set))
    }

    /// Counts a round of lookups, and gives its endpoints to every
    /// runtime if they changed.
    fn apply(&self, round: &Round) {
        self.handles.count(round);
        if round.changed {
            self.publish(&round.endpoints);
        }
    }

    /// Gives every runtime `endpoints`; none at all changes nothing.
    fn publish(&self, endpoints: &[SocketAddr]) {
        let endpoints = &own::without_own(&self.service, endpoints, &self.listeners)[..];
        if endpoints.is_empty() {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.endpoints = endpoints.to_vec();
        for set in &state.sets {
            // An empty update is refused by the set, and was not sent.
            let _ = set.update(endpoints.iter().copied());
        }
        self.handles.endpoints.set(endpoints.len() as i64);
        tracing::info!(
            service = %self.service,
            endpoints = endpoints.len(),
            "the service's endpoints changed"
        );
    }

    /// The task that keeps the endpoints current, looking names up with
    /// `lookup` every `interval`; `None` when there is no name.
    pub(crate) fn resolver<L, F>(
        self: &Arc<Self>,
        lookup: L,
        interval: std::time::Duration,
    ) -> Option<impl Future<Output = ()> + Send + 'static + use<L, F>>
    where
        L: FnMut(String, u16) -> F + Send + 'static,
        F: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
    {
        let resolver = self.lookups(lookup)?.with_interval(interval);
        Some(keep_resolving(self.clone(), resolver))
    }

    /// A resolver of the names, from their last answers; `None` when there
    /// is no name.
    fn lookups<L, F>(&self, lookup: L) -> Option<Resolver<L>>
    where
        L: FnMut(String, u16) -> F,
        F: Future<Output = io::Result<Vec<SocketAddr>>>,
    {
        Some(Resolver::new(self.resolution.clone()?, lookup))
    }
}

/// Where one balancer's endpoints come from.
enum RuntimeEndpoints {
    Fixed(Vec<SocketAddr>),
    Set(EndpointSet),
}

/// Runs `resolver` until the sidecar stops, counting each round and
/// pushing changed endpoints to every runtime of `endpoints`.
async fn keep_resolving<L, F>(endpoints: Arc<ServiceEndpoints>, resolver: Resolver<L>)
where
    L: FnMut(String, u16) -> F,
    F: Future<Output = io::Result<Vec<SocketAddr>>>,
{
    resolver.run(|round| endpoints.apply(&round)).await;
}

mod first;
pub(crate) mod lookup;
mod own;
#[cfg(test)]
mod tests;
