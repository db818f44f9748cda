//! Linkerd's outbound route families, under the same names and labels:
//! what each route's requests did (over its retries), what it sent each of
//! its backends and what came back (under the retries), and its retries.
//!
//! Over the retries, once per logical request, as the application sees it:
//!
//! - `outbound_http_route_request_duration_seconds`: a histogram of the
//!   time from the request to the end of its response (its last body
//!   frame, or the error that ended it), with Linkerd's buckets 0.05,
//!   0.5, 1 and 10 seconds;
//! - `outbound_http_route_request_statuses_total{..., http_status,
//!   error}`: how each request ended, labelled as the backend families
//!   below.
//!
//! Their labels are the parent's and the route's, then `hostname`, which
//! Linkerd leaves empty unless told to export hostnames (see
//! [`labels`](super::labels)).
//!
//! Under the retries, once per attempt, labelled also with the backend:
//!
//! - `outbound_http_route_backend_requests_total`: requests handed to a
//!   backend. Each attempt counts, as in Linkerd.
//! - `outbound_http_route_backend_response_duration_seconds`: a histogram
//!   of the time from the attempt to the end of its response, with
//!   Linkerd's buckets 0.025, 0.05, 0.1, 0.25, 0.5, 1 and 10 seconds.
//!   Linkerd starts it when the request body has been sent, which takes
//!   an allocation per request to learn; the sidecar starts it when the
//!   attempt is, which differs only for requests whose bodies stream.
//! - `outbound_http_route_backend_response_statuses_total{...,
//!   http_status, error}`: how each attempt
//!   ended. `http_status` is the response's status, empty when there was
//!   none; `error` names what the mesh answered or failed with, empty for
//!   a response that came from the backend. Its values are Linkerd's, so
//!   that dashboards built on Linkerd's series read the sidecar's too
//!   (linkerd2-proxy's route metrics `Error`, in
//!   `linkerd/app/outbound/src/http/logical/policy/route/metrics/labels.rs`):
//!   `FAIL_FAST` for the mesh's `unavailable` answer (no backend could
//!   take the request: it waited for an endpoint until its service went
//!   into fail-fast, `service in fail-fast`, or there was none),
//!   `LOAD_SHED` for one the balancer's queue shed without a wait
//!   (`service unavailable`: the queue full, or the service already in
//!   fail-fast; Linkerd's `LoadShedError`) and for `rate_limited`,
//!   `REQUEST_TIMEOUT` for a request, or an attempt, that the route's
//!   request timeout ended, or a deadline its caller sent
//!   (`mesh-deadline`, `grpc-timeout`) nearer than the route's timeouts:
//!   in the route's family and its backends' alike, whatever timeouts
//!   the route has, none included (linkerd2-proxy makes a caller's
//!   deadline the request's stream deadline, whose expiry it labels
//!   so), `RESPONSE_HEADERS_TIMEOUT` for one that an attempt's own timeout
//!   ended, or any other timeout before the response head (see
//!   [`RouteTimeouts`]), `RESPONSE_STREAM_TIMEOUT` for one while
//!   a gRPC body streamed, `CANCEL` for an attempt given up for another
//!   reason (its caller gone), and Linkerd's catch-all `UNKNOWN`
//!   for any other (a refused connection, the mesh's `no_route` or
//!   `denied` answer...), which Linkerd has no name for; egress's refusal
//!   is a failure its route injects, labelled by its status alone,
//!   `error=""`, as Linkerd labels one ([`egress`](super::egress)). An
//!   attempt the upstream failed, the mesh's `unreachable` answer or an
//!   error, is labelled by its cause, which mesh-core's answer carries
//!   ([`UpstreamCause`]) because the layers here see the answer and not
//!   the error; the values split it as Linkerd splits HTTP/2 errors (its
//!   `Error::new_or_status`, in the same file): a reset stream by its
//!   code, `REFUSED` (`REFUSED_STREAM`: an upstream shedding load),
//!   `ENHANCE_YOUR_CALM`, `CANCEL`, or else `RESET`; `GO_AWAY` for a
//!   stream a `GOAWAY` failed; `IO` for a connection that closed or broke
//!   under the attempt (see [`cause_label`]).
//!
//! The route's retries are counted in Linkerd's
//! `outbound_http_route_retry_requests_total` (retries sent),
//! `..._retry_successes_total` (requests that succeeded after a retry),
//! `..._retry_limit_exceeded_total` (retryable failures returned because
//! the request used its attempts) and `..._retry_overflow_total`
//! (retryable failures returned because the retry budget was empty, or
//! the route's service could not get ready for the retry; the budget is
//! what keeps the sidecar's retries from overloading a backend as
//! Linkerd's circuit breakers do), labelled as the route's own families;
//! mesh-retry tells the route of each ([`RetryCounts`]), so that a
//! request that is not retried does nothing more for them.
//!
//! Each family has its `outbound_grpc_route_*` twin for gRPC calls (a
//! `POST` with a gRPC `content-type`), which are counted there instead;
//! its statuses are `grpc_status` rather than `http_status`. A failed
//! call is usually answered `200`, its failure in the `grpc-status` of
//! the trailers, so an HTTP status says nothing of it; `grpc_status` is
//! the code's name (`OK`, `UNAVAILABLE`), read from the head of a
//! trailers-only response or else from the trailers, and the call is
//! counted when its response body ends ([`grpc`]). `UNKNOWN` stands for
//! no status: an error, a body that ended or was dropped without one.
//!
//! Linkerd picks the family by the kind of route (an `HTTPRoute`'s or a
//! `GRPCRoute`'s); the sidecar picks it by the call, because its
//! `HTTPRoute`s and `ServiceProfile` routes carry gRPC calls too, and
//! their failures would otherwise not show. Each request or attempt is
//! counted in one family. Linkerd counts a request or an attempt given up
//! before its response head in neither; the sidecar counts it, with
//! `error="CANCEL"`, and records no duration for it.
//!
//! The parent is the service the request was addressed to, and the
//! backend the service it went to: the same for a route without
//! `backendRefs`, and one of its weighted services for a split; for a
//! backend that is not an outbound service, its name as `name.namespace`,
//! each of its attempts failed with `error="FAIL_FAST"` and no status
//! (see [`split`](super::split)). The backend families are
//! the series to watch through a canary: the route's, and the
//! service-level `response_total`, count the request once under its
//! parent, whichever backend answered it.
//!
//! A ServiceProfile route is counted also in Linkerd's ServiceProfile
//! route families (`route_*` over the retries, `route_actual_*` under
//! them, see [`profile`](super::profile)), by the same layers: the
//! route's handles and its backends' carry that level's handles of those
//! families, `None` on any other route.
//!
//! Every label comes from configuration (service and route names) or from
//! a closed set (status codes, gRPC codes, error kinds), so the families
//! stay bounded. The handles a request counts into are resolved when the
//! route is built ([`ends`](super::ends)): a request takes a few atomic
//! increments and no lock.

mod grpc;

use std::{
    error::Error,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Request, Response};
use http_body::Body;
use mesh_core::{
    BoxError,
    classify::{Classify, ErrorKind},
    error::{ProxyErrorKind, UpstreamCause},
    proxy::queue::QueueRefusal,
};
use mesh_retry::{
    Timeouts,
    deadline::{self, GRPC_TIMEOUT, MESH_DEADLINE},
    metrics::{NotRetryable, RetryEvent, RetryObserver},
};
use pin_project_lite::pin_project;
use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::time::Instant;
use tower::Service;

pub(crate) use self::grpc::CountedBody;
pub(crate) use self::grpc::GrpcEnding;
use super::duration::{REQUEST_BUCKETS, RESPONSE_BUCKETS};
use super::ends::{Ending, Ends, Families, Names, Sink};
use super::l4_route::L4RouteMetrics;
use super::labels::{BackendLabels, RouteLabels, ServiceRef};
use super::profile::{ProfileLabels, ProfileLevel, ProfileMetrics, Retryable};
use super::split::MissingBackend;

/// The route families, registered once and shared by every route.
#[derive(Clone, Debug)]
pub(crate) struct BackendMetrics {
    routes: Families<RouteLabels>,
    requests: Family<BackendLabels, Counter>,
    grpc_requests: Family<BackendLabels, Counter>,
    backends: Families<BackendLabels>,
    retries: RetryFamilies,
    profiles: ProfileMetrics,
    /// The TLS and TCP route families of egress tunnels.
    l4: L4RouteMetrics,
}

impl BackendMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let routes = Families::register(
            registry,
            Names {
                statuses: (
                    "request_statuses",
                    "How the {} on a route ended, over its retries, by status and error",
                ),
                duration: (
                    "request_duration",
                    "The time from {} on a route to the end of their responses, over its \
                     retries",
                ),
                buckets: &REQUEST_BUCKETS,
            },
        );
        let requests = Family::default();
        let grpc_requests = Family::default();
        registry.register(
            "outbound_http_route_backend_requests",
            "Requests, retries included, a route sent to one of its backends",
            requests.clone(),
        );
        registry.register(
            "outbound_grpc_route_backend_requests",
            "gRPC calls, retries included, a route sent to one of its backends",
            grpc_requests.clone(),
        );
        let backends = Families::register(
            registry,
            Names {
                statuses: (
                    "backend_response_statuses",
                    "How the {} a route sent to one of its backends ended, by status and error",
                ),
                duration: (
                    "backend_response_duration",
                    "The time from {} a route sent to one of its backends to the end of their \
                     responses",
                ),
                buckets: &RESPONSE_BUCKETS,
            },
        );
        let retries = RetryFamilies::register(registry);
        let profiles = ProfileMetrics::register(registry);
        let l4 = L4RouteMetrics::register(registry);
        Self {
            routes,
            requests,
            grpc_requests,
            backends,
            retries,
            profiles,
            l4,
        }
    }

    /// The TLS and TCP route families of egress tunnels
    /// ([`egress_tunnel`](super::egress_tunnel)).
    pub(crate) fn l4(&self) -> &L4RouteMetrics {
        &self.l4
    }

    /// The handles of the logical requests on the route of `labels`,
    /// counted also in the ServiceProfile route families under `profile`
    /// for a ServiceProfile route ([`profile`](super::profile)), whose
    /// responses `classes` classify when the route has its own.
    pub(crate) fn route(
        &self,
        labels: &RouteLabels,
        profile: Option<&ProfileLabels>,
        classes: Option<&Classify>,
    ) -> CountedHandles {
        CountedHandles(Arc::new(Counters {
            handles: Handles::Route(self.routes.ends(labels.clone())),
            profile: profile.map(|labels| self.profiles.logical(labels, classes)),
        }))
    }

    /// The handles of the attempts on the ServiceProfile route of
    /// `profile`, to be shared by its backends' ([`backend`](Self::backend)).
    /// `classes` classify its responses when the route has its own.
    pub(crate) fn profile_attempts(
        &self,
        profile: &ProfileLabels,
        classes: Option<&Classify>,
    ) -> Arc<ProfileLevel> {
        self.profiles.actual(profile, classes)
    }

    /// The handles of what the route of `route` sends `backend`, counted
    /// also in the ServiceProfile route's attempts, `attempts`, for a
    /// ServiceProfile route.
    pub(crate) fn backend(
        &self,
        route: &RouteLabels,
        backend: ServiceRef,
        attempts: Option<Arc<ProfileLevel>>,
    ) -> CountedHandles {
        let labels = route.backend(backend);
        CountedHandles(Arc::new(Counters {
            handles: Handles::Backend {
                requests: self.requests.get_or_create(&labels).clone(),
                grpc_requests: OnceLock::new(),
                grpc_family: self.grpc_requests.clone(),
                ends: self.backends.ends(labels),
            },
            profile: attempts,
        }))
    }

    /// What counts the retries of the route of `labels`, to be told of
    /// them by its retry layer; for a ServiceProfile route, also in
    /// `route_retryable_total` under `profile`.
    pub(crate) fn retries(
        &self,
        labels: &RouteLabels,
        profile: Option<&ProfileLabels>,
    ) -> Arc<dyn RetryObserver> {
        Arc::new(RetryCounts {
            http: self.retries.http.resolve(labels),
            grpc: OnceLock::new(),
            families: self.retries.clone(),
            labels: labels.clone(),
            retryable: profile.map(|labels| self.profiles.retryable(labels)),
        })
    }
}

/// One route's counters, or one route backend's. Cloning is an `Arc`
/// increment.
#[derive(Clone, Debug)]
pub(crate) struct CountedHandles(Arc<Counters>);

#[derive(Debug)]
struct Counters {
    handles: Handles,
    /// The ServiceProfile route families' handles, at the same level:
    /// `None` for a route that is no ServiceProfile route.
    profile: Option<Arc<ProfileLevel>>,
}

#[derive(Debug)]
enum Handles {
    Route(Ends<RouteLabels>),
    Backend {
        requests: Counter,
        /// Resolved at the route's first gRPC call, so that a route that
        /// carries none shows no gRPC series.
        grpc_requests: OnceLock<Counter>,
        grpc_family: Family<BackendLabels, Counter>,
        ends: Ends<BackendLabels>,
    },
}

impl CountedHandles {
    fn ends(&self) -> &dyn Sink {
        match &self.0.handles {
            Handles::Route(ends) => ends,
            Handles::Backend { ends, .. } => ends,
        }
    }

    /// The ServiceProfile route families' handles, if any.
    fn profile(&self) -> Option<&ProfileLevel> {
        self.0.profile.as_deref()
    }

    fn count_request(&self, grpc: bool) {
        if let Some(profile) = self.profile() {
            profile.request();
        }
        let Handles::Backend {
            requests,
            grpc_requests,
            grpc_family,
            ends,
        } = &self.0.handles
        else {
            return;
        };
        if grpc {
            grpc_requests
                .get_or_init(|| grpc_family.get_or_create(ends.labels()).clone())
                .inc();
        } else {
            requests.inc();
        }
    }
}

/// The retry families, HTTP and gRPC: retries sent, successes after a
/// retry, and retryable failures returned for the attempts used up or for
/// an empty budget.
#[derive(Clone, Debug)]
struct RetryFamilies {
    http: RetryFamily,
    grpc: RetryFamily,
}

#[derive(Clone, Debug, Default)]
struct RetryFamily([Family<RouteLabels, Counter>; 4]);

/// The counters of [`RetryFamily`], in its order.
#[derive(Debug)]
struct RetryCounters([Counter; 4]);

impl RetryFamilies {
    fn register(registry: &mut Registry) -> Self {
        let families = Self {
            http: RetryFamily::default(),
            grpc: RetryFamily::default(),
        };
        let names = [
            ("retry_requests", "Retries sent, of {} on a route"),
            (
                "retry_successes",
                "Successes after at least one retry, of {} on a route",
            ),
            (
                "retry_limit_exceeded",
                "Retryable failures returned because their attempts were used up, of {} on a \
                 route",
            ),
            (
                "retry_overflow",
                "Retryable failures returned because the retry budget was empty or the service \
                 could not take the retry, of {} on a route",
            ),
        ];
        for (protocol, calls, family) in [
            ("http", "requests", &families.http),
            ("grpc", "gRPC calls", &families.grpc),
        ] {
            for ((name, help), family) in names.iter().zip(&family.0) {
                registry.register(
                    format!("outbound_{protocol}_route_{name}"),
                    help.replace("{}", calls),
                    family.clone(),
                );
            }
        }
        families
    }
}

impl RetryFamily {
    fn resolve(&self, labels: &RouteLabels) -> RetryCounters {
        RetryCounters(self.0.each_ref().map(|f| f.get_or_create(labels).clone()))
    }
}

/// Counts one route's retries in the retry families, as mesh-retry tells
/// of them: the HTTP family's counters are resolved with the route, the
/// gRPC family's at its first gRPC retry event, so that a route that
/// retries no gRPC call shows no gRPC series.
#[derive(Debug)]
struct RetryCounts {
    labels: RouteLabels,
    families: RetryFamilies,
    http: RetryCounters,
    grpc: OnceLock<RetryCounters>,
    /// A ServiceProfile route's `route_retryable_total`.
    retryable: Option<Retryable>,
}

impl RetryObserver for RetryCounts {
    fn observe(&self, event: RetryEvent, grpc: bool) {
        if let Some(retryable) = &self.retryable {
            // Linkerd counts each failure its profile retry policy finds
            // retryable, and those the budget refused; a failure left
            // unretried for its attempts or its deadline was retryable, as
            // was one whose retry was decided but that its service could
            // not get ready for.
            match event {
                RetryEvent::Retry
                | RetryEvent::LimitExceeded
                | RetryEvent::DeadlineExceeded
                | RetryEvent::NotRetryable(NotRetryable::Unavailable) => {
                    retryable.count(true);
                }
                RetryEvent::BudgetExhausted => retryable.count(false),
                _ => {}
            }
        }
        let i = match event {
            RetryEvent::Retry => 0,
            RetryEvent::Success => 1,
            RetryEvent::LimitExceeded => 2,
            // Linkerd's `overflow`: the retry could not be taken, by the
            // budget or by a service that could not get ready.
            RetryEvent::BudgetExhausted | RetryEvent::NotRetryable(NotRetryable::Unavailable) => 3,
            // Linkerd has no series for these.
            _ => return,
        };
        let counters = if grpc {
            self.grpc
                .get_or_init(|| self.families.grpc.resolve(&self.labels))
        } else {
            &self.http
        };
        if let Some(counter) = counters.0.get(i) {
            counter.inc();
        }
    }
}

/// A route, or one of its backends, whose requests and responses are
/// counted. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    handles: CountedHandles,
    timing: Timing,
    /// A backend's per-try timeout as its attempts' deadline header says
    /// it, worked out once: see [`PerTrySent`].
    per_try_sent: Option<PerTrySent>,
}

impl<S> Counted<S> {
    /// Counts what `inner` does in `handles`; a timeout that ends it is
    /// labelled `RESPONSE_HEADERS_TIMEOUT`, and an attempt given up
    /// before its response `CANCEL`, unless it is told its route's
    /// timeouts ([`of_route`](Self::of_route),
    /// [`of_attempts`](Self::of_attempts)).
    pub(crate) fn new(inner: S, handles: CountedHandles) -> Self {
        Self {
            inner,
            handles,
            timing: Timing::Unknown,
            per_try_sent: None,
        }
    }

    /// Counts the requests of a route whose timeouts are `timeouts`,
    /// over its retries and timeouts.
    pub(crate) fn of_route(mut self, timeouts: RouteTimeouts) -> Self {
        self.timing = Timing::Route(timeouts);
        self
    }

    /// Counts the attempts of a route whose timeouts are `timeouts`,
    /// under its retries and timeouts.
    pub(crate) fn of_attempts(mut self, timeouts: RouteTimeouts) -> Self {
        self.timing = Timing::Attempts(timeouts);
        self.per_try_sent = timeouts.per_try.map(PerTrySent::new);
        self
    }

    /// The instant the request's deadline ends an attempt of `req` (a
    /// gRPC call when `call`), which starts at `started`, as its deadline
    /// header tells: `None` when it carries the attempt's per-try timeout
    /// instead, or nothing. The route's stack writes one into each attempt
    /// of a request with a deadline, the route's or its caller's, and the
    /// per-try timeout into each of a route with one.
    fn deadline_of<B>(&self, req: &Request<B>, call: bool, started: Instant) -> Option<Instant> {
        let (left, grpc) = sent_deadline(req, call);
        let per_try = self
            .per_try_sent
            .map(|p| if grpc { p.grpc } else { p.mesh });
        // The stack writes the per-try timeout when it ends no later than
        // the deadline, and what is left of the deadline, less, otherwise.
        left.filter(|left| per_try.is_none_or(|per_try| *left < per_try))
            .and_then(|left| started.checked_add(left))
    }
}

/// The deadline its caller sent with a request that reached the route's
/// stack, as the stack read it: after the route's filters, which may
/// have set or removed it. [`Rescue`](super::split::Rescue), between
/// the filters and the stack, puts it on the mesh's timeout answer for
/// the route's counter, over the filters, to tell the request's deadline
/// from an attempt's timeout (see [`RouteTimeouts`]). Only a route with a
/// per-try timeout reads it ([`RouteTimeouts::labels_by_caller`]); its
/// requests pay the lookup of their deadline header there, as the stack's
/// timeouts do; only a timeout answer is given the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallerDeadline(Duration);

impl CallerDeadline {
    /// The deadline `req` carries, as the route's stack reads it (the
    /// header of the kind its `content-type` says), if any.
    pub(crate) fn of<B>(req: &Request<B>) -> Option<Self> {
        let headers = req.headers();
        let left = if mesh_core::error::is_grpc(headers) {
            headers
                .get(GRPC_TIMEOUT)
                .and_then(deadline::parse_grpc_timeout)
        } else {
            headers
                .get(MESH_DEADLINE)
                .and_then(deadline::parse_mesh_deadline)
        };
        left.map(Self)
    }
}

/// The time the deadline header of `req` (a gRPC call when `call`) gives,
/// if any, and whether it is gRPC's: the header of the request's kind,
/// as the route's stack picks it, by `content-type` alone whatever the
/// method (a `POST`'s is known already).
fn sent_deadline<B>(req: &Request<B>, call: bool) -> (Option<Duration>, bool) {
    let grpc =
        call || (req.method() != http::Method::POST && mesh_core::error::is_grpc(req.headers()));
    let left = if grpc {
        req.headers()
            .get(GRPC_TIMEOUT)
            .and_then(deadline::parse_grpc_timeout)
    } else {
        req.headers()
            .get(MESH_DEADLINE)
            .and_then(deadline::parse_mesh_deadline)
    };
    (left, grpc)
}

/// A per-try timeout as the route's stack writes it into an attempt's
/// deadline header when it is nearer than the request's deadline
/// (`mesh-deadline` in whole milliseconds, `grpc-timeout` in the finest
/// unit that fits), read back: a header that says less is what is left of
/// the request's deadline, which the attempt then ends with.
#[derive(Clone, Copy, Debug)]
struct PerTrySent {
    mesh: Duration,
    grpc: Duration,
}

impl PerTrySent {
    fn new(per_try: Duration) -> Self {
        let mesh = deadline::mesh_deadline_value(per_try);
        let grpc = deadline::encode_grpc_timeout(per_try);
        Self {
            mesh: deadline::parse_mesh_deadline(&mesh).unwrap_or(per_try),
            grpc: deadline::parse_grpc_timeout(&grpc).unwrap_or(per_try),
        }
    }
}

/// A route's timeouts, as its counters read them to tell which one ended
/// a request or an attempt, as Linkerd labels it: the route's request
/// timeout (`timeouts.request`, `timeout.linkerd.io/request`, a
/// ServiceProfile route's `timeout`) is `REQUEST_TIMEOUT`, linkerd2-proxy's
/// label for its `StreamDeadlineError`; an attempt's own
/// (`timeouts.backendRequest`, `retry.linkerd.io/timeout`) is
/// `RESPONSE_HEADERS_TIMEOUT`, its label for the `ResponseHeadersTimeoutError`
/// its retry timeout raises (`linkerd/http/stream-timeouts` and the route
/// metrics' `labels.rs` in linkerd2-proxy). There the error passes through
/// both the route's and the backend's counters; here the route's timeouts
/// sit between them, answer the route's counter with the mesh's `504` and
/// drop the attempt under the backend's, so each counter works out which
/// timeout it was from these.
///
/// A backend's counter learns when the request's deadline falls from the
/// deadline header the route's stack writes into each attempt, retries
/// included (`mesh-deadline`, or `grpc-timeout` on gRPC; see
/// [`Counted::deadline_of`]), which costs the request nothing more: no
/// extension is added to it to carry the deadline. That deadline is the
/// nearer of the route's request timeout and the one the caller sent,
/// the caller's alone on a route without a request timeout, so an
/// attempt the caller's deadline ended is `REQUEST_TIMEOUT` too: the
/// deadline it ran under, as linkerd2-proxy makes a caller's
/// `l5d-timeout` the route's stream deadline, whose expiry it labels so.
/// The route's counter learns the deadline the caller sent from the
/// mesh's timeout answer, which carries it as the route's stack read it,
/// after the route's filters ([`CallerDeadline`]): a filter that sets
/// `mesh-deadline` gives the request a deadline, and one that removes it
/// leaves only the route's timeouts. So the mesh's answer for it is
/// `REQUEST_TIMEOUT` there too, and the two families agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RouteTimeouts {
    request: Option<Duration>,
    per_try: Option<Duration>,
}

impl RouteTimeouts {
    /// The request and per-try timeouts of `timeouts`; a zero is none, as
    /// the route's stack reads it.
    pub(crate) fn new(timeouts: &Timeouts) -> Self {
        let enabled = |t: Option<Duration>| t.filter(|t| !t.is_zero());
        Self {
            request: enabled(timeouts.request),
            per_try: enabled(timeouts.per_try),
        }
    }

    /// Whether a timeout answer's label depends on the caller's deadline:
    /// only with a per-try timeout, which the caller's nearer deadline
    /// may have come before. With a request timeout alone, or none, every
    /// timeout answer is `REQUEST_TIMEOUT` whatever the caller sent, so
    /// [`Rescue`](super::split::Rescue) need not read its header.
    pub(crate) fn labels_by_caller(&self) -> bool {
        self.per_try.is_some()
    }
}

/// What a counter knows of the timeouts above or around it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Timing {
    /// Nothing: a timeout answer is `RESPONSE_HEADERS_TIMEOUT`, an attempt
    /// dropped `CANCEL`.
    #[default]
    Unknown,
    /// The route's counter, over its timeouts.
    Route(RouteTimeouts),
    /// A backend's counter, under the route's timeouts.
    Attempts(RouteTimeouts),
}

/// How much later than its instant a tokio timer may be seen to fire, at
/// most: timers fire on a millisecond tick. An attempt's counter starts
/// its clock a little after the route's stack starts the attempt's
/// timeout, and the gap must not make the timeout look unexpired.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// How much later than the request's deadline an attempt's counter may
/// place it, reading the attempt's deadline header: by a tick, as
/// [`TIMER_TICK`] says, and by the millisecond `mesh-deadline` writes for
/// less than one left. (The header otherwise rounds down, which places
/// the deadline earlier, by up to a millisecond: a caller gone within
/// that much of its deadline is counted as the deadline's.)
const HEADER_SLACK: Duration = Duration::from_millis(2);

impl Timing {
    /// The `error` of the mesh's timeout answer, given `now`, to a request
    /// that came to this counter at `started`, whose caller sent the
    /// deadline `sent` (as the route's stack read it).
    /// Over the route's timeouts, it answered for the request's deadline
    /// when the request timeout has passed, or the caller's deadline has,
    /// or the route has no per-try timeout (the deadline was then the
    /// route's or the caller's, `grpc-timeout` or `mesh-deadline`);
    /// for the per-try timeout of the last attempt otherwise. The
    /// caller's deadline, counted from `started`, falls no later than the
    /// route's stack placed it, which read the header after.
    fn timeout_answer(self, started: Instant, sent: Option<Instant>, now: Instant) -> &'static str {
        match self {
            Timing::Route(RouteTimeouts {
                request,
                per_try: Some(_),
            }) if request
                .is_none_or(|request| now.saturating_duration_since(started) < request)
                && sent.is_none_or(|sent| now < sent) =>
            {
                linkerd::RESPONSE_HEADERS_TIMEOUT
            }
            Timing::Route(_) => linkerd::REQUEST_TIMEOUT,
            Timing::Unknown | Timing::Attempts(_) => linkerd::RESPONSE_HEADERS_TIMEOUT,
        }
    }

    /// The `error` of an attempt dropped `now` before its response head,
    /// which started at `started`, the request's deadline being `deadline`
    /// (as its deadline header placed it, see [`HEADER_SLACK`]): the
    /// route's request timeout once the deadline has passed, the attempt's
    /// own timeout once that has, `CANCEL` otherwise (its caller went
    /// away). Read only when an attempt is dropped so.
    fn given_up(self, started: Instant, deadline: Option<Instant>, now: Instant) -> &'static str {
        let Timing::Attempts(timeouts) = self else {
            return CANCEL;
        };
        let passed = |deadline: Instant| {
            now.checked_add(HEADER_SLACK)
                .is_some_and(|now| now >= deadline)
        };
        if deadline.is_some_and(passed) {
            return linkerd::REQUEST_TIMEOUT;
        }
        let expired = |per_try: Duration| {
            now.checked_add(TIMER_TICK)
                .zip(started.checked_add(per_try))
                .is_some_and(|(now, until)| now >= until)
        };
        if timeouts.per_try.is_some_and(expired) {
            return linkerd::RESPONSE_HEADERS_TIMEOUT;
        }
        CANCEL
    }
}

impl<S: super::split::Failfast> super::split::Failfast for Counted<S> {
    fn in_failfast(&self) -> bool {
        self.inner.in_failfast()
    }
}

impl<S, B, RB> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body,
{
    type Response = Response<CountedBody<RB>>;
    type Error = BoxError;
    type Future = CountedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let grpc = grpc::is_call(&req);
        self.handles.count_request(grpc);
        let started = Instant::now();
        let deadline = match self.timing {
            Timing::Attempts(_) => self.deadline_of(&req, grpc, started),
            _ => None,
        };
        CountedFuture {
            inner: self.inner.call(req),
            handles: Some(self.handles.clone()),
            grpc,
            started,
            timing: self.timing,
            deadline,
        }
    }
}

pin_project! {
    /// Counts how the request ended when its response head or error
    /// arrives, or for a gRPC call whose status comes in the trailers,
    /// hands that to the response body, which records the duration when
    /// it ends. Dropped before that, it counts the request as ended by
    /// the route's timeout that dropped it, or as cancelled (the caller
    /// gone): see [`Timing::given_up`].
    #[derive(Debug)]
    pub(crate) struct CountedFuture<F> {
        #[pin]
        inner: F,
        handles: Option<CountedHandles>,
        grpc: bool,
        started: Instant,
        timing: Timing,
        // An attempt's request deadline, as its deadline header placed
        // it.
        deadline: Option<Instant>,
    }

    impl<F> PinnedDrop for CountedFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(handles) = this.handles.take() {
                let error = match this.timing {
                    Timing::Attempts(_) => {
                        this.timing.given_up(*this.started, *this.deadline, Instant::now())
                    }
                    _ => CANCEL,
                };
                if *this.grpc {
                    handles.ends().count_grpc(GrpcEnding::failed(error));
                } else {
                    handles.ends().count(Ending { status: None, error: Some(error) });
                }
            }
        }
    }
}

impl<F, RB, E> Future for CountedFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: Body,
{
    type Output = Result<Response<CountedBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        let Some(handles) = this.handles.take() else {
            return Poll::Ready(result.map(|res| res.map(CountedBody::new)));
        };
        let grpc = *this.grpc;
        Poll::Ready(match result {
            Ok(res) => {
                let error = answer_label(&res, *this.timing, *this.started);
                Ok(grpc::response(res, handles, grpc, *this.started, error))
            }
            Err(error) => {
                if let Some(profile) = handles.profile() {
                    profile.error(&error);
                }
                let ends = handles.ends();
                let label = error_label(&error);
                if grpc {
                    ends.count_grpc(GrpcEnding::failed(label));
                } else {
                    ends.count(Ending {
                        status: None,
                        error: Some(label),
                    });
                }
                ends.observe(grpc, this.started.elapsed());
                Err(error)
            }
        })
    }
}

/// The values of `error`, Linkerd's own: linkerd2-proxy labels these
/// families with the fixed, upper-case set of its route metrics' `Error`
/// (`linkerd/app/outbound/src/http/logical/policy/route/metrics/labels.rs`),
/// and dashboards built on its series filter on those. The sidecar's
/// failures map onto the ones that mean the same; any other, which
/// Linkerd has no name for, is its catch-all `UNKNOWN`.
mod linkerd {
    /// No backend could take the request: it waited until fail-fast
    /// came, or there was none to send it to.
    pub(super) const FAIL_FAST: &str = "FAIL_FAST";
    /// The request was turned away, not sent, without waiting: the
    /// balancer's queue was full or its service in fail-fast, or a rate
    /// limit refused it.
    pub(super) const LOAD_SHED: &str = "LOAD_SHED";
    /// The route's request timeout ended the request.
    pub(super) const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    /// A timeout expired before the response head: an attempt's own, or
    /// another than the route's request timeout.
    pub(super) const RESPONSE_HEADERS_TIMEOUT: &str = "RESPONSE_HEADERS_TIMEOUT";
    /// A timeout expired while the response body streamed.
    pub(super) const RESPONSE_STREAM_TIMEOUT: &str = "RESPONSE_STREAM_TIMEOUT";
    /// The attempt was given up by its caller (not by a timeout), or its
    /// HTTP/2 stream reset with `CANCEL`.
    pub(super) const CANCEL: &str = "CANCEL";
    /// The HTTP/2 stream was reset with `REFUSED_STREAM`.
    pub(super) const REFUSED: &str = "REFUSED";
    /// The HTTP/2 stream was reset with `ENHANCE_YOUR_CALM`.
    pub(super) const ENHANCE_YOUR_CALM: &str = "ENHANCE_YOUR_CALM";
    /// The HTTP/2 stream was reset with any other code.
    pub(super) const RESET: &str = "RESET";
    /// The HTTP/2 stream failed because of a `GOAWAY`.
    pub(super) const GO_AWAY: &str = "GO_AWAY";
    /// The connection failed with an I/O error.
    pub(super) const IO: &str = "IO";
    /// Anything else.
    pub(super) const UNKNOWN: &str = "UNKNOWN";
}

/// The `error` of an attempt given up before it ended by its caller, not
/// by a timeout.
const CANCEL: &str = linkerd::CANCEL;

/// The `error` of an attempt that failed without a response. A backend
/// that is not an outbound service fails each of its attempts so:
/// `FAIL_FAST`, Linkerd's value for a request no backend could take, as
/// the mesh's `unavailable` answer is labelled.
fn error_label(error: &BoxError) -> &'static str {
    if error.is::<MissingBackend>() {
        return linkerd::FAIL_FAST;
    }
    failure_label(&**error, linkerd::RESPONSE_HEADERS_TIMEOUT)
}

/// The `error` of a failure, `error` itself. A timeout is labelled
/// `timeout`, since Linkerd's value depends on whether the response head
/// had come; any other failure by its cause, as mesh-core finds it in the
/// error (an HTTP/2 reset and its code, a `GOAWAY`, a broken connection).
fn failure_label(error: &(dyn Error + 'static), timeout: &'static str) -> &'static str {
    match ErrorKind::of(error) {
        ErrorKind::Timeout => timeout,
        _ => UpstreamCause::of(error).map_or(linkerd::UNKNOWN, cause_label),
    }
}

/// The `error` of an attempt the upstream failed for `cause`: Linkerd's
/// split of HTTP/2 errors (its `Error::new_or_status`, in the same
/// `labels.rs`): a reset by its code, `CANCEL`, `REFUSED`,
/// `ENHANCE_YOUR_CALM` or else `RESET`; a `GOAWAY`; an I/O error of the
/// connection, `IO`.
///
/// Linkerd reads only HTTP/2 errors. A connection the upstream closed or
/// broke is `IO` here over HTTP/1 too: over HTTP/2 the same event is h2's
/// I/O error, and the series should not depend on the protocol. A
/// connection that could not be opened has no value of Linkerd's:
/// `UNKNOWN`, as it is there.
///
/// Nor has an answer that is not HTTP, a protocol error: `UNKNOWN`, as
/// Linkerd labels an HTTP/1 head that does not parse. Over HTTP/2 Linkerd
/// labels it by the frame its own h2 sent for it (`GO_AWAY`, or `RESET`
/// for one stream), since it does not ask which side sent the frame; here
/// the label does not depend on the protocol, and `GO_AWAY` and `RESET`
/// keep meaning what the upstream sent.
fn cause_label(cause: UpstreamCause) -> &'static str {
    match cause {
        UpstreamCause::Refused => linkerd::REFUSED,
        UpstreamCause::EnhanceYourCalm => linkerd::ENHANCE_YOUR_CALM,
        UpstreamCause::Canceled => linkerd::CANCEL,
        UpstreamCause::Reset => linkerd::RESET,
        UpstreamCause::GoAway => linkerd::GO_AWAY,
        UpstreamCause::Closed => linkerd::IO,
        UpstreamCause::Connect | UpstreamCause::Protocol => linkerd::UNKNOWN,
        // A cause mesh-core adds later, until it is mapped.
        _ => linkerd::UNKNOWN,
    }
}

/// The `error` of a response, when the mesh answered it itself: by the
/// kind of its answer, for a timeout by which of the route's timeouts,
/// or the deadline its caller sent ([`CallerDeadline`], on the answer),
/// it was (`timing`, for a request that came at `started`), and for an
/// unreachable upstream by the cause the answer carries, if any.
///
/// An `unavailable` answer is `LOAD_SHED` when the balancer's queue shed
/// the request (`mesh-error: service unavailable`: the queue full, or
/// the service in fail-fast), as Linkerd labels its `LoadShedError`;
/// `FAIL_FAST` otherwise: the request waited until fail-fast came
/// (`service in fail-fast`, Linkerd's `FailFastError`), or no backend
/// could take it.
fn answer_label<B>(res: &Response<B>, timing: Timing, started: Instant) -> Option<&'static str> {
    let extensions = res.extensions();
    let kind = extensions.get::<ProxyErrorKind>().copied()?;
    Some(match kind {
        ProxyErrorKind::Unavailable => match QueueRefusal::of(res.headers()) {
            Some(QueueRefusal::Shed) => linkerd::LOAD_SHED,
            _ => linkerd::FAIL_FAST,
        },
        ProxyErrorKind::RateLimited => linkerd::LOAD_SHED,
        ProxyErrorKind::Timeout => {
            let sent = extensions
                .get::<CallerDeadline>()
                .and_then(|sent| started.checked_add(sent.0));
            timing.timeout_answer(started, sent, Instant::now())
        }
        ProxyErrorKind::UpstreamUnreachable => extensions
            .get::<UpstreamCause>()
            .copied()
            .map_or(linkerd::UNKNOWN, cause_label),
        ProxyErrorKind::Denied
        | ProxyErrorKind::NoRoute
        | ProxyErrorKind::InvalidRequest
        | ProxyErrorKind::Unsupported => linkerd::UNKNOWN,
        // A kind mesh-core adds later, until it is mapped.
        _ => linkerd::UNKNOWN,
    })
}

#[cfg(test)]
impl BackendMetrics {
    /// The handles of what the `HTTPRoute` `route` of the service `parent`
    /// sends the service `backend`, all in namespace `ns`.
    pub(super) fn backend_for_test(
        &self,
        parent: &str,
        route: &str,
        backend: &str,
    ) -> CountedHandles {
        use super::labels::RouteRef;
        let route = RouteLabels::new(
            ServiceRef::new(parent, "ns"),
            RouteRef::resource("gateway.networking.k8s.io", "HTTPRoute", "ns", route),
        );
        self.backend(&route, ServiceRef::new(backend, "ns"), None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::{convert::Infallible, future::pending};

    use futures_util::FutureExt;
    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;

    fn exposition(registry: &Registry) -> Vec<String> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    const CANARY: &str = "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"ns\",parent_name=\"web\",parent_port=\"\",parent_section_name=\"\",route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",route_namespace=\"ns\",route_name=\"api\",backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"ns\",backend_name=\"web-canary\",backend_port=\"\",backend_section_name=\"\"";

    #[tokio::test]
    async fn each_attempt_counts_with_its_status_or_error() {
        let mut registry = Registry::default();
        let metrics = BackendMetrics::register(&mut registry);
        let handles = metrics.backend_for_test("web", "api", "web-canary");
        let backend = service_fn(|req: Request<()>| async move {
            match req.uri().path() {
                "/fail" => Err::<Response<String>, BoxError>(
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
                ),
                "/timeout" => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
                "/reset" => Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset).into()),
                "/mesh" | "/mesh-unavailable" | "/mesh-timeout" | "/mesh-limited" => {
                    let kind = match req.uri().path() {
                        "/mesh" => ProxyErrorKind::UpstreamUnreachable,
                        "/mesh-unavailable" => ProxyErrorKind::Unavailable,
                        "/mesh-timeout" => ProxyErrorKind::Timeout,
                        _ => ProxyErrorKind::RateLimited,
                    };
                    let mut res = Response::new(String::new());
                    *res.status_mut() = kind.http_status();
                    res.extensions_mut().insert(kind);
                    Ok(res)
                }
                path => {
                    let mut res = Response::new(String::new());
                    *res.status_mut() = StatusCode::from_u16(path[1..].parse().unwrap()).unwrap();
                    Ok(res)
                }
            }
        });
        let counted = Counted::new(backend, handles);
        // More distinct endings than the handles keep resolved, so that
        // both ways of finding a counter are taken.
        let paths = [
            "/200",
            "/200",
            "/503",
            "/fail",
            "/mesh",
            "/201",
            "/202",
            "/204",
            "/404",
            "/500",
            "/418",
            "/200",
            "/timeout",
            "/reset",
            "/mesh-unavailable",
            "/mesh-timeout",
            "/mesh-limited",
        ];
        for path in paths {
            let req = Request::get(path).body(()).unwrap();
            let _ = counted.clone().oneshot(req).await;
        }
        let lines = exposition(&registry);
        let line = |rest: &str| {
            format!("outbound_http_route_backend_response_statuses_total{{{CANARY},{rest}")
        };
        assert!(
            lines.contains(&format!(
                "outbound_http_route_backend_requests_total{{{CANARY}}} 17"
            )),
            "{lines:#?}"
        );
        for expected in [
            line("http_status=\"200\",error=\"\"} 3"),
            line("http_status=\"503\",error=\"\"} 1"),
            // Linkerd's values: a failure it has no name for is UNKNOWN.
            line("http_status=\"\",error=\"UNKNOWN\"} 1"),
            line("http_status=\"502\",error=\"UNKNOWN\"} 1"),
            line("http_status=\"\",error=\"RESPONSE_HEADERS_TIMEOUT\"} 1"),
            // A connection reset is an I/O error, not an HTTP/2 stream
            // reset: Linkerd's `IO`.
            line("http_status=\"\",error=\"IO\"} 1"),
            line("http_status=\"503\",error=\"FAIL_FAST\"} 1"),
            line("http_status=\"504\",error=\"RESPONSE_HEADERS_TIMEOUT\"} 1"),
            line("http_status=\"429\",error=\"LOAD_SHED\"} 1"),
            line("http_status=\"418\",error=\"\"} 1"),
            line("http_status=\"500\",error=\"\"} 1"),
        ] {
            assert!(lines.contains(&expected), "{expected} not in {lines:#?}");
        }
        let counted: u64 = lines
            .iter()
            .filter(|l| l.starts_with("outbound_http_route_backend_response_statuses_total"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(counted, 17, "every attempt ends once: {lines:#?}");
    }

    #[tokio::test]
    async fn the_meshs_answer_for_a_failed_upstream_is_labelled_by_its_cause() {
        let mut registry = Registry::default();
        let metrics = BackendMetrics::register(&mut registry);
        let handles = metrics.backend_for_test("web", "api", "web-canary");
        let causes = [
            UpstreamCause::Refused,
            UpstreamCause::EnhanceYourCalm,
            UpstreamCause::Canceled,
            UpstreamCause::Reset,
            UpstreamCause::GoAway,
            UpstreamCause::Closed,
            UpstreamCause::Connect,
            UpstreamCause::Protocol,
        ];
        let backend = service_fn(move |req: Request<()>| async move {
            let kind = ProxyErrorKind::UpstreamUnreachable;
            let mut res: Response<String> = kind.response_for(false);
            let i: usize = req.uri().path()[1..].parse().unwrap();
            if let Some(cause) = causes.get(i) {
                res.extensions_mut().insert(*cause);
            }
            Ok::<_, BoxError>(res)
        });
        let counted = Counted::new(backend, handles);
        // One more than there are causes: an answer that carries none.
        for i in 0..=causes.len() {
            let req = Request::get(format!("/{i}")).body(()).unwrap();
            counted.clone().oneshot(req).await.unwrap();
        }
        let mut lines: Vec<String> = exposition(&registry)
            .into_iter()
            .filter(|l| l.starts_with("outbound_http_route_backend_response_statuses_total"))
            .collect();
        lines.sort_unstable();
        let line = |error: &str, n: u32| {
            format!(
                "outbound_http_route_backend_response_statuses_total{{{CANARY},http_status=\"502\",error=\"{error}\"}} {n}"
            )
        };
        assert_eq!(
            lines,
            [
                line("CANCEL", 1),
                line("ENHANCE_YOUR_CALM", 1),
                line("GO_AWAY", 1),
                line("IO", 1),
                line("REFUSED", 1),
                line("RESET", 1),
                // A refused connection and an answer that is not HTTP,
                // which Linkerd has no value for, and an answer whose
                // cause is not known.
                line("UNKNOWN", 3),
            ]
        );
    }

    #[tokio::test]
    async fn an_attempt_dropped_before_its_answer_counts_as_cancelled() {
        let mut registry = Registry::default();
        let metrics = BackendMetrics::register(&mut registry);
        let never = service_fn(|_: Request<()>| pending::<Result<Response<String>, Infallible>>());
        let mut counted = Counted::new(never, metrics.backend_for_test("web", "api", "web-canary"));
        let call = counted.call(Request::new(()));
        let mut call = Box::pin(call);
        assert!((&mut call).now_or_never().is_none());
        drop(call);
        let lines = exposition(&registry);
        let cancelled = format!(
            "outbound_http_route_backend_response_statuses_total{{{CANARY},http_status=\"\",error=\"CANCEL\"}} 1"
        );
        assert!(lines.contains(&cancelled), "{lines:#?}");
    }

    fn timeouts(request: Option<u64>, per_try: Option<u64>) -> RouteTimeouts {
        RouteTimeouts::new(&Timeouts {
            request: request.map(Duration::from_millis),
            per_try: per_try.map(Duration::from_millis),
            ..Timeouts::default()
        })
    }

    /// An attempt dropped under a route's timeouts is labelled by the one
    /// that passed, as linkerd2-proxy labels the error each raises.
    #[test]
    fn an_attempt_dropped_by_a_routes_timeout_is_labelled_by_that_timeout() {
        let started = Instant::now();
        let at = |ms| started + Duration::from_millis(ms);
        let deadline = Some(at(500));
        let both = Timing::Attempts(timeouts(Some(500), Some(200)));
        assert_eq!(both.given_up(started, deadline, at(100)), CANCEL);
        assert_eq!(
            both.given_up(started, deadline, at(200)),
            linkerd::RESPONSE_HEADERS_TIMEOUT
        );
        assert_eq!(
            both.given_up(started, deadline, at(500)),
            linkerd::REQUEST_TIMEOUT
        );
        // The header places the deadline up to a tick and a millisecond
        // late.
        let request = Timing::Attempts(timeouts(Some(500), None));
        assert_eq!(
            request.given_up(started, deadline, at(498)),
            linkerd::REQUEST_TIMEOUT
        );
        assert_eq!(request.given_up(started, deadline, at(497)), CANCEL);
        // Without the route's timeouts, or over them, it is cancelled.
        let none = Timing::Attempts(timeouts(None, None));
        assert_eq!(none.given_up(started, None, at(500)), CANCEL);
        assert_eq!(Timing::Unknown.given_up(started, deadline, at(500)), CANCEL);
        let route = Timing::Route(timeouts(Some(500), Some(200)));
        assert_eq!(route.given_up(started, deadline, at(500)), CANCEL);
        // A zero is no timeout.
        let zero = Timing::Attempts(timeouts(Some(0), Some(0)));
        assert_eq!(zero, Timing::Attempts(timeouts(None, None)));
    }

    /// An attempt learns the request's deadline from its deadline header,
    /// which the route's stack writes for each: what is left of it, or the
    /// per-try timeout when that is nearer.
    #[test]
    fn an_attempts_deadline_is_read_from_its_deadline_header() {
        let mut registry = Registry::default();
        let metrics = BackendMetrics::register(&mut registry);
        let handles = metrics.backend_for_test("web", "api", "web-canary");
        let both = Counted::new((), handles.clone()).of_attempts(timeouts(Some(500), Some(200)));
        let started = Instant::now();
        let at = |ms| Some(started + Duration::from_millis(ms));
        let req = |method: &str, grpc: bool, header: Option<(&str, &str)>| {
            let mut req = Request::builder().method(method);
            if grpc {
                req = req.header("content-type", "application/grpc+proto");
            }
            if let Some((name, value)) = header {
                req = req.header(name, value);
            }
            req.body(()).unwrap()
        };
        let deadline = |counted: &Counted<()>, req: Request<()>| {
            let call = grpc::is_call(&req);
            counted.deadline_of(&req, call, started)
        };
        let mesh = |ms| Some(("mesh-deadline", ms));
        let grpc = |value| Some(("grpc-timeout", value));
        // What is left of the deadline, less than the per-try timeout.
        assert_eq!(deadline(&both, req("GET", false, mesh("150"))), at(150));
        assert_eq!(deadline(&both, req("POST", true, grpc("150m"))), at(150));
        // A gRPC content-type on another method carries `grpc-timeout`.
        assert_eq!(deadline(&both, req("GET", true, grpc("150000u"))), at(150));
        // The per-try timeout, as the stack writes it: not the deadline.
        assert_eq!(deadline(&both, req("GET", false, mesh("200"))), None);
        assert_eq!(deadline(&both, req("POST", true, grpc("200000u"))), None);
        // The other kind's header, one that does not parse, or none.
        assert_eq!(deadline(&both, req("POST", true, mesh("150"))), None);
        assert_eq!(deadline(&both, req("GET", false, grpc("150m"))), None);
        assert_eq!(deadline(&both, req("GET", false, mesh("soon"))), None);
        assert_eq!(deadline(&both, req("GET", false, None)), None);
        // Without a per-try timeout, the header is the deadline's.
        let request = Counted::new((), handles.clone()).of_attempts(timeouts(Some(500), None));
        assert_eq!(deadline(&request, req("GET", false, mesh("500"))), at(500));
        // A per-try timeout that is not whole milliseconds is written
        // rounded down; the deadline's time left, less, is too.
        let uneven = RouteTimeouts {
            request: Some(Duration::from_millis(500)),
            per_try: Some(Duration::from_micros(200_500)),
        };
        let uneven = Counted::new((), handles).of_attempts(uneven);
        assert_eq!(deadline(&uneven, req("GET", false, mesh("200"))), None);
        assert_eq!(deadline(&uneven, req("GET", false, mesh("199"))), at(199));
        assert_eq!(
            deadline(&uneven, req("POST", true, grpc("200499u"))),
            Some(started + Duration::from_micros(200_499))
        );
        assert_eq!(deadline(&uneven, req("POST", true, grpc("200500u"))), None);
    }

    /// The route's counter puts nothing on the request: its backends'
    /// counters read the deadline from the header the route's stack
    /// writes, and a request's `Extensions` allocate nothing until a
    /// value is inserted.
    #[tokio::test]
    async fn a_routes_counter_adds_nothing_to_the_request() {
        use super::super::labels::RouteRef;
        let mut registry = Registry::default();
        let metrics = BackendMetrics::register(&mut registry);
        let labels = RouteLabels::new(
            ServiceRef::new("web", "ns"),
            RouteRef::resource("gateway.networking.k8s.io", "HTTPRoute", "ns", "api"),
        );
        let route = service_fn(|req: Request<()>| async move {
            assert_eq!(req.extensions().len(), 0);
            Ok::<_, Infallible>(Response::new(String::new()))
        });
        let handles = metrics.route(&labels, None, None);
        let counted = Counted::new(route, handles).of_route(timeouts(Some(500), Some(200)));
        counted.oneshot(Request::new(())).await.unwrap();
    }

    /// The mesh's timeout answer, as the route's counter sees it.
    #[test]
    fn the_routes_timeout_answer_is_labelled_by_the_timeout_that_passed() {
        let started = Instant::now();
        let at = |ms| started + Duration::from_millis(ms);
        let both = Timing::Route(timeouts(Some(500), Some(200)));
        let request = Timing::Route(timeouts(Some(500), None));
        let per_try = Timing::Route(timeouts(None, Some(200)));
        let neither = Timing::Route(timeouts(None, None));
        let headers = linkerd::RESPONSE_HEADERS_TIMEOUT;
        let answer = |timing: Timing, ms| timing.timeout_answer(started, None, at(ms));
        assert_eq!(answer(both, 200), headers);
        assert_eq!(answer(per_try, 200), headers);
        // The caller's own deadline, on a route without timeouts.
        assert_eq!(answer(neither, 200), linkerd::REQUEST_TIMEOUT);
        assert_eq!(answer(both, 500), linkerd::REQUEST_TIMEOUT);
        assert_eq!(answer(request, 500), linkerd::REQUEST_TIMEOUT);
        assert_eq!(answer(Timing::Unknown, 500), headers);
        // The caller's deadline, nearer than the route's timeouts, passed:
        // the request's deadline, whatever timeouts the route has.
        let sent = Some(at(100));
        for timing in [both, per_try, request, neither] {
            assert_eq!(
                timing.timeout_answer(started, sent, at(100)),
                linkerd::REQUEST_TIMEOUT,
                "{timing:?}"
            );
        }
        // Not yet passed: the last attempt's own timeout.
        let later = Some(at(300));
        assert_eq!(both.timeout_answer(started, later, at(200)), headers);
        assert_eq!(per_try.timeout_answer(started, later, at(200)), headers);
    }

    /// A retry that was decided but that the route's service could not
    /// get ready for is Linkerd's `overflow`: the retry could not be
    /// taken, and the caller got the retryable failure.
    #[test]
    fn a_retry_its_service_could_not_take_counts_as_overflow() {
        use super::super::labels::RouteRef;
        let mut registry = Registry::default();
        let metrics = BackendMetrics::register(&mut registry);
        let route = RouteLabels::new(
            ServiceRef::new("web", "ns"),
            RouteRef::resource("gateway.networking.k8s.io", "HTTPRoute", "ns", "api"),
        );
        let observer = metrics.retries(&route, None);
        observer.observe(RetryEvent::NotRetryable(NotRetryable::Unavailable), false);
        observer.observe(RetryEvent::BudgetExhausted, false);
        observer.observe(RetryEvent::NotRetryable(NotRetryable::Committed), false);
        let lines = exposition(&registry);
        let count = |family: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("outbound_http_route_{family}_total{{")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(count("retry_overflow").as_deref(), Some("2"), "{lines:#?}");
        assert_eq!(
            count("retry_limit_exceeded").as_deref(),
            Some("0"),
            "{lines:#?}"
        );
        assert_eq!(count("retry_requests").as_deref(), Some("0"), "{lines:#?}");
    }
}
