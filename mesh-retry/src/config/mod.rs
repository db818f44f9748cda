//! Retry and timeout policies from the resources users already write.
//!
//! [`load`] reads a multi-document YAML text and returns, per service, the
//! policies of its routes ([`RouteRetryPolicy`]: matches, retry policy,
//! timeouts) and its retry budget ([`ServiceRetryPolicy`]). It reads:
//!
//! - **`HTTPRoute`s whose parent is a `Service`** (Gateway API or Linkerd's
//!   `policy.linkerd.io` versions): each rule's `matches`, `timeouts.request`
//!   and `timeouts.backendRequest` (GEP-1742), and `retry.codes`,
//!   `retry.attempts` and `retry.backoff` (GEP-1731: a minimum wait, see
//!   [`Backoff::at_least`](crate::Backoff::at_least)); Linkerd's
//!   [annotations](LinkerdAnnotations) on the route (not
//!   `retry.linkerd.io/grpc`, which Linkerd reads on `GRPCRoute`s only);
//!   and the non-standard
//!   `retries: {numRetries, timeout}` that some guides write, read as
//!   `retry.attempts` and `timeouts.backendRequest`. A rule's own fields win
//!   over the route's annotations, but for the request timeout:
//!   `timeout.linkerd.io/request` wins over `timeouts.request`, with a
//!   [`ConfigWarning`], as Linkerd's policy controller reads the field only
//!   without the annotation. A rule's `RequestHeaderModifier` and
//!   `ResponseHeaderModifier` become the route's header edits, and its
//!   `RequestRedirect` the route's redirect ([`ServiceRetryPolicy::redirect`]).
//!   Filters of types that are not supported, such as `RequestMirror`,
//!   `URLRewrite` or `ExtensionRef`, are named in a [`ConfigWarning`].
//!   A route written without `rules` is read as the one rule the
//!   `HTTPRoute` CRD defaults them to, which takes every request, ranks as
//!   a `/` prefix and is named `spec.rules`, where `rules: []` and a
//!   `GRPCRoute` without rules (its CRD has no default) take none, with a
//!   [`ConfigWarning`].
//! - **`GRPCRoute`s whose parent is a `Service`**: each rule's method and
//!   header matches, read as the `HTTPRoute` matches they amount to (a
//!   call is a `POST` to `/{service}/{method}`, and each match takes only
//!   a `POST`), its header filters and `backendRefs`, and Linkerd's
//!   annotations on the route (not `retry.linkerd.io/http`, which Linkerd
//!   reads on `HTTPRoute`s only); once they turn retries on, the route's
//!   calls are retried, POSTs as they are.
//! - **`HTTPRoute`s and `GRPCRoute`s whose parent is Linkerd's
//!   `EgressNetwork`** (group `policy.linkerd.io`), into
//!   [`RetryResources::egress_networks`], apart from the services: Linkerd
//!   2.17 attaches Gateway API routes to an `EgressNetwork` to allow and
//!   shape the traffic that leaves the cluster
//!   (<https://linkerd.io/2.17/tasks/managing-egress-traffic/>). They are
//!   read as a service's routes are, with all that follows (precedence,
//!   hostnames, consumer routes, `GRPCRoute`s setting `HTTPRoute`s aside,
//!   duplicates, merging), and with three differences, Linkerd's. The
//!   `parentRefs` entry's `port` is the destination port the route takes
//!   traffic to, and a route without one takes every port: Linkerd's
//!   policy controller serves each port of the network the routes of that
//!   port and those without one, ranked and set aside among themselves,
//!   which [`ServiceRetryPolicy::for_port`] selects. A `backendRefs` entry
//!   of kind `EgressNetwork` naming the parent network is the traffic's
//!   original destination ([`BackendKind::OriginalDestination`]), as a
//!   rule without `backendRefs` is; one naming another network, or on a
//!   route attached to a Service, is refused, as Linkerd fails the
//!   requests it would take. And a request none of the routes takes goes
//!   to the network's default route, which its `trafficPolicy` decides
//!   ([`Unmatched::EgressNetwork`]), not to a 404.
//! - **`TLSRoute`s and `TCPRoute`s whose parent is a `Service` or an
//!   `EgressNetwork`** (`gateway.networking.k8s.io/v1alpha2`; a `TLSRoute`
//!   at `v1alpha3` and `v1` too), beside the parent's HTTP routes: Linkerd
//!   2.17 routes traffic that is not plain HTTP with them, TLS by the SNI
//!   of its ClientHello, other TCP by port, a Service's connections
//!   between backend Services by weight and egress as the walkthrough
//!   above allows it. Each is kept with its name, parent port, hostnames
//!   and backends ([`L4Route`]), and [`ServiceRetryPolicy::tls_route`] and
//!   [`ServiceRetryPolicy::tcp_route`] give the route that takes a
//!   connection, by port and SNI, as Linkerd's proxy picks it (an exact
//!   hostname, then the longest wildcard, then none; ties to the oldest,
//!   then by name), or `None`: the parent's default (the Service itself,
//!   or the network's `tls-egress-*`, `tcp-egress-*`).
//!   [`ServiceRetryPolicy::routes_on`] says which kind a port is served,
//!   as Linkerd decides it: HTTP routes before `TLSRoute`s before
//!   `TCPRoute`s; [`ServiceRetryPolicy::l4_routes_on`] the same for a
//!   listener that serves no HTTP. Unlike a Service's HTTP routes, its
//!   connection routes keep their `parentRefs` port. They are selected by
//!   port, consumer namespace, merged and refused when duplicated as the
//!   HTTP routes are. A backend is a Service with its `port`, which the
//!   Gateway API requires, or, for an `EgressNetwork`'s route, the
//!   original destination (the parent network); a route holds one rule,
//!   as Linkerd serves no other. One attached to any other parent (a
//!   `Gateway`) is named in one [`ConfigWarning`] per route. Authorization
//!   reads neither kind.
//! - **`ServiceProfile`s** ([`ServiceProfile`]): `retryBudget` (Linkerd's
//!   or the Gateway API's spelling, see [`BudgetSpec`]), and per route its
//!   `condition`, `responseClasses`, `isRetryable` and `timeout`. As in
//!   linkerd2-proxy, an `isRetryable` route retries the responses its
//!   classes call failures at once, with no backoff and no attempt limit,
//!   for as long as the budget allows, and no connection error. Its
//!   `dstOverrides` split every request of the service by weight
//!   ([`ServiceRetryPolicy::dst_overrides`]).
//! - **SMI `TrafficSplit`s** ([`TrafficSplit`], `v1alpha1` and
//!   `v1alpha2`): the apex service's split, as linkerd-smi writes it into
//!   the service's ServiceProfile `dstOverrides`.
//!
//! Other kinds are left to their readers and are not reported, but for
//! `TLSRoute`s and `TCPRoute`s, which no other reader reads: a parent of
//! theirs this reader leaves is named in a warning (above).
//!
//! A request takes the route of the first match it meets in
//! [`ServiceRetryPolicy::match_order`], which is the Gateway API's
//! precedence, as users of `HTTPRoute`s expect: a catch-all `PathPrefix /`
//! rule does not swallow the requests of a more specific rule, wherever
//! either is written. Across every rule of every `HTTPRoute` attached to
//! the service, each **match** (a rule with two competes with each) ranks
//! by mesh-core's [`MatchPrecedence`](mesh_core::route::MatchPrecedence):
//! an `Exact` path, then a `RegularExpression` (its rank is left to
//! implementations; Linkerd's, as the inbound policy's), then a
//! `PathPrefix`; the longer path; a method; more header matches; more
//! query parameter matches. Ties go to the oldest route by
//! `metadata.creationTimestamp` (a route without one, which would be the
//! newest once applied, after those with one), then to the first route
//! by `{namespace}/{name}`, then to the route's first rule, then to the
//! rule's first match. A route written without a namespace is in the
//! namespace it is applied to: read for a client anywhere, it has an
//! empty one (`/name`); selected for a client in one namespace
//! ([`RetryResources::for_namespace`]), it ranks in that namespace, the
//! client's, as a cluster would rank it applied there (`emojivoto/b` after
//! `emojivoto/a`, where `/b` came first).
//!
//! A route's **`hostnames`** come before all of that, as in Linkerd's
//! proxy, which receives them with each outbound route: a route that
//! names hostnames takes only requests for one of them (the URI's host,
//! else the `Host` header's, without the port, in any case), and a
//! request no route takes is on no route. Of the matches a request meets,
//! [`ServiceRetryPolicy::route_for`] takes one whose route's hostname
//! matches its host most specifically: an exact hostname, then the
//! longest wildcard (`*.shop.example` takes `a.shop.example` and
//! `a.b.shop.example`, not `shop.example`), then a route that names none;
//! the precedence above only orders matches that rank alike. This is
//! the Gateway API's order for overlapping hostnames (the most characters
//! in a matching exact hostname, then in any matching hostname, before
//! any rule's match); [`ServiceRetryPolicy::hosts`] gives a router
//! each route's hostnames. A client that calls the service by a name its
//! routes do not list (`books` for a route on `books.shop.svc.cluster.local`)
//! is on none of them, as with Linkerd.
//!
//! **Consumer routes** apply only to the clients of their own namespace.
//! The Gateway API's mesh support (GEP-1294) calls a route in its parent
//! Service's namespace a producer route, which applies to every client,
//! and one in another namespace a consumer route, which applies only to
//! clients in the route's namespace; Linkerd's policy controller serves
//! each client namespace the producer routes together with that
//! namespace's consumer routes (`ServiceRoutes::apply` in linkerd2's
//! `policy-controller/k8s/index/src/outbound/index.rs`). [`load`] reads
//! every route, for a client anywhere; [`RetryResources::for_namespace`]
//! selects what a client in one namespace is served, and the steps below
//! (a `GRPCRoute` setting `HTTPRoute`s aside, the ranking) run again on
//! that selection, so that a consumer `GRPCRoute` sets aside `HTTPRoute`s
//! only for its own namespace's clients. A route that names no namespace
//! is in its client's, and applies to it.
//!
//! **A ServiceProfile in another namespace than its service's** (named
//! by the service's full name, `emoji.emojivoto.svc.cluster.local`, in
//! `web`) serves the clients of its own namespace alone, in place of the
//! service's: Linkerd's destination controller looks a service's profile
//! up in the client's namespace first, then in the service's, and never
//! in a third. [`load`] reads, for a client anywhere, the profile in the
//! service's namespace (or one written without a namespace);
//! [`RetryResources::for_namespace`] serves a client whose namespace has
//! a profile of the service that one: its routes, budget and
//! `dstOverrides`, and no `TrafficSplit`, which linkerd-smi writes into
//! the profile in the service's namespace alone. Two profiles of one
//! service in two namespaces are two objects, not a duplicate; two in
//! one namespace are, wherever that namespace is (below).
//!
//! A service's **`GRPCRoute`s and `HTTPRoute`s are not ranked together.**
//! The Gateway API forbids merging the two kinds, and for a mesh (GEP-1294)
//! applies one kind of route to a Service, the `GRPCRoute`s when it has
//! both; Linkerd's policy controller does so, marking each such
//! `HTTPRoute` `Accepted: False` (`RouteReasonConflicted`) and serving the
//! service its `GRPCRoute`s alone. So here: a service with a `GRPCRoute`
//! from any file has its `HTTPRoute` rules set aside, each `HTTPRoute`
//! named in a [`ConfigWarning`] on the `parentRefs` entry that attached
//! it, and a request no `GRPCRoute` matches takes no `HTTPRoute` rule.
//! The decision is per service, as the routes are: a `parentRefs` port
//! does not divide a service here, where Linkerd decides per port. It
//! does divide an `EgressNetwork`'s routes (above): an `HTTPRoute` is set
//! aside where a `GRPCRoute` takes the same port, or every port.
//! Among themselves a `GRPCRoute`'s matches rank by the `GRPCRoute`'s
//! precedence, not by that of the paths they amount to: a match naming
//! the call's service first (given exactly or by a regular expression,
//! which matches the whole name), then one naming its method, then more
//! header matches; ties as for `HTTPRoute`s. A method alone, then, does
//! not outrank a service alone, though its path expression would outrank
//! the service's path prefix. A `RegularExpression` method match, whose
//! support the Gateway API leaves to implementations, is read as the
//! expression it is: Linkerd's admission accepts one, but its inbound
//! policy refuses the route and its outbound policy compares the
//! expression's text as an exact name (no call is named `List.*`), so
//! the route would match nothing there; matching the expression is what
//! its author meant. A match with header matches and no method takes every
//! call that carries those headers: the Gateway API makes `method`
//! optional, and Linkerd reads such a match the same way.
//! A `GRPCRoute` match takes only a `POST`, as in Linkerd, whose proxy
//! checks the method before the call's names: a gRPC call is a `POST`,
//! and a `GET` to a method's path is no call. A rule without matches
//! takes every request, whatever its method, as Linkerd's implicit
//! match does (the Gateway API asks only that it match every gRPC
//! request).
//!
//! The service's ServiceProfile routes come after every `HTTPRoute` (or
//! `GRPCRoute`) match, in the order they are written, as Linkerd tries
//! them. **This differs from Linkerd**, which ignores a service's
//! `HTTPRoute`s and `GRPCRoute`s entirely while it has a ServiceProfile
//! with routes or `dstOverrides`; [`ServiceRetryPolicy::set_aside_for_profile`]
//! makes that choice, with a warning for each route set aside, for a
//! client that serves the service as Linkerd does, called once every
//! spelling of the service's name is merged into one policy.
//!
//! A request none of a service's routes matches is on no route
//! ([`ServiceRetryPolicy::route_for`] gives `None`), and
//! [`ServiceRetryPolicy::unmatched`] says what it gets. For a service
//! whose routes are all `HTTPRoute` or `GRPCRoute` rules, a `404` (gRPC
//! `NOT_FOUND`), as a Linkerd user gets: the Gateway API requires a 404
//! when no rule matches a request; a route on a Service replaces the
//! service's implicit routing rather than adding to it (GEP-1294); and
//! Linkerd's proxy answers such a request with its no-route error, a
//! `404`, or `grpc-status: 5` (`NOT_FOUND`) for a gRPC call, for both
//! kinds of route. The `GRPCRoute` spec asks for no other code, such as
//! `UNIMPLEMENTED`. For a service with ServiceProfile routes, the
//! service itself, as Linkerd's default route takes what a profile's
//! routes leave; and for one without routes, the service, as for
//! Linkerd's default route.
//!
//! A value out of range is an error that names the document, the field,
//! the line and the allowed range. Values the resources' own schemas or
//! Linkerd's validation refuse are refused here too, since a file is read
//! without an API server to check it: `retry.codes` outside 400 to 599; a
//! retry budget's `budgetPercent` above 100 (GEP-3388); a retry budget in
//! Linkerd's spelling without all of `retryRatio`, `minRetriesPerSecond`
//! and `ttl`, which the ServiceProfile CRD requires together; a
//! `backendRequest` timeout longer than the `request` timeout; a
//! `metadata.creationTimestamp` that is not an RFC 3339 time; a
//! ServiceProfile response class's status range outside 100 to 599 or
//! with `max` below `min`; a ServiceProfile route without a name, which
//! would label its metrics with nothing; and a ServiceProfile request or
//! response condition that sets no field, which would otherwise hold for
//! every request (or call every response, a `200` too, a failure). Two
//! routes of one API group and kind with one namespace and name in one
//! text are refused, as two ServiceProfiles for one service in one
//! namespace are: the
//! cluster keeps one such object, the one applied last, and reading both
//! would serve rules that are not in force together anywhere. Two such
//! routes in two texts joined by [`RetryResources::merge`] are both
//! served, and the second is named in a [`ConfigWarning`]; so are two
//! ServiceProfiles for one service in one namespace, the service's or a
//! client's (the later of two in a client's namespace is served to its
//! clients in place of the earlier).
//!
//! ```text
//! profile.yaml: document 1 (ServiceProfile emoji.emojivoto.svc.cluster.local): spec.retryBudget.ttl: ttl 120s is outside the allowed range 1s to 60s at line 8 column 10
//! ```

use std::{fmt, sync::Arc};

use http::Request;
use mesh_core::{
    classify::Classify,
    resource::{
        BackendReference, DocumentContext, Documents, GrpcRoute, HttpRoute, ObjectMeta,
        ResourceError, ResourceErrorKind, ResourceName, TcpRoute, TlsRoute,
    },
    route::{HeaderEdit, Redirect, RouteMatch},
};

use self::precedence::{GrpcPrecedence, Origin, Ranked, RouteSource, RuleKind, RuleOrigin};
use crate::{BudgetConfig, RetryPolicy, Timeouts};

mod annotations;
mod budget;
mod dst_overrides;
mod duration;
mod hosts;
mod http_route;
mod l4_route;
mod numbers;
mod precedence;
mod service_profile;
mod traffic_split;

pub use self::{
    annotations::{InvalidAnnotation, LinkerdAnnotations},
    budget::{BudgetSpec, InvalidBudgetSpec, MinRetryRate},
    dst_overrides::{
        DstAuthority, DstBackend, DstOverride, DstWeight, InvalidDstAuthority, InvalidDstWeight,
    },
    duration::{GoDuration, InvalidGoDuration},
    hosts::{HostRank, RouteHosts, request_host},
    l4_route::{L4Backend, L4Route, L4RouteKind, PortRoutes},
    precedence::MatchRef,
    service_profile::{
        ProfileRoute, RequestCondition, ResponseClassSpec, ResponseCondition, ServiceProfile,
        ServiceProfileSpec, StatusBounds, StatusRange,
    },
    traffic_split::{SplitWeight, TrafficSplit, TrafficSplitBackend, TrafficSplitSpec},
};

/// One route's policy: which requests it covers, how they are retried, and
/// their timeouts. Build the route's layers with
/// [`layer`](Self::layer).
#[derive(Clone, Debug)]
pub struct RouteRetryPolicy {
    /// The route's name, for metric labels: the rule's `name`, else the
    /// `HTTPRoute`'s name; or the ServiceProfile route's `name`.
    pub name: Arc<str>,
    /// The requests on the route: those that meet any of these.
    pub matches: Vec<RouteMatch>,
    /// How the route's requests are retried.
    pub retry: RetryPolicy,
    /// The route's timeouts.
    pub timeouts: Timeouts,
    /// Where the route's requests go, and in what shares: an `HTTPRoute`
    /// rule's `backendRefs`. Empty means the service the route is
    /// attached to, as for a `ServiceProfile` route or a rule without
    /// `backendRefs`. Backends all of weight 0 (a valid rule, with a
    /// warning) send the route's requests nowhere: the Gateway API has
    /// them answered 500.
    pub backends: Vec<RouteBackend>,
    /// How the route edits each request's headers: an `HTTPRoute` rule's
    /// `RequestHeaderModifier` filters. [`layer`](Self::layer) does not
    /// apply it; an [`EditHeadersLayer`](mesh_core::route::EditHeadersLayer)
    /// outside the route's stack does, so that every attempt carries it.
    pub request_headers: HeaderEdit,
    /// How the route edits each response's headers: the rule's
    /// `ResponseHeaderModifier` filters.
    pub response_headers: HeaderEdit,
}

/// Where a route's requests go, and the share of them that goes there:
/// one of an `HTTPRoute` rule's `backendRefs`, a service or, on a route
/// attached to an `EgressNetwork`, the original destination. A canary
/// release is a rule with two, `weight: 90` on the stable service and
/// `weight: 10` on the new one.
///
/// The entry's `port` is not read: the outbound service it names already
/// lists its endpoints with their ports, and the original destination has
/// its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteBackend {
    /// The service's name; for the original destination, the name of the
    /// `EgressNetwork` the entry names, the route's parent.
    pub name: String,
    /// Its namespace: the entry's, else the route's; `None` when neither
    /// names one.
    pub namespace: Option<String>,
    /// Its share relative to the rule's other backends: the entry's
    /// `weight`, 1 when absent, at most [`MAX_BACKEND_WEIGHT`]. A backend
    /// of weight 0 gets no requests.
    pub weight: u32,
    /// What the entry names: a Service, or the parent `EgressNetwork`,
    /// which stands for the original destination.
    pub kind: BackendKind,
}

/// What a [`RouteBackend`] names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// A Kubernetes `Service` (an entry without `kind`, or of kind
    /// `Service` in the core group): the requests go to its endpoints.
    #[default]
    Service,
    /// The `EgressNetwork` the route is attached to (kind `EgressNetwork`,
    /// group `policy.linkerd.io`): the requests go on to the address they
    /// were sent to, outside the cluster, as Linkerd forwards them to the
    /// original destination. A rule without `backendRefs` on such a route
    /// goes there too, with no backend listed.
    OriginalDestination,
}

impl BackendKind {
    /// What the `backendRefs` entry `backend` names: the `EgressNetwork`
    /// (checked against the route's parents by the caller), or a Service
    /// (no `kind`, or `Service` in the core group). Any other kind is
    /// refused at the entry's `kind`, `entry` giving the entry's path.
    fn of(
        backend: &BackendReference,
        context: &DocumentContext<'_>,
        entry: impl FnOnce() -> String,
    ) -> Result<Self, ResourceError> {
        if backend.is_egress_network() {
            return Ok(Self::OriginalDestination);
        }
        let group = backend.group.as_deref().unwrap_or("");
        let kind = backend.kind.as_deref().unwrap_or("Service");
        if matches!(group, "" | "core") && kind == "Service" {
            return Ok(Self::Service);
        }
        Err(context.error(
            ResourceErrorKind::InvalidValue,
            &format!("{}.kind", entry()),
            format!(
                "backends of kind {kind} in group {group:?} are not supported, only Services \
                 and the route's parent EgressNetwork"
            ),
        ))
    }
}

/// What a [`ServiceRetryPolicy`]'s routes are attached to: the kind of
/// their `parentRefs` entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ParentKind {
    /// A Kubernetes `Service`: [`RetryResources::services`].
    #[default]
    Service,
    /// A Linkerd `EgressNetwork`, for the traffic it captures on its way
    /// out of the cluster: [`RetryResources::egress_networks`].
    EgressNetwork,
}

impl ParentKind {
    /// The parent's API group, as Linkerd's metrics label it
    /// (`parent_group`): `core`, or `policy.linkerd.io`.
    pub fn group(self) -> &'static str {
        match self {
            Self::Service => "core",
            Self::EgressNetwork => mesh_core::resource::POLICY_GROUP,
        }
    }

    /// The parent's kind (`parent_kind`): `Service` or `EgressNetwork`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::EgressNetwork => "EgressNetwork",
        }
    }
}

/// The largest `backendRefs` weight the Gateway API allows, which
/// mesh-core's resource reader holds every route to.
pub use mesh_core::resource::MAX_BACKEND_WEIGHT;

impl RouteRetryPolicy {
    /// Whether `req` is on this route.
    pub fn matches<B>(&self, req: &Request<B>) -> bool {
        self.matches.iter().any(|m| m.matches_request(req))
    }
}

/// A service's routes, and its retry budget; or an `EgressNetwork`'s
/// routes ([`parent`](Self::parent)), with the default budget. A request
/// takes the route of the first match it meets in
/// [`match_order`](Self::match_order).
#[derive(Clone, Debug)]
pub struct ServiceRetryPolicy {
    /// The service's name (or the `EgressNetwork`'s).
    pub name: String,
    /// The service's namespace, when the resources name one.
    pub namespace: Option<String>,
    /// What the routes are attached to.
    parent: ParentKind,
    /// The destination port [`for_port`](Self::for_port) selected the
    /// routes of, for an `EgressNetwork`: routes without a port of their
    /// own take it. `None` before a selection.
    port: Option<u16>,
    /// The budget its routes share: the ServiceProfile's `retryBudget`, or
    /// the default.
    pub budget: BudgetConfig,
    /// The routes, in the order they are read: each `HTTPRoute`'s (or
    /// `GRPCRoute`'s) rules, then the ServiceProfile's routes; a service
    /// with `GRPCRoute` rules has no `HTTPRoute` rules here, as they are
    /// set aside (see the [module](self) docs). Their matches are tried in
    /// [`match_order`](Self::match_order), not in this one. A route added
    /// here by hand is tried after every route read, in the order added;
    /// [`RetryResources::merge`] keeps the order of two files' routes.
    pub routes: Vec<RouteRetryPolicy>,
    /// The redirects of its routes that answer with one (an `HTTPRoute`
    /// rule's `RequestRedirect`), in route order; look one up with
    /// [`redirect`](Self::redirect). A route with a redirect answers each
    /// of its requests with it, and never forwards or retries them.
    ///
    /// They are kept beside the routes rather than in
    /// [`RouteRetryPolicy`], whose fields its users write out in full.
    pub redirects: Vec<RouteRedirect>,
    /// Where each route came from, by index into `routes`: what orders
    /// matches of equal precedence.
    origins: Vec<Origin>,
    /// [`match_order`](Self::match_order), worked out when the routes
    /// were read or merged.
    ranked: Ranked,
    /// The routes as read, before any `HTTPRoute` was set aside, when
    /// some are consumer routes: what
    /// [`for_namespace`](Self::for_namespace) selects from.
    read: Option<Box<ServiceRetryPolicy>>,
    /// The warnings for the `HTTPRoute`s set aside here, which a
    /// selection for one namespace replaces with its own.
    aside_warnings: Vec<ConfigWarning>,
    /// Where the service's ServiceProfile was read, when it has one.
    profile: Option<Arc<ProfileSource>>,
    /// The SMI `TrafficSplit` whose apex the service is, when it is one:
    /// its backends replace the profile's `dstOverrides`
    /// ([`dst_overrides`](Self::dst_overrides)).
    split: Option<Arc<SplitSource>>,
    /// The service's ServiceProfiles in other namespaces than its own,
    /// each for the clients of its namespace alone
    /// ([`for_namespace`](Self::for_namespace)).
    client_profiles: Vec<ClientProfile>,
    /// The `TLSRoute`s and `TCPRoute`s of the Service or `EgressNetwork`
    /// ([`tls_route`](Self::tls_route), [`tcp_route`](Self::tcp_route)).
    l4: l4_route::L4Routes,
}

/// A ServiceProfile in another namespace than its service's. Linkerd's
/// destination controller serves a client the profile of the service's
/// name in the client's own namespace when there is one, else the one in
/// the service's namespace (its primary and backup profile lookups), so
/// such a profile is served to the clients of its namespace alone, in
/// place of the service's own, and to no other client.
#[derive(Clone, Debug)]
struct ClientProfile {
    /// The namespace whose clients it serves: its `metadata.namespace`.
    namespace: String,
    /// Where it was read.
    source: Arc<ProfileSource>,
    /// Its `retryBudget`, or the default.
    budget: BudgetConfig,
    /// Its routes, as [`ServiceRetryPolicy::routes`] would hold them.
    routes: Vec<RouteRetryPolicy>,
    /// Their origins, all [`Origin::Profile`].
    origins: Vec<Origin>,
}

/// Where a ServiceProfile was read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ProfileSource {
    /// The text's name (a file).
    origin: String,
    /// The document, from 1.
    document: usize,
    /// The profile's `metadata.namespace`, when it names one.
    namespace: Option<String>,
    /// The profile's `metadata.name`.
    name: String,
    /// Its `dstOverrides` of weight above 0
    /// ([`ServiceRetryPolicy::dst_overrides`]).
    dst_overrides: Arc<[DstBackend]>,
    /// Whether it carries linkerd-smi's `smi.linkerd.io/skip` annotation,
    /// so that a `TrafficSplit` leaves its `dstOverrides` alone.
    smi_skip: bool,
}

impl ProfileSource {
    /// The profile as a warning names it: `profile.yaml: document 2
    /// (ServiceProfile emojivoto/emoji.emojivoto.svc.cluster.local)`.
    fn named(&self) -> String {
        document_named(
            "ServiceProfile",
            &self.origin,
            self.document,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// A resource as a warning names it: `{origin}: document {n} ({kind}
/// {namespace}/{name})`.
fn document_named(
    kind: &str,
    origin: &str,
    document: usize,
    namespace: Option<&str>,
    name: &str,
) -> String {
    let name = ResourceName::new(Some(kind), namespace, Some(name));
    format!("{origin}: document {document} ({name})")
}

/// A service's name, and its namespace when the resources name one.
type ServiceKey = (String, Option<String>);

/// Where an SMI `TrafficSplit` was read, and its backends.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SplitSource {
    /// The text's name (a file).
    origin: String,
    /// The document, from 1.
    document: usize,
    /// The split's `metadata.namespace`, when it names one.
    namespace: Option<String>,
    /// The split's `metadata.name`.
    name: String,
    /// Its backends of weight above 0, as `dstOverrides`.
    backends: Arc<[DstBackend]>,
}

impl SplitSource {
    /// The split as a warning names it, as [`ProfileSource::named`].
    fn named(&self) -> String {
        document_named(
            "TrafficSplit",
            &self.origin,
            self.document,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    /// A warning about the split's `field`.
    fn warning(&self, field: &str, message: String) -> ConfigWarning {
        ConfigWarning {
            origin: self.origin.clone(),
            document: self.document,
            kind: "TrafficSplit".to_owned(),
            namespace: self.namespace.clone(),
            name: Some(self.name.clone()),
            field: field.to_owned(),
            message,
        }
    }
}

/// What a request none of a service's routes matches gets
/// ([`ServiceRetryPolicy::unmatched`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// The service, as if it had no routes: Linkerd's default route.
    /// For a service without routes, or whose routes include a
    /// ServiceProfile's.
    Service,
    /// A `404` (gRPC `NOT_FOUND`), as Linkerd's proxy answers and the
    /// Gateway API requires: for a service whose routes are all
    /// `HTTPRoute` or `GRPCRoute` rules.
    NotFound,
    /// The `EgressNetwork`'s default route, which its `trafficPolicy`
    /// decides: the original destination for `Allow`, a refusal for
    /// `Deny`. Linkerd's policy controller serves an `EgressNetwork` its
    /// routes followed by that default route (`http-egress-allow` or
    /// `http-egress-deny`), where a Service's routes replace its own.
    EgressNetwork,
}

/// The route object a rule was read from: [`ServiceRetryPolicy::rule_route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRoute<'a> {
    /// Its API group: `gateway.networking.k8s.io` or `policy.linkerd.io`.
    pub group: &'a str,
    /// `HTTPRoute` or `GRPCRoute`.
    pub kind: &'static str,
    /// Its `metadata.namespace`; `None` when it was written without one,
    /// and so is in the namespace it is applied to.
    pub namespace: Option<&'a str>,
    /// Its `metadata.name`.
    pub name: &'a str,
}

/// The redirect of one of a service's routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRedirect {
    /// The route, as an index into [`ServiceRetryPolicy::routes`].
    pub route: usize,
    /// Its redirect.
    pub redirect: Redirect,
}

impl ServiceRetryPolicy {
    fn new(name: String, namespace: Option<String>, parent: ParentKind) -> Self {
        Self {
            name,
            namespace,
            parent,
            port: None,
            budget: BudgetConfig::default(),
            routes: Vec::new(),
            redirects: Vec::new(),
            origins: Vec::new(),
            ranked: Ranked::default(),
            read: None,
            aside_warnings: Vec::new(),
            profile: None,
            split: None,
            client_profiles: Vec::new(),
            l4: l4_route::L4Routes::default(),
        }
    }

    /// The namespace whose clients alone the profile read into this
    /// policy serves, when it is in another namespace than its service's
    /// (see [`ClientProfile`]).
    fn profile_clients(&self) -> Option<&str> {
        let own = self.profile.as_deref()?.namespace.as_deref()?;
        (self.namespace.as_deref() != Some(own)).then_some(own)
    }

    /// Serves the clients of `namespace` their own namespace's
    /// ServiceProfile of the service in place of the service's, when
    /// there is one ([`ClientProfile`]): its routes, budget and
    /// `dstOverrides`, and no `TrafficSplit`, which linkerd-smi writes
    /// into the profile in the service's namespace alone. Returns whether
    /// it did, so that the order is to be worked out again.
    fn apply_client_profile(&mut self, namespace: &str) -> bool {
        let Some(client) = self
            .client_profiles
            .iter()
            .rev()
            .find(|p| p.namespace == namespace)
            .cloned()
        else {
            return false;
        };
        let keep: Vec<bool> = (0..self.routes.len())
            .map(|i| !matches!(self.origins.get(i), Some(Origin::Profile(_))))
            .collect();
        self.retain_routes(&keep);
        self.origins.resize(self.routes.len(), Origin::Written);
        self.routes.extend(client.routes);
        self.origins.extend(client.origins);
        self.budget = client.budget;
        self.profile = Some(client.source);
        self.split = None;
        true
    }

    /// Every match of every route, in the order a request tries them: the
    /// `GRPCRoute` rules' by the `GRPCRoute` precedence, or, for a service
    /// without any, the `HTTPRoute` rules' by the Gateway API's HTTP
    /// precedence (see the [module](self) docs); then the ServiceProfile
    /// routes' (and any added to [`routes`](Self::routes) by hand) in the
    /// order written. The routes' `hostnames`, which depend on each
    /// request's host, rank before this order and are not in it: see
    /// [`hosts`](Self::hosts).
    pub fn match_order(&self) -> Vec<MatchRef> {
        match self.ranked.order(&self.routes, &self.origins) {
            Some(order) => order.to_vec(),
            None => precedence::match_order(&self.routes, &self.origins),
        }
    }

    /// Appends `other`'s routes and redirects, as if read after this
    /// service's, and keeps `other`'s budget when `other` has a
    /// ServiceProfile (the profile applied last is the one in force) or a
    /// budget other than the default.
    /// The order the matches are tried in is the precedence of both sets
    /// together, not one set's before the other's; and when either set
    /// has `GRPCRoute` rules, the `HTTPRoute` rules of both are set aside,
    /// as [`load`] sets them aside. Returns a [`ConfigWarning`] for each
    /// `HTTPRoute` set aside by the merge, as [`RetryResources::merge`]
    /// adds to its warnings: one the reader set aside before is not
    /// named again.
    pub fn merge(&mut self, other: Self) -> Vec<ConfigWarning> {
        self.merge_warning(other)
    }

    /// [`merge`](Self::merge), with a warning for each `HTTPRoute` set
    /// aside.
    fn merge_warning(&mut self, mut other: Self) -> Vec<ConfigWarning> {
        // The warnings about the split that each had already.
        let known = [self.split_warning(), other.split_warning()];
        let second_split = match (&self.split, &other.split) {
            (Some(first), Some(second)) if first != second => Some(second.warning(
                "spec.service",
                format!(
                    "a second TrafficSplit for service {}, after {}: linkerd-smi writes each \
                     into the service's ServiceProfile as it syncs it, so the one in force is \
                     the one synced last; this one, read last, is served",
                    self.name,
                    first.named()
                ),
            )),
            _ => None,
        };
        if self.read.is_some() || other.read.is_some() {
            let mut read = self.read.take().map_or_else(|| self.as_read(), |r| *r);
            read.append(other.read.take().map_or_else(|| other.as_read(), |r| *r));
            self.read = Some(Box::new(read));
        }
        self.append(other);
        let mut warnings = self.set_aside_http_routes();
        self.aside_warnings.extend(warnings.iter().cloned());
        self.rank();
        warnings.extend(second_split);
        warnings.extend(
            self.split_warning()
                .filter(|w| !known.iter().flatten().any(|k| k == w)),
        );
        warnings
    }

    /// The warning for a `TrafficSplit` beside a ServiceProfile with
    /// `dstOverrides` of its own, which linkerd-smi overwrites with the
    /// split's; or beside one with the `smi.linkerd.io/skip` annotation,
    /// which it leaves alone, the split then being set aside.
    fn split_warning(&self) -> Option<ConfigWarning> {
        let (split, profile) = (self.split.as_deref()?, self.profile.as_deref()?);
        if profile.smi_skip {
            return Some(split.warning(
                "spec.service",
                format!(
                    "set aside: {} carries the {} annotation, which linkerd-smi leaves as it \
                     is, and its own dstOverrides are served",
                    profile.named(),
                    traffic_split::SKIP_ANNOTATION
                ),
            ));
        }
        if profile.dst_overrides.is_empty() {
            return None;
        }
        Some(split.warning(
            "spec.service",
            format!(
                "replaces the dstOverrides of {}, as linkerd-smi writes a TrafficSplit's \
                 backends over those of its apex service's ServiceProfile",
                profile.named()
            ),
        ))
    }

    /// The service's `TrafficSplit`, when its backends are in force: when
    /// it has one, and no ServiceProfile with the `smi.linkerd.io/skip`
    /// annotation.
    fn split_in_force(&self) -> Option<&SplitSource> {
        let split = self.split.as_deref()?;
        let skipped = self.profile.as_deref().is_some_and(|p| p.smi_skip);
        (!skipped).then_some(split)
    }

    /// This service as read, for a selection to start from: itself, with
    /// what it has set aside (nothing a selection could bring back, as it
    /// has no consumer routes).
    fn as_read(&self) -> Self {
        Self {
            read: None,
            aside_warnings: Vec::new(),
            ..self.clone()
        }
    }

    /// Appends `other`'s routes and redirects after this service's, and
    /// keeps `other`'s budget when `other` has a ServiceProfile or a budget
    /// other than the default.
    fn append(&mut self, other: Self) {
        let offset = self.routes.len();
        // Routes added by hand have no origin; they stay where they are.
        self.origins.resize(offset, Origin::Written);
        let after = self
            .origins
            .iter()
            .filter_map(|o| match o {
                Origin::Rule(r) => Some(r.position + 1),
                Origin::Written | Origin::Profile(_) => None,
            })
            .max()
            .unwrap_or(0);
        let mut origins = other.origins;
        origins.resize(other.routes.len(), Origin::Written);
        self.origins
            .extend(origins.into_iter().map(|origin| match origin {
                Origin::Rule(r) => Origin::Rule(RuleOrigin {
                    position: r.position + after,
                    ..r
                }),
                other => other,
            }));
        self.routes.extend(other.routes);
        self.redirects
            .extend(other.redirects.into_iter().map(|r| RouteRedirect {
                route: r.route + offset,
                redirect: r.redirect,
            }));
        if other.profile.is_some() || other.budget != BudgetConfig::default() {
            self.budget = other.budget;
        }
        if other.profile.is_some() {
            self.profile = other.profile;
        }
        if other.split.is_some() {
            self.split = other.split;
        }
        // Of two for one namespace, the later is served.
        self.client_profiles.extend(other.client_profiles);
        self.l4.append(other.l4);
    }

    /// Whether any of the routes is a consumer route: one in another
    /// namespace than the service's.
    fn has_consumer_routes(&self) -> bool {
        self.origins
            .iter()
            .any(|o| matches!(o, Origin::Rule(rule) if rule.consumer.is_some()))
            || self.l4.has_consumer_routes()
    }

    /// The service as a client in `namespace` is served it, with a warning
    /// for each `HTTPRoute` set aside for it: its producer routes, which
    /// apply to every client, and the consumer routes of `namespace`; the
    /// consumer routes of other namespaces are left out before the
    /// `GRPCRoute`s set `HTTPRoute`s aside and before the matches are
    /// ranked, as Linkerd's policy controller serves each client
    /// namespace the producer routes with its own consumer routes. See
    /// the [module](self) docs.
    ///
    /// A route written without a namespace is in the client's, and its
    /// matches rank as that namespace's where they tie with others (see
    /// the [module](self) docs).
    ///
    /// A service with consumer routes is selected from its routes as
    /// [`load`] read them and [`merge`](Self::merge) joined them: a change
    /// made by hand to [`routes`](Self::routes) or
    /// [`redirects`](Self::redirects) since then is not in the selection.
    /// A service without consumer routes is served whole, as it is.
    ///
    /// A client whose namespace has a ServiceProfile of the service is
    /// served that one in place of the service's, as Linkerd's
    /// destination controller serves it (see the [module](self) docs).
    pub fn for_namespace(&self, namespace: &str) -> (Self, Vec<ConfigWarning>) {
        let Some(read) = &self.read else {
            let mut selected = self.clone();
            let placed = selected.apply_in(namespace);
            if selected.apply_client_profile(namespace) || placed {
                selected.rank();
            }
            return (selected, self.aside_warnings.clone());
        };
        let mut selected = read.as_read();
        selected.apply_in(namespace);
        let keep: Vec<bool> = (0..selected.routes.len())
            .map(|i| match selected.origins.get(i) {
                Some(Origin::Rule(rule)) => rule.consumer.as_deref().is_none_or(|c| c == namespace),
                Some(Origin::Written | Origin::Profile(_)) | None => true,
            })
            .collect();
        selected.retain_routes(&keep);
        selected.l4.retain_for(namespace);
        selected.apply_client_profile(namespace);
        if selected.parent == ParentKind::EgressNetwork {
            // What for_port selects from: the routes before any is set
            // aside, since one set aside here may apply on a port alone.
            selected.read = Some(Box::new(selected.as_read()));
        }
        let warnings = selected.set_aside_http_routes();
        selected.aside_warnings.clone_from(&warnings);
        selected.rank();
        (selected, warnings)
    }

    /// What the routes are attached to: a Service, or an `EgressNetwork`.
    pub fn parent(&self) -> ParentKind {
        self.parent
    }

    /// The destination port [`for_port`](Self::for_port) selected these
    /// routes for; `None` when they were not selected for one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port route `index` (of [`routes`](Self::routes)) takes
    /// traffic to, for an `EgressNetwork`'s route: the `port` of the
    /// `parentRefs` entry that attached it. `None` for a route that takes
    /// every port, for a Service's route (a `parentRefs` port does not
    /// divide a service here, see the [module](self) docs), and for a
    /// ServiceProfile route or one added by hand.
    pub fn parent_port(&self, index: usize) -> Option<u16> {
        match self.origins.get(index) {
            Some(Origin::Rule(rule)) => rule.source.port,
            Some(Origin::Written | Origin::Profile(_)) | None => None,
        }
    }

    /// The ports the routes name, each once, lowest first; empty when every
    /// route takes every port, as a Service's do. A planner plans each of
    /// these with [`for_port`](Self::for_port) once, and any other port
    /// once more, with the routes that take every port. The HTTP routes'
    /// ports only: a `TLSRoute` or `TCPRoute` names its own
    /// ([`L4Route::port`]), and [`routes_on`](Self::routes_on) says which
    /// kind a port is served.
    pub fn ports(&self) -> Vec<u16> {
        let read = self.read.as_deref().unwrap_or(self);
        let mut ports: Vec<u16> = read
            .origins
            .iter()
            .filter_map(|origin| match origin {
                Origin::Rule(rule) => rule.source.port,
                Origin::Written | Origin::Profile(_) => None,
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The `TLSRoute`s of the Service or `EgressNetwork`, in the order
    /// Linkerd serves a port's: the oldest by `metadata.creationTimestamp`
    /// first, then by `{namespace}/{name}` (see
    /// [`tls_route`](Self::tls_route)). Each takes the port its
    /// `parentRefs` entry names, or every port, a Service's as an
    /// `EgressNetwork`'s.
    pub fn tls_routes(&self) -> &[L4Route] {
        &self.l4.tls
    }

    /// The `TCPRoute`s of the Service or `EgressNetwork`, in the order of
    /// [`tls_routes`](Self::tls_routes).
    pub fn tcp_routes(&self) -> &[L4Route] {
        &self.l4.tcp
    }

    /// The `TLSRoute` that takes a TLS connection to destination port
    /// `port` whose ClientHello names `sni` (`None` when it names none),
    /// or `None`: for an `EgressNetwork`, the network's default route
    /// (`tls-egress-allow` or `tls-egress-deny`, by its `trafficPolicy`)
    /// takes it; for a Service, no route does, and Linkerd's proxy closes
    /// the connection.
    ///
    /// Of the routes that take `port` (attached with it, or without a
    /// port) and whose hostnames match `sni`, the one that matches it
    /// most specifically ([`HostRank`]): an exact hostname, then the
    /// longest wildcard (`*.example.com` takes `api.example.com`, not
    /// `example.com`), then a route without hostnames, which takes any
    /// SNI and a connection without one; among those alike, the first in
    /// [`tls_routes`](Self::tls_routes), the oldest. As in Linkerd's
    /// proxy; hostnames compare without regard to case or a final dot.
    /// Allocates nothing.
    pub fn tls_route(&self, port: u16, sni: Option<&str>) -> Option<&L4Route> {
        self.l4.tls_route(port, sni)
    }

    /// The `TCPRoute` that takes a connection to destination port `port`:
    /// the first in [`tcp_routes`](Self::tcp_routes) attached with that
    /// port or without one, the oldest, as Linkerd's proxy takes the first
    /// route it is served; `None` when none does, and the parent's default
    /// takes it: the Service itself, or the network's default route
    /// (`tcp-egress-allow` or `tcp-egress-deny`).
    /// Allocates nothing.
    pub fn tcp_route(&self, port: u16) -> Option<&L4Route> {
        self.l4.tcp_route(port)
    }

    /// Which kind of route takes destination port `port` of an
    /// `EgressNetwork`, as Linkerd's policy controller decides a port's
    /// protocol from the routes attached to it (with that port, or
    /// without one): its `GRPCRoute`s or `HTTPRoute`s when it has any,
    /// else its `TLSRoute`s, else its `TCPRoute`s; [`PortRoutes::None`]
    /// when it has none. A `TLSRoute` on a port that an `HTTPRoute` also
    /// takes is not served there. A Service's HTTP routes take every port
    /// here, so any of them makes each of its ports [`PortRoutes::Http`]:
    /// a listener that serves no HTTP asks
    /// [`l4_routes_on`](Self::l4_routes_on).
    pub fn routes_on(&self, port: u16) -> PortRoutes {
        let read = self.read.as_deref().unwrap_or(self);
        let takes = |p: Option<u16>| p.is_none_or(|p| p == port);
        let http = read.origins.iter().any(|origin| match origin {
            Origin::Rule(rule) => takes(rule.source.port),
            Origin::Written | Origin::Profile(_) => false,
        });
        if http {
            PortRoutes::Http
        } else if read.l4.tls.iter().any(|r| takes(r.port)) {
            PortRoutes::Tls
        } else if read.l4.tcp.iter().any(|r| takes(r.port)) {
            PortRoutes::Tcp
        } else {
            PortRoutes::None
        }
    }

    /// Which kind of connection route takes port `port`, for a listener
    /// that serves no HTTP (a Service's TCP port, a `CONNECT` tunnel),
    /// where the HTTP routes that [`routes_on`](Self::routes_on) puts
    /// first cannot take a connection: [`PortRoutes::Tls`] when a
    /// `TLSRoute` takes the port (attached with it, or without a port),
    /// else [`PortRoutes::Tcp`] when a `TCPRoute` does, else
    /// [`PortRoutes::None`]; never [`PortRoutes::Http`]. Linkerd's policy
    /// controller serves a port with `TLSRoute`s those alone, its
    /// `TCPRoute`s set aside (`to_proto` in linkerd2's
    /// `policy-controller/grpc/src/outbound.rs`). Allocates nothing.
    pub fn l4_routes_on(&self, port: u16) -> PortRoutes {
        if self.l4.tls.iter().any(|r| r.port.is_none_or(|p| p == port)) {
            PortRoutes::Tls
        } else if self.l4.tcp.iter().any(|r| r.port.is_none_or(|p| p == port)) {
            PortRoutes::Tcp
        } else {
            PortRoutes::None
        }
    }

    /// Whether the Service or `EgressNetwork` has any `TLSRoute` or
    /// `TCPRoute`, on any port.
    pub fn has_l4_routes(&self) -> bool {
        !self.l4.tls.is_empty() || !self.l4.tcp.is_empty()
    }

    /// The routes of an `EgressNetwork` for traffic to destination port
    /// `port`, with a warning for each `HTTPRoute` set aside there: those
    /// attached with that `port`, and those attached without one, which
    /// take every port, as Linkerd's policy controller serves each port
    /// of a parent. The `GRPCRoute`s among them set the `HTTPRoute`s aside
    /// and the matches are ranked among them alone, so that a `GRPCRoute`
    /// on another port sets nothing aside here. Selected from the routes
    /// as read, as [`for_namespace`](Self::for_namespace) selects (which
    /// may come before or after).
    ///
    /// A Service's routes, which a port does not divide here, are
    /// returned whole, as they are.
    pub fn for_port(&self, port: u16) -> (Self, Vec<ConfigWarning>) {
        if self.parent != ParentKind::EgressNetwork {
            return (self.clone(), self.aside_warnings.clone());
        }
        let mut read = self.read.as_deref().unwrap_or(self).as_read();
        read.port = Some(port);
        let keep: Vec<bool> = (0..read.routes.len())
            .map(|i| read.parent_port(i).is_none_or(|p| p == port))
            .collect();
        read.retain_routes(&keep);
        read.l4.retain_port(port);
        let mut selected = read.clone();
        selected.read = Some(Box::new(read));
        let warnings = selected.set_aside_http_routes();
        selected.aside_warnings.clone_from(&warnings);
        selected.rank();
        (selected, warnings)
    }

    /// Places each route written without a namespace in `namespace`, the
    /// client's, where ties rank it ([`RuleOrigin::apply_in`]). Returns
    /// whether any rank changed, so that the order is to be worked out
    /// again.
    fn apply_in(&mut self, namespace: &str) -> bool {
        let mut changed = false;
        for origin in &mut self.origins {
            if let Origin::Rule(rule) = origin {
                changed |= rule.apply_in(namespace);
            }
        }
        changed | self.l4.apply_in(namespace)
    }

    /// Keeps the routes (with their origins and redirects) whose entry of
    /// `keep` is true.
    fn retain_routes(&mut self, keep: &[bool]) {
        let mut index = Vec::with_capacity(keep.len());
        let mut kept = 0;
        for &k in keep {
            index.push(k.then_some(kept));
            kept += usize::from(k);
        }
        self.redirects = std::mem::take(&mut self.redirects)
            .into_iter()
            .filter_map(|r| {
                let route = index.get(r.route).copied().flatten()?;
                Some(RouteRedirect { route, ..r })
            })
            .collect();
        let mut i = 0;
        self.routes.retain(|_| {
            i += 1;
            keep.get(i - 1).copied().unwrap_or(true)
        });
        let mut i = 0;
        self.origins.retain(|_| {
            i += 1;
            keep.get(i - 1).copied().unwrap_or(true)
        });
    }

    /// Works out [`match_order`](Self::match_order) for the routes as they
    /// are now, for every lookup to use until they change.
    fn rank(&mut self) {
        self.ranked = Ranked::new(&self.routes, &self.origins);
        self.l4.rank();
    }

    /// Sets the service's `HTTPRoute` rules aside when it has `GRPCRoute`
    /// rules: Linkerd serves a service one kind of route or the other,
    /// and the `GRPCRoute`s win (see the [module](self) docs). Returns a
    /// warning for each `HTTPRoute` set aside, naming the `GRPCRoute`s
    /// that took its place; or, for a service
    /// [`served_by_profile`](Self::served_by_profile), the profile, which
    /// serves it in place of either kind
    /// ([`set_aside_for_profile`](Self::set_aside_for_profile)).
    ///
    /// An `EgressNetwork`'s routes are divided by port: an `HTTPRoute`
    /// rule is set aside where a `GRPCRoute` takes every port it takes,
    /// the `GRPCRoute` having no port, or the same one (a route without a
    /// port takes [`port`](Self::port) once a selection has one). A
    /// service's routes have no port here, so any `GRPCRoute` sets every
    /// `HTTPRoute` aside.
    fn set_aside_http_routes(&mut self) -> Vec<ConfigWarning> {
        fn rule(origin: Option<&Origin>) -> Option<&RuleOrigin> {
            match origin {
                Some(Origin::Rule(rule)) => Some(rule),
                _ => None,
            }
        }
        let selected = self.port;
        let port = |rule: &RuleOrigin| rule.source.port.or(selected);
        // Whether GRPCRoute rule `g` takes every port HTTPRoute rule `h`
        // takes.
        let covers = |g: &RuleOrigin, h: &RuleOrigin| port(g).is_none() || port(g) == port(h);
        let grpc: Vec<&RuleOrigin> = self
            .origins
            .iter()
            .filter_map(|o| rule(Some(o)))
            .filter(|o| o.is_grpc())
            .collect();
        if grpc.is_empty() {
            return Vec::new();
        }
        let keep: Vec<bool> = (0..self.routes.len())
            .map(|i| {
                rule(self.origins.get(i))
                    .is_none_or(|h| h.is_grpc() || !grpc.iter().any(|g| covers(g, h)))
            })
            .collect();
        let parent = match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        };
        // A service its profile serves alone is served neither kind: name
        // the profile, which sets the GRPCRoutes aside too
        // (set_aside_for_profile), rather than the GRPCRoutes.
        let profile = self.profile_aside_message();
        let mut warnings: Vec<ConfigWarning> = Vec::new();
        for (i, origin) in self.origins.iter().enumerate() {
            let Some(h) = rule(Some(origin)) else {
                continue;
            };
            let source = &h.source;
            if keep.get(i).copied().unwrap_or(true)
                || warnings
                    .iter()
                    .any(|w| w.origin == source.origin && w.document == source.document)
            {
                continue;
            }
            let message = profile.clone().unwrap_or_else(|| {
                let mut winners: Vec<&RuleOrigin> = Vec::new();
                for g in grpc.iter().filter(|g| covers(g, h)) {
                    if !winners.iter().any(|w| w.route == g.route) {
                        winners.push(g);
                    }
                }
                let winners = winners
                    .iter()
                    .map(|g| g.source.named(None).to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                match self.parent {
                    ParentKind::Service => format!(
                        "set aside for service {parent}, whose GRPCRoutes ({winners}) take its \
                         requests: a service is served its GRPCRoutes or its HTTPRoutes, not \
                         both, and GRPCRoutes win, as in Linkerd (GEP-1294)"
                    ),
                    ParentKind::EgressNetwork => {
                        let at = port(h).map(|p| format!(" on port {p}")).unwrap_or_default();
                        format!(
                            "set aside for EgressNetwork {parent}{at}, whose GRPCRoutes \
                             ({winners}) take its traffic{at}: a port of an EgressNetwork is \
                             served its GRPCRoutes or its HTTPRoutes, not both, and GRPCRoutes \
                             win, as in Linkerd (GEP-1294)"
                        )
                    }
                }
            });
            warnings.push(ConfigWarning {
                origin: source.origin.clone(),
                document: source.document,
                kind: "HTTPRoute".to_owned(),
                namespace: source.namespace.clone(),
                name: Some(source.name.clone()),
                field: format!("spec.parentRefs[{}]", source.parent),
                message,
            });
        }
        self.retain_routes(&keep);
        warnings
    }

    /// Whether a client is served the service by its ServiceProfile
    /// alone: the profile has routes, or `dstOverrides` of weight above 0
    /// ([`dst_overrides`](Self::dst_overrides)). Linkerd's proxy decides
    /// so (`has_routes_or_targets`, read by `should_override_policy` in
    /// linkerd2-proxy's `linkerd/app/outbound/src/http/logical/profile.rs`):
    /// such a profile replaces the service's `HTTPRoute`s and
    /// `GRPCRoute`s; one with neither, such as one that only sets
    /// `retryBudget`, leaves them in charge.
    pub fn served_by_profile(&self) -> bool {
        let profile_routes = self
            .origins
            .iter()
            .any(|origin| matches!(origin, Origin::Profile(_)));
        profile_routes || !self.dst_overrides().is_empty()
    }

    /// Sets every `HTTPRoute` and `GRPCRoute` rule aside when the service
    /// is [`served_by_profile`](Self::served_by_profile), as Linkerd's
    /// proxy does: the profile's routes are tried alone, then its default
    /// route ([`unmatched`](Self::unmatched) is then
    /// [`Unmatched::Service`]); the rules' timeouts, retries, filters and
    /// `backendRefs` do not apply. Returns a warning for each route set
    /// aside, on the `parentRefs` entry that attached it, naming the
    /// profile; none when the service is not served by its profile.
    ///
    /// [`load`] does not call this: it serves a service's rules before
    /// its profile routes (see the [module](self) docs), and a client
    /// that merges the routes of several spellings of one service
    /// ([`merge`](Self::merge)) decides once they are merged.
    pub fn set_aside_for_profile(&mut self) -> Vec<ConfigWarning> {
        let Some(message) = self.profile_aside_message() else {
            return Vec::new();
        };
        let mut warnings: Vec<ConfigWarning> = Vec::new();
        let mut keep = Vec::with_capacity(self.routes.len());
        for i in 0..self.routes.len() {
            let Some(Origin::Rule(rule)) = self.origins.get(i) else {
                keep.push(true);
                continue;
            };
            keep.push(false);
            let source = &rule.source;
            if warnings
                .iter()
                .any(|w| w.origin == source.origin && w.document == source.document)
            {
                continue;
            }
            warnings.push(ConfigWarning {
                origin: source.origin.clone(),
                document: source.document,
                kind: if rule.is_grpc() {
                    "GRPCRoute"
                } else {
                    "HTTPRoute"
                }
                .to_owned(),
                namespace: source.namespace.clone(),
                name: Some(source.name.clone()),
                field: format!("spec.parentRefs[{}]", source.parent),
                message: message.clone(),
            });
        }
        if !warnings.is_empty() {
            self.retain_routes(&keep);
            self.rank();
        }
        warnings
    }

    /// The message of a warning for a route set aside because the
    /// service is [`served_by_profile`](Self::served_by_profile), naming
    /// what serves it: the profile with routes, else what its
    /// `dstOverrides` come from. `None` when it is not served by its
    /// profile.
    fn profile_aside_message(&self) -> Option<String> {
        if !self.served_by_profile() {
            return None;
        }
        let service = match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        };
        // What serves the service: the profile with routes, else what
        // its dstOverrides come from (a TrafficSplit, when one is in
        // force).
        let has_routes = self.origins.iter().any(|o| matches!(o, Origin::Profile(_)));
        // A split's user wrote no ServiceProfile: say how the split comes
        // to be served as one.
        let how = "Linkerd's proxy serves a service whose ServiceProfile has routes or \
                   dstOverrides by the profile";
        let (profile, how) = match (&self.profile, self.split_in_force()) {
            (Some(profile), _) if has_routes => (profile.named(), how.to_owned()),
            (_, Some(split)) => (
                split.named(),
                format!(
                    "linkerd-smi writes a TrafficSplit's backends into its apex service's \
                     ServiceProfile as dstOverrides, and {how}"
                ),
            ),
            (Some(profile), None) => (profile.named(), how.to_owned()),
            (None, None) => ("its ServiceProfile".to_owned(), how.to_owned()),
        };
        Some(format!(
            "set aside for {profile}, which serves service {service} alone: {how}, and none of \
             this route's rules, timeouts, retries or filters apply"
        ))
    }

    /// What a request none of the service's routes matches gets: a 404
    /// ([`Unmatched::NotFound`]) when every route is an `HTTPRoute` or
    /// `GRPCRoute` rule, which replace the service's own routing; else
    /// the service itself ([`Unmatched::Service`]), as Linkerd's default
    /// route takes what a ServiceProfile's routes leave. A route added by
    /// hand to [`routes`](Self::routes) counts as a ServiceProfile's. See
    /// the [module](self) docs.
    ///
    /// For an `EgressNetwork`, whatever its routes,
    /// [`Unmatched::EgressNetwork`].
    ///
    /// A service [`served_by_profile`](Self::served_by_profile) for its
    /// `dstOverrides` alone, with rules beside them, is answered 404 here
    /// until [`set_aside_for_profile`](Self::set_aside_for_profile) sets
    /// the rules aside, as Linkerd's proxy does; then the service.
    pub fn unmatched(&self) -> Unmatched {
        if self.parent == ParentKind::EgressNetwork {
            return Unmatched::EgressNetwork;
        }
        let rules = (0..self.routes.len())
            .filter(|&i| matches!(self.origins.get(i), Some(Origin::Rule(_))))
            .count();
        if rules > 0 && rules == self.routes.len() {
            Unmatched::NotFound
        } else {
            Unmatched::Service
        }
    }

    /// The redirect of route `index` (of [`routes`](Self::routes)), if it
    /// has one.
    pub fn redirect(&self, index: usize) -> Option<&Redirect> {
        self.redirects
            .binary_search_by_key(&index, |r| r.route)
            .ok()
            .and_then(|i| self.redirects.get(i))
            .map(|r| &r.redirect)
    }

    /// Where route `index` (of [`routes`](Self::routes)) was read, to
    /// point a message about it at its rule: its text, document, kind and
    /// name, and the rule, as a [`ConfigWarning`] writes them, such as
    /// `policy.yaml: document 4 (HTTPRoute emojivoto/voting-canary): spec.rules[0]`
    /// (`(HTTPRoute voting-canary)` for a route written without a
    /// namespace). The rule the Gateway API gives an `HTTPRoute` written
    /// without `rules` is at `spec.rules`: no document has a
    /// `spec.rules[0]` to point at, and `spec.rules` is the field to write
    /// to change it.
    /// `None` for a ServiceProfile route and one added by hand.
    pub fn rule_source(&self, index: usize) -> Option<String> {
        let Some(Origin::Rule(rule)) = self.origins.get(index) else {
            return None;
        };
        let source = &rule.source;
        let kind = if rule.is_grpc() {
            "GRPCRoute"
        } else {
            "HTTPRoute"
        };
        let resource = source.named(Some(kind));
        let field = if rule.defaulted {
            "spec.rules".to_owned()
        } else {
            format!("spec.rules[{}]", rule.rule)
        };
        Some(format!(
            "{}: document {} ({resource}): {field}",
            source.origin, source.document
        ))
    }

    /// Where the resources that name this service were read, each as a
    /// [`ConfigWarning`] names its place: an `HTTPRoute` or `GRPCRoute`
    /// at the `parentRefs` entry that attaches it
    /// (`routes.yaml: document 1 (HTTPRoute emojivoto/web): spec.parentRefs[0]`),
    /// a ServiceProfile at `metadata.name` (one in a client's namespace
    /// too), a `TrafficSplit` at `spec.service`; each once, in that
    /// order. What a message about all of them names, such as a client's
    /// that does not call the service and so uses none of them.
    pub fn places(&self) -> Vec<String> {
        let mut places: Vec<String> = Vec::new();
        let read = self.read.as_deref().unwrap_or(self);
        for origin in &read.origins {
            let Origin::Rule(rule) = origin else {
                continue;
            };
            let source = &rule.source;
            let kind = if rule.is_grpc() {
                "GRPCRoute"
            } else {
                "HTTPRoute"
            };
            let place = format!(
                "{}: document {} ({}): spec.parentRefs[{}]",
                source.origin,
                source.document,
                source.named(Some(kind)),
                source.parent
            );
            if !places.contains(&place) {
                places.push(place);
            }
        }
        for route in read.l4.iter() {
            let place = route.place();
            if !places.contains(&place) {
                places.push(place);
            }
        }
        // HTTPRoutes set aside for GRPCRoutes name the service too.
        for aside in &self.aside_warnings {
            let name = ResourceName::new(
                Some(&aside.kind),
                aside.namespace.as_deref(),
                aside.name.as_deref(),
            );
            let place = format!(
                "{}: document {} ({name}): {}",
                aside.origin, aside.document, aside.field
            );
            if !places.contains(&place) {
                places.push(place);
            }
        }
        let profiles = self
            .profile
            .iter()
            .chain(self.client_profiles.iter().map(|p| &p.source));
        for profile in profiles {
            let place = format!("{}: metadata.name", profile.named());
            if !places.contains(&place) {
                places.push(place);
            }
        }
        if let Some(split) = &self.split {
            places.push(format!("{}: spec.service", split.named()));
        }
        places
    }

    /// The `HTTPRoute` or `GRPCRoute` route `index` (of
    /// [`routes`](Self::routes)) is a rule of, as a cluster names the
    /// object: what metrics label it with (Linkerd's `route_group`,
    /// `route_kind`, `route_namespace` and `route_name`). `None` for a
    /// ServiceProfile route and one added by hand.
    pub fn rule_route(&self, index: usize) -> Option<RuleRoute<'_>> {
        let Some(Origin::Rule(rule)) = self.origins.get(index) else {
            return None;
        };
        let namespace = rule
            .route
            .split_once('/')
            .map(|(namespace, _)| namespace)
            .filter(|namespace| !namespace.is_empty());
        Some(RuleRoute {
            group: &rule.source.group,
            kind: if rule.is_grpc() {
                "GRPCRoute"
            } else {
                "HTTPRoute"
            },
            namespace,
            name: &rule.source.name,
        })
    }

    /// The `hostnames` of route `index` (of [`routes`](Self::routes)):
    /// those of the `HTTPRoute` or `GRPCRoute` its rule is of; none, which
    /// take any host, for a ServiceProfile route or one added by hand. A
    /// router that tries the routes in [`match_order`](Self::match_order)
    /// takes, of the matches a request meets, one whose route's hostnames
    /// rank highest for its host ([`RouteHosts::rank`]), the first in that
    /// order among equals; and skips those whose hostnames do not match,
    /// as [`route_for`](Self::route_for) does.
    pub fn hosts(&self, index: usize) -> RouteHosts {
        match self.origins.get(index) {
            Some(Origin::Rule(rule)) => rule.hosts.clone(),
            Some(Origin::Written | Origin::Profile(_)) | None => RouteHosts::default(),
        }
    }

    /// The rules that classify the responses of route `index` (of
    /// [`routes`](Self::routes)): those of its ServiceProfile route's
    /// `responseClasses`, a status taking the class of the first one that
    /// matches it and 5xx failing when none does, as in Linkerd; a class
    /// that matches a gRPC response's status decides before its
    /// `grpc-status`, which decides only when none does (mesh-core's
    /// [`Classify::with_class_statuses`]). `None` for a ServiceProfile
    /// route without classes, an `HTTPRoute` or `GRPCRoute` rule, or a
    /// route added by hand: their responses are classified as any other.
    ///
    /// Linkerd classifies a profile route's responses by its classes in
    /// its metrics as well as in its retries (`classify::Request::Profile`
    /// in linkerd2-proxy's `linkerd/app/core/src/classify.rs`), so a 500
    /// a class calls a success is counted as one. An `isRetryable`
    /// route's [`retry`](RouteRetryPolicy::retry) judges by the same
    /// classes.
    pub fn response_classes(&self, index: usize) -> Option<&Classify> {
        match self.origins.get(index) {
            Some(Origin::Profile(classes)) => classes.as_ref(),
            _ => None,
        }
    }

    /// The route `req` is on, if any. Of the matches it meets, that of
    /// the one whose route's `hostnames` match its host most specifically
    /// ([`HostRank`]): an exact hostname, then a wildcard, then a route
    /// that names none; among those equally specific, the first in
    /// [`match_order`](Self::match_order). A route whose hostnames do not
    /// match its host does not take it (see the [module](self) docs). The
    /// order is worked out once, when the routes are read or merged; after
    /// a change by hand to [`routes`](Self::routes) that could change it,
    /// this works it out afresh on each call. A request on no route is not
    /// retried and has no timeout.
    pub fn route_for<B>(&self, req: &Request<B>) -> Option<&RouteRetryPolicy> {
        let fresh;
        let (order, hosted) = match self.ranked.order(&self.routes, &self.origins) {
            Some(order) => (order, self.ranked.hosted()),
            None => {
                fresh = precedence::match_order(&self.routes, &self.origins);
                (&fresh[..], precedence::hosted(&self.origins))
            }
        };
        let meets = |at: &MatchRef| {
            self.routes
                .get(at.route)
                .and_then(|r| r.matches.get(at.index))
                .is_some_and(|m| m.matches_request(req))
        };
        if !hosted {
            return order
                .iter()
                .find(|at| meets(at))
                .and_then(|at| self.routes.get(at.route));
        }
        let host = request_host(req.uri(), req.headers());
        let mut best: Option<(HostRank, usize)> = None;
        for at in order {
            let rank = match self.origins.get(at.route) {
                Some(Origin::Rule(rule)) => rule.hosts.rank_host(host),
                Some(Origin::Written | Origin::Profile(_)) | None => Some(HostRank::Any),
            };
            let Some(rank) = rank else { continue };
            if best.is_none_or(|(r, _)| rank > r) && meets(at) {
                best = Some((rank, at.route));
            }
        }
        best.and_then(|(_, route)| self.routes.get(route))
    }
}

/// What [`load`] read.
#[derive(Clone, Debug, Default)]
pub struct RetryResources {
    /// The services, in the order they were first named.
    pub services: Vec<ServiceRetryPolicy>,
    /// The `EgressNetwork`s that routes are attached to, in the order
    /// they were first named, each with its routes (see the [module](self)
    /// docs): apart from the services, as a network and a service of one
    /// name are two parents.
    pub egress_networks: Vec<ServiceRetryPolicy>,
    /// What was read but is not applied.
    pub warnings: Vec<ConfigWarning>,
}

impl RetryResources {
    /// The policy of service `name` in `namespace`.
    pub fn service(&self, name: &str, namespace: Option<&str>) -> Option<&ServiceRetryPolicy> {
        find(&self.services, name, namespace)
    }

    /// The routes of `EgressNetwork` `name` in `namespace`, every port's:
    /// select a destination port's with
    /// [`ServiceRetryPolicy::for_port`].
    pub fn egress_network(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Option<&ServiceRetryPolicy> {
        find(&self.egress_networks, name, namespace)
    }

    /// Adds what `other` read (another file's resources) as if read after
    /// these: its warnings, and its services and `EgressNetwork`s, each
    /// merged into the one of the same name and namespace
    /// ([`ServiceRetryPolicy::merge`]) or added after the others.
    ///
    /// A route of `other` with the API group, kind, namespace and name of
    /// one already read from another text is named in a [`ConfigWarning`]:
    /// a cluster keeps one such object, the one applied last, while both
    /// are served here, as [`load`] refuses two in one text. So is a
    /// ServiceProfile of `other` for a service that has one from another
    /// text in the same namespace: the service's, or a client's, whose
    /// clients are then served the later in place of the earlier.
    pub fn merge(&mut self, other: Self) {
        let known = route_objects(self.services.iter().chain(&self.egress_networks));
        for (key, source) in route_objects(other.services.iter().chain(&other.egress_networks)) {
            let Some((_, first)) = known
                .iter()
                .find(|(k, first)| *k == key && first.origin != source.origin)
            else {
                continue;
            };
            let (_, kind, _) = &key;
            let route = source.named(Some(kind));
            self.warnings.push(ConfigWarning {
                origin: source.origin.clone(),
                document: source.document,
                kind: (*kind).to_owned(),
                namespace: source.namespace.clone(),
                name: Some(source.name.clone()),
                field: "metadata.name".to_owned(),
                message: format!(
                    "a second {route}, after {} document {}: the cluster keeps one \
                     object of a kind and name, the one applied last, but the rules of both \
                     are served here, so keep one of the two or rename the other",
                    first.origin, first.document
                ),
            });
        }
        self.warnings.extend(other.warnings);
        merge_parents(&mut self.services, &mut self.warnings, other.services);
        merge_parents(
            &mut self.egress_networks,
            &mut self.warnings,
            other.egress_networks,
        );
    }

    /// The resources as a client in `namespace` is served them: each
    /// service's producer routes and the consumer routes of `namespace`
    /// ([`ServiceRetryPolicy::for_namespace`]), and each `EgressNetwork`'s
    /// likewise, with the warnings for the `HTTPRoute`s set aside for that
    /// client in place of those for a client anywhere. A route written
    /// without a namespace ranks in `namespace`, where it is applied for
    /// that client.
    pub fn for_namespace(&self, namespace: &str) -> Self {
        let mut warnings = self.warnings.clone();
        let mut aside = Vec::new();
        let mut select = |parents: &[ServiceRetryPolicy]| -> Vec<ServiceRetryPolicy> {
            let mut selected = Vec::with_capacity(parents.len());
            for parent in parents {
                let (one, set_aside) = parent.for_namespace(namespace);
                if parent.read.is_some() {
                    warnings.retain(|w| !parent.aside_warnings.contains(w));
                    aside.extend(set_aside);
                }
                selected.push(one);
            }
            selected
        };
        let services = select(&self.services);
        let egress_networks = select(&self.egress_networks);
        warnings.extend(aside);
        Self {
            services,
            egress_networks,
            warnings,
        }
    }

    /// The policy of `name` in `namespace` among the parents of kind
    /// `parent`, added after the others when there is none yet.
    fn parent_mut(
        &mut self,
        parent: ParentKind,
        name: &str,
        namespace: Option<&str>,
    ) -> &mut ServiceRetryPolicy {
        let parents = match parent {
            ParentKind::Service => &mut self.services,
            ParentKind::EgressNetwork => &mut self.egress_networks,
        };
        let i = match parents
            .iter()
            .position(|s| s.name == name && s.namespace.as_deref() == namespace)
        {
            Some(i) => i,
            None => {
                parents.push(ServiceRetryPolicy::new(
                    name.to_owned(),
                    namespace.map(str::to_owned),
                    parent,
                ));
                parents.len() - 1
            }
        };
        &mut parents[i]
    }

    fn service_mut(&mut self, name: &str, namespace: Option<&str>) -> &mut ServiceRetryPolicy {
        self.parent_mut(ParentKind::Service, name, namespace)
    }
}

/// The policy of `name` in `namespace` among `parents`.
fn find<'a>(
    parents: &'a [ServiceRetryPolicy],
    name: &str,
    namespace: Option<&str>,
) -> Option<&'a ServiceRetryPolicy> {
    parents
        .iter()
        .find(|s| s.name == name && s.namespace.as_deref() == namespace)
}

/// Merges `other`, another text's parents of one kind, into `parents`, as
/// [`RetryResources::merge`] does, adding its warnings to `warnings`.
fn merge_parents(
    parents: &mut Vec<ServiceRetryPolicy>,
    warnings: &mut Vec<ConfigWarning>,
    other: Vec<ServiceRetryPolicy>,
) {
    for service in other {
        let same = parents
            .iter_mut()
            .find(|s| s.name == service.name && s.namespace == service.namespace);
        let Some(known) = same else {
            parents.push(service);
            continue;
        };
        let second = match (&known.profile, &service.profile) {
            (Some(first), Some(second)) if first.origin != second.origin => {
                Some(second_profile(&service, first, second))
            }
            _ => None,
        };
        warnings.extend(second);
        // Of two for one client namespace, the later is served in place
        // of the earlier, as for the service's own: say so, naming both.
        for client in &service.client_profiles {
            let first = known.client_profiles.iter().rev().find(|p| {
                p.namespace == client.namespace && p.source.origin != client.source.origin
            });
            if let Some(first) = first {
                warnings.push(second_client_profile(
                    &service,
                    &first.source,
                    &client.source,
                ));
            }
        }
        // HTTPRoutes either text set aside for GRPCRoutes, which a profile
        // of the other may now serve alone.
        let earlier: Vec<ConfigWarning> = known
            .aside_warnings
            .iter()
            .chain(&service.aside_warnings)
            .cloned()
            .collect();
        let aside = known.merge_warning(service);
        warnings.extend(aside);
        if let Some(message) = known.profile_aside_message() {
            for warning in warnings.iter_mut().chain(known.aside_warnings.iter_mut()) {
                if earlier.contains(warning) {
                    warning.message.clone_from(&message);
                }
            }
        }
    }
}

/// Something in a document that is read but not applied: an unsupported
/// filter, an unknown field or annotation, a retry annotation of the other
/// kind of route, an `HTTPRoute` set aside for a service's `GRPCRoute`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where the text came from.
    pub origin: String,
    /// The document, from 1.
    pub document: usize,
    /// The document's kind.
    pub kind: String,
    /// The document's `metadata.namespace`, when it names one. Shown, as
    /// kubectl shows it, before the name (`HTTPRoute emojivoto/web`), so
    /// that routes of one name in two namespaces are told apart; a value
    /// that is not a namespace (not a DNS-1123 label) is not shown.
    pub namespace: Option<String>,
    /// The document's name.
    pub name: Option<String>,
    /// The field, such as `spec.rules[0].filters[0]`.
    pub field: String,
    /// What is not applied.
    pub message: String,
}

impl ConfigWarning {
    /// A warning for a field of `context`'s document that is not read.
    fn ignored(context: &DocumentContext<'_>, field: String) -> Self {
        Self::new(context, field, "unknown field is ignored".to_owned())
    }

    fn new(context: &DocumentContext<'_>, field: String, message: String) -> Self {
        Self {
            origin: context.origin().to_owned(),
            document: context.index(),
            kind: context.kind().to_owned(),
            namespace: context.namespace().map(str::to_owned),
            name: context.name().map(str::to_owned),
            field,
            message,
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Named as errors about the same document name it.
        let resource = ResourceName::new(
            Some(&self.kind),
            self.namespace.as_deref(),
            self.name.as_deref(),
        );
        write!(
            f,
            "{}: document {} ({resource}): {}: {}",
            self.origin, self.document, self.field, self.message
        )
    }
}

/// The warning for a second ServiceProfile, `second`, for `service`, after
/// `first` in another text.
fn second_profile(
    service: &ServiceRetryPolicy,
    first: &ProfileSource,
    second: &ProfileSource,
) -> ConfigWarning {
    ConfigWarning {
        origin: second.origin.clone(),
        document: second.document,
        kind: "ServiceProfile".to_owned(),
        namespace: second.namespace.clone(),
        name: Some(second.name.clone()),
        field: "metadata.name".to_owned(),
        message: format!(
            "a second ServiceProfile for service {}, after {} document {}: the cluster keeps \
             one, the one applied last, but the routes of both are served here, with the \
             budget of this one",
            service.name, first.origin, first.document
        ),
    }
}

/// The warning for a second ServiceProfile, `second`, of `service` in the
/// namespace of its clients, another than the service's, after `first` in
/// another text: Linkerd's destination controller serves those clients
/// one, and here the later replaces the earlier, routes and all.
fn second_client_profile(
    service: &ServiceRetryPolicy,
    first: &ProfileSource,
    second: &ProfileSource,
) -> ConfigWarning {
    ConfigWarning {
        message: format!(
            "a second ServiceProfile for service {} in namespace {}, after {}: the cluster \
             keeps one, the one applied last, and this one, read last, is served to the \
             clients of that namespace in place of the other",
            service.name,
            second.namespace.as_deref().unwrap_or_default(),
            first.named()
        ),
        ..second_profile(service, first, second)
    }
}

/// What names one route object in a cluster: its API group, its kind and
/// its `{namespace}/{name}`.
type RouteObject = (String, &'static str, Arc<str>);

/// The route objects the rules of `services` were read from, each once,
/// with where it was read.
fn route_objects<'a>(
    services: impl Iterator<Item = &'a ServiceRetryPolicy> + Clone,
) -> Vec<(RouteObject, Arc<RouteSource>)> {
    let mut objects: Vec<(RouteObject, Arc<RouteSource>)> = Vec::new();
    let read = |service: &'a ServiceRetryPolicy| service.read.as_deref().unwrap_or(service);
    let rules = services
        .clone()
        .flat_map(|service| read(service).origins.iter());
    let l4 = services.flat_map(|service| read(service).l4.iter());
    for origin in rules {
        let Origin::Rule(rule) = origin else {
            continue;
        };
        let kind = if rule.is_grpc() {
            "GRPCRoute"
        } else {
            "HTTPRoute"
        };
        let key = (rule.source.group.clone(), kind, rule.route.clone());
        if !objects.iter().any(|(k, _)| *k == key) {
            objects.push((key, rule.source.clone()));
        }
    }
    for route in l4 {
        let (key, source) = route.object();
        if !objects.iter().any(|(k, _)| *k == key) {
            objects.push((key, source));
        }
    }
    objects
}

/// Reads the `HTTPRoute`s, `GRPCRoute`s, `ServiceProfile`s and SMI
/// `TrafficSplit`s of `text` into per-service policies. `origin` (a file
/// name) names the text in errors and warnings.
///
/// A service its ServiceProfile or `TrafficSplit` serves alone
/// ([`ServiceRetryPolicy::served_by_profile`]) keeps its `HTTPRoute` and
/// `GRPCRoute` rules here, before its profile routes (see the
/// [module](self) docs): the choice Linkerd's proxy makes is left to
/// [`ServiceRetryPolicy::set_aside_for_profile`], once every spelling of
/// the service's name is merged.
///
/// # Errors
///
/// The first document that is malformed or holds a value out of range,
/// with its field and line.
pub fn load(origin: &str, text: &str) -> Result<RetryResources, ResourceError> {
    let mut loaded = RetryResources::default();
    let mut profiles: Vec<ServiceRetryPolicy> = Vec::new();
    // Each TrafficSplit read, by its apex service and namespace.
    let mut splits: Vec<(ServiceKey, Arc<SplitSource>)> = Vec::new();
    // A second pass over the same documents, in step with the first, reads
    // what the HTTPRoute model leaves out: the guides' `retries` block, and
    // `metadata.creationTimestamp`, which orders the routes' matches.
    let mut second = Documents::new(origin, text);
    let mut position = 0;
    // Each route read, by group, kind, namespace and name, with its
    // document: the cluster keeps one object for each.
    let mut named: NamedRoutes = Vec::new();
    for document in Documents::new(origin, text) {
        let document = document?;
        let again = second.next().transpose()?;
        if document.is::<HttpRoute>() || document.is::<GrpcRoute>() {
            // A GRPCRoute is read as the HTTPRoute its method matches make,
            // and keeps the rank of each match by the GRPCRoute's rules.
            let (mut route, context, ignored, grpc) = if document.is::<HttpRoute>() {
                let parsed = document.read::<HttpRoute>()?;
                (parsed.value, parsed.context, parsed.ignored, None)
            } else {
                let parsed = document.read::<GrpcRoute>()?;
                let mut route = parsed
                    .value
                    .to_http_route()
                    .map_err(|e| parsed.context.match_error(e))?;
                calls_only(&mut route);
                let ranks = grpc_ranks(&parsed.value);
                (route, parsed.context, parsed.ignored, Some(ranks))
            };
            // The Services and EgressNetworks the route is attached to;
            // other parents (a Server, a Gateway) are left to their readers.
            let parents: Vec<Parent> = route
                .spec
                .parent_refs
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let kind = if p.is_service() {
                        ParentKind::Service
                    } else if p.is_egress_network() {
                        ParentKind::EgressNetwork
                    } else {
                        return None;
                    };
                    let namespace = p
                        .namespace
                        .clone()
                        .or_else(|| route.metadata.namespace.clone());
                    Some(Parent {
                        kind,
                        name: p.name.clone(),
                        namespace,
                        index: i,
                        // A Service's routes are not divided by port here.
                        port: p.port.filter(|_| kind == ParentKind::EgressNetwork),
                    })
                })
                .collect();
            if parents.is_empty() {
                continue;
            }
            let group = route.api_version.group().to_owned();
            refuse_second(&mut named, &group, &route.kind, &route.metadata, &context)?;
            let guide = match again {
                Some(doc) => doc.parse::<http_route::Unmodelled>()?.value,
                None => http_route::Unmodelled::default(),
            };
            let created = precedence::created(guide.created(), &context)?;
            let defaulted = http_route::default_rules(
                &mut route,
                &guide,
                &context,
                grpc.is_some(),
                &mut loaded.warnings,
            );
            let route_name: Arc<str> = format!(
                "{}/{}",
                route.metadata.namespace.as_deref().unwrap_or(""),
                route.metadata.name
            )
            .into();
            position += 1;
            for ignored in ignored {
                let honoured = (0..route.spec.rules.len()).any(|i| {
                    guide.has(i)
                        && ignored
                            .path
                            .starts_with(&format!("spec.rules[{i}].retries"))
                });
                if !honoured {
                    loaded
                        .warnings
                        .push(ConfigWarning::ignored(&context, ignored.path));
                }
            }
            let rules = http_route::rule_policies(
                &route,
                &guide,
                &context,
                grpc.is_some(),
                &mut loaded.warnings,
            )?;
            let hosts = RouteHosts::new(&route.spec.hostnames);
            for parent in parents {
                original_destinations(&rules, &parent, &context)?;
                let consumer = parent.consumer(route.metadata.namespace.as_deref());
                let source = parent.source(&context, &route.metadata, &group);
                let service =
                    loaded.parent_mut(parent.kind, &parent.name, parent.namespace.as_deref());
                for (rule, (policy, redirect)) in rules.iter().enumerate() {
                    if let Some(redirect) = redirect {
                        service.redirects.push(RouteRedirect {
                            route: service.routes.len(),
                            redirect: redirect.clone(),
                        });
                    }
                    service.routes.push(policy.clone());
                    service.origins.push(Origin::Rule(RuleOrigin {
                        created,
                        route: route_name.clone(),
                        applied: None,
                        position,
                        rule,
                        defaulted,
                        kind: match &grpc {
                            Some(ranks) => {
                                RuleKind::Grpc(ranks.get(rule).cloned().unwrap_or_default())
                            }
                            None => RuleKind::Http,
                        },
                        source: source.clone(),
                        hosts: hosts.clone(),
                        consumer: consumer.clone(),
                    }));
                }
            }
        } else if document.is::<TlsRoute>() || document.is::<TcpRoute>() {
            l4_route::read(document, again, &mut loaded, &mut named)?;
        } else if document.is::<ServiceProfile>() {
            let parsed = document.read::<ServiceProfile>()?;
            let context = parsed.context;
            loaded.warnings.extend(
                parsed
                    .ignored
                    .into_iter()
                    .map(|ignored| ConfigWarning::ignored(&context, ignored.path)),
            );
            let profile = parsed.value;
            let (name, namespace) = profile.service();
            // One in another namespace than its service's serves that
            // namespace's clients, beside the service's own (ClientProfile).
            let clients = context
                .namespace()
                .filter(|own| namespace.as_deref() != Some(*own));
            let first = profiles.iter().find(|p| {
                p.name == name && p.namespace == namespace && p.profile_clients() == clients
            });
            if let Some(first) = first.and_then(|p| p.profile.as_deref()) {
                let whose = match clients {
                    Some(clients) => format!(" for the clients of namespace {clients}"),
                    None => String::new(),
                };
                return Err(context.error(
                    ResourceErrorKind::DuplicateName,
                    "metadata.name",
                    format!(
                        "a second ServiceProfile for service {name}{whose} in this text, after \
                         {}: Linkerd serves a client one profile of a service, the one applied \
                         last, and reading both would serve routes that are not in force \
                         together anywhere; keep one",
                        first.named()
                    ),
                ));
            }
            let mut service = ServiceRetryPolicy::new(name, namespace, ParentKind::Service);
            service.profile = Some(Arc::new(ProfileSource {
                origin: context.origin().to_owned(),
                document: context.index(),
                namespace: context.namespace().map(str::to_owned),
                name: profile.metadata.name.clone(),
                dst_overrides: profile.dst_backends(&context),
                smi_skip: profile
                    .metadata
                    .annotations
                    .contains_key(traffic_split::SKIP_ANNOTATION),
            }));
            if let Some(spec) = &profile.spec.retry_budget {
                service.budget = spec.to_config().map_err(|e| {
                    let field = match e.field {
                        "" => "spec.retryBudget".to_owned(),
                        field => format!("spec.retryBudget.{field}"),
                    };
                    context.error(ResourceErrorKind::InvalidValue, &field, e.message)
                })?;
            }
            (service.routes, service.origins) = profile
                .route_policies(&context)?
                .into_iter()
                .map(|(route, classes)| (route, Origin::Profile(classes)))
                .unzip();
            // Make sure the service is listed in document order.
            loaded.service_mut(&service.name, service.namespace.as_deref());
            profiles.push(service);
        } else if document.is::<TrafficSplit>() {
            traffic_split::served_version(&document)?;
            let parsed = document.read::<TrafficSplit>()?;
            let context = parsed.context;
            loaded.warnings.extend(
                parsed
                    .ignored
                    .into_iter()
                    .map(|ignored| ConfigWarning::ignored(&context, ignored.path)),
            );
            let split = parsed.value;
            let backends = split.dst_backends(&context)?;
            let (apex, namespace) = split.apex();
            let key = (apex.to_owned(), namespace.map(str::to_owned));
            if let Some((_, first)) = splits.iter().find(|(k, _)| *k == key) {
                return Err(context.error(
                    ResourceErrorKind::DuplicateName,
                    "spec.service",
                    format!(
                        "a second TrafficSplit for service {apex} in this text, after {}: \
                         linkerd-smi writes each into the service's ServiceProfile as it syncs \
                         it, so which one is in force depends on the order it syncs them in, \
                         which no file says; keep one",
                        first.named()
                    ),
                ));
            }
            // Make sure the service is listed in document order.
            loaded.service_mut(apex, namespace);
            splits.push((
                key,
                Arc::new(SplitSource {
                    origin: context.origin().to_owned(),
                    document: context.index(),
                    namespace: context.namespace().map(str::to_owned),
                    name: split.metadata.name.clone(),
                    backends,
                }),
            ));
        }
    }
    for profile in profiles {
        let service = loaded.service_mut(&profile.name, profile.namespace.as_deref());
        if let (Some(clients), Some(source)) = (profile.profile_clients(), &profile.profile) {
            service.client_profiles.push(ClientProfile {
                namespace: clients.to_owned(),
                source: source.clone(),
                budget: profile.budget,
                routes: profile.routes,
                origins: profile.origins,
            });
            continue;
        }
        service.budget = profile.budget;
        service.profile = profile.profile;
        let mut origins = profile.origins;
        origins.resize(profile.routes.len(), Origin::Written);
        service
            .origins
            .resize(service.routes.len(), Origin::Written);
        service.origins.extend(origins);
        service.routes.extend(profile.routes);
    }
    for ((name, namespace), split) in splits {
        loaded.service_mut(&name, namespace.as_deref()).split = Some(split);
    }
    for service in loaded
        .services
        .iter_mut()
        .chain(&mut loaded.egress_networks)
    {
        // An EgressNetwork keeps its routes as read, for for_port to
        // select a port's from and name each HTTPRoute set aside there.
        if service.has_consumer_routes() || service.parent == ParentKind::EgressNetwork {
            service.read = Some(Box::new(service.clone()));
        }
        let warnings = service.set_aside_http_routes();
        service.aside_warnings.clone_from(&warnings);
        loaded.warnings.extend(warnings);
        loaded.warnings.extend(service.split_warning());
        service.rank();
    }
    Ok(loaded)
}

/// The routes read from one text, by API group, kind, namespace (empty
/// for none) and name, each with its document.
type NamedRoutes = Vec<(String, String, String, String, usize)>;

/// Refuses a route of `group` and `kind` named as `metadata` names it when
/// `named` holds one already, from an earlier document of the same text;
/// else adds it to `named`. The cluster keeps one object of a kind and
/// name, the one applied last, and reading both would serve rules that
/// are not in force together anywhere.
fn refuse_second(
    named: &mut NamedRoutes,
    group: &str,
    kind: &str,
    metadata: &ObjectMeta,
    context: &DocumentContext<'_>,
) -> Result<(), ResourceError> {
    let namespace = metadata.namespace.clone().unwrap_or_default();
    if let Some((.., first)) = named.iter().find(|(g, k, ns, name, _)| {
        g == group && k == kind && *ns == namespace && *name == metadata.name
    }) {
        let qualified = match &metadata.namespace {
            Some(ns) => format!("{ns}/{}", metadata.name),
            None => metadata.name.clone(),
        };
        return Err(context.error(
            ResourceErrorKind::DuplicateName,
            "metadata.name",
            format!(
                "a second {kind} {qualified} in this text, after document {first}: the \
                 cluster keeps one object of a kind and name, the one applied last, so keep \
                 one of the two or rename the other"
            ),
        ));
    }
    named.push((
        group.to_owned(),
        kind.to_owned(),
        namespace,
        metadata.name.clone(),
        context.index(),
    ));
    Ok(())
}

/// A `parentRefs` entry the reader attaches a route to.
struct Parent {
    /// A Service or an EgressNetwork.
    kind: ParentKind,
    /// The parent's name.
    name: String,
    /// The entry's namespace, else the route's.
    namespace: Option<String>,
    /// The entry's index in `parentRefs`.
    index: usize,
    /// The entry's `port`, for an EgressNetwork.
    port: Option<u16>,
}

impl Parent {
    /// Where the route `metadata` of `group`, read in `context`, was read
    /// for this entry: what its warnings and metrics name it by.
    fn source(
        &self,
        context: &DocumentContext<'_>,
        metadata: &ObjectMeta,
        group: &str,
    ) -> Arc<RouteSource> {
        Arc::new(RouteSource {
            origin: context.origin().to_owned(),
            document: context.index(),
            namespace: context.namespace().map(str::to_owned),
            name: metadata.name.clone(),
            group: group.to_owned(),
            parent: self.index,
            port: self.port,
        })
    }

    /// The namespace of a route in `own` (its `metadata.namespace`) when
    /// it is not this parent's: a consumer route, for the clients of its
    /// own namespace alone.
    fn consumer(&self, own: Option<&str>) -> Option<Arc<str>> {
        own.filter(|own| {
            self.namespace
                .as_deref()
                .is_some_and(|parent| parent != *own)
        })
        .map(Arc::from)
    }
}

/// Checks that each backend of `rules` that stands for the original
/// destination (a `backendRefs` entry of kind `EgressNetwork`) names
/// `parent`, the route's parent it is read for: the original destination
/// is that of the traffic an EgressNetwork captured, which a Service's
/// traffic has not, and one network's route cannot send it through
/// another. Linkerd's policy controller accepts such a route but marks the
/// backend invalid, and its proxy fails the requests the backend would
/// take; refused here, as other backends this reader cannot serve are.
fn original_destinations(
    rules: &[(RouteRetryPolicy, Option<Redirect>)],
    parent: &Parent,
    context: &DocumentContext<'_>,
) -> Result<(), ResourceError> {
    let entries = rules.iter().enumerate().flat_map(|(i, (policy, _))| {
        policy
            .backends
            .iter()
            .enumerate()
            .map(move |(j, backend)| (i, j, backend))
    });
    for (i, j, backend) in entries {
        if backend.kind != BackendKind::OriginalDestination {
            continue;
        }
        check_original_destination(
            &format!("spec.rules[{i}].backendRefs[{j}]"),
            &backend.name,
            backend.namespace.as_deref(),
            parent,
            context,
        )?;
    }
    Ok(())
}

/// Checks one backend that stands for the original destination, the
/// `backendRefs` entry at `at` naming EgressNetwork `name` in
/// `namespace`, against `parent`, as [`original_destinations`] does.
fn check_original_destination(
    at: &str,
    name: &str,
    namespace: Option<&str>,
    parent: &Parent,
    context: &DocumentContext<'_>,
) -> Result<(), ResourceError> {
    let named = |namespace: Option<&str>, name: &str| match namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    };
    let network = named(namespace, name);
    let (field, message) = match parent.kind {
        ParentKind::Service => (
            format!("{at}.kind"),
            format!(
                "backend EgressNetwork {network} stands for the original destination of \
                 the traffic an EgressNetwork captures, and parentRefs[{}] attaches the \
                 route to Service {}, whose traffic has none: Linkerd fails the requests \
                 of such a backend; name a Service, or attach the route to the \
                 EgressNetwork",
                parent.index,
                named(parent.namespace.as_deref(), &parent.name)
            ),
        ),
        ParentKind::EgressNetwork => {
            // A namespace left unwritten on either side is the
            // route's, which the reader does not know: the same.
            let same_namespace = match (namespace, &parent.namespace) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if name == parent.name && same_namespace {
                return Ok(());
            }
            (
                format!("{at}.name"),
                format!(
                    "backend EgressNetwork {network} is not the route's parent \
                     EgressNetwork {} (parentRefs[{}]): an EgressNetwork backend stands \
                     for the original destination of the traffic its own network \
                     captured, and Linkerd fails the requests of one naming another; \
                     name the parent, or a Service",
                    named(parent.namespace.as_deref(), &parent.name),
                    parent.index
                ),
            )
        }
    };
    Err(context.error(ResourceErrorKind::InvalidValue, &field, message))
}

/// Makes each match of `route`, the `HTTPRoute` a `GRPCRoute` amounts
/// to, take only a `POST`, as Linkerd's proxy takes a `GRPCRoute` match
/// only for one: a gRPC call is a `POST`, and a `GET` to a method's path
/// is no call. A rule without matches keeps none, and so takes every
/// request, whatever its method, as Linkerd's implicit match does.
///
/// Done here, for outbound routing, rather than in mesh-core's reading
/// of a `GRPCRoute`, which authorization shares: authorization ranks a
/// Server's `GRPCRoute` and `HTTPRoute` matches together, by the HTTP
/// precedence, where a method would rank a `GRPCRoute`'s match above an
/// `HTTPRoute`'s on the same path. Here the kinds are never ranked
/// together, and a `GRPCRoute`'s matches rank by their own precedence.
fn calls_only(route: &mut HttpRoute) {
    for m in route
        .spec
        .rules
        .iter_mut()
        .flat_map(|r| r.matches.iter_mut())
    {
        m.method = Some(http::Method::POST.as_str().to_owned());
    }
}

/// The rank of each match of each rule of `route`, as the `HTTPRoute`
/// it makes has them: a rule without matches has one, which matches
/// every call and names nothing.
fn grpc_ranks(route: &GrpcRoute) -> Vec<Arc<[GrpcPrecedence]>> {
    route
        .spec
        .rules
        .iter()
        .map(|rule| {
            if rule.matches.is_empty() {
                Arc::from([GrpcPrecedence::default()])
            } else {
                rule.matches.iter().map(GrpcPrecedence::of).collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An `HTTPRoute` `name` of service `emoji` taking every path, with
    /// `metadata` and `parent` given as written (`, namespace: emojivoto`
    /// or nothing).
    fn catch_all(name: &str, metadata: &str, parent: &str) -> String {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}{metadata}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji{parent}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
"
        )
    }

    /// The names of `service`'s routes, in the order their matches are
    /// tried.
    fn order(service: &ServiceRetryPolicy) -> Vec<&str> {
        service
            .match_order()
            .iter()
            .map(|at| &*service.routes[at.route].name)
            .collect()
    }

    #[test]
    fn a_route_without_a_namespace_ties_in_its_clients_namespace() {
        const NS: &str = ", namespace: emojivoto";
        // `b` written without a namespace, attached to emojivoto's emoji:
        // one service with `emojivoto/a`. Read for a client anywhere, it
        // ranks as `/b`, before `emojivoto/a`; for a client in emojivoto,
        // where it is applied, after it, as the cluster ranks them.
        let text = [catch_all("b", "", NS), catch_all("a", NS, NS)].join("---\n");
        let loaded = load("routes.yaml", &text).unwrap();
        let emoji = loaded.service("emoji", Some("emojivoto")).unwrap();
        assert_eq!(order(emoji), ["b", "a"]);
        let served = loaded.for_namespace("emojivoto");
        let emoji = served.service("emoji", Some("emojivoto")).unwrap();
        assert_eq!(order(emoji), ["a", "b"]);
        // Its name, as labels and warnings give it, keeps no namespace.
        let b = emoji.routes.iter().position(|r| &*r.name == "b").unwrap();
        assert_eq!(emoji.rule_route(b).unwrap().namespace, None);
        // For a client in `web`, `b` is `web/b`, after `emojivoto/a`
        // either way.
        let served = loaded.for_namespace("web");
        assert_eq!(
            order(served.service("emoji", Some("emojivoto")).unwrap()),
            ["a", "b"]
        );

        // `b` attached without a namespace too: a service of its own,
        // which a planner merges with emojivoto's emoji for a client in
        // emojivoto, where the two are one service.
        let text = [catch_all("b", "", ""), catch_all("a", NS, "")].join("---\n");
        let served = load("routes.yaml", &text)
            .unwrap()
            .for_namespace("emojivoto");
        let mut merged = served.service("emoji", None).unwrap().clone();
        let other = served.service("emoji", Some("emojivoto")).unwrap().clone();
        assert!(merged.merge(other).is_empty());
        assert_eq!(order(&merged), ["a", "b"]);
    }

    /// A `GRPCRoute` of `emoji` in `emojivoto`, and a ServiceProfile of it
    /// with one route.
    const GRPC_AND_PROFILE: [&str; 2] = [
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji-grpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {method: ListAll}}]
",
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - {name: list, condition: {method: GET, pathRegex: /list}}
",
    ];

    #[test]
    fn an_http_route_beside_grpc_routes_and_a_profile_names_the_profile() {
        const NS: &str = ", namespace: emojivoto";
        let [grpc, profile] = GRPC_AND_PROFILE;
        let expected = |profile: &str| {
            format!(
                "routes.yaml: document 1 (HTTPRoute emojivoto/web): spec.parentRefs[0]: set \
                 aside for {profile} (ServiceProfile emojivoto/emoji.emojivoto.svc.cluster.local), \
                 which serves service emojivoto/emoji alone: Linkerd's proxy serves a service \
                 whose ServiceProfile has routes or dstOverrides by the profile, and none of \
                 this route's rules, timeouts, retries or filters apply"
            )
        };
        // In one text, and with the profile in an earlier or a later one.
        let route = catch_all("web", NS, "");
        let together = load(
            "routes.yaml",
            &[route.as_str(), grpc, profile].join("---\n"),
        )
        .unwrap();
        let mut apart = load("routes.yaml", &[route.as_str(), grpc].join("---\n")).unwrap();
        apart.merge(load("profile.yaml", profile).unwrap());
        let mut profile_first = load("profile.yaml", profile).unwrap();
        profile_first.merge(load("routes.yaml", &[route.as_str(), grpc].join("---\n")).unwrap());
        for (loaded, profile) in [
            (together, "routes.yaml: document 3"),
            (apart, "profile.yaml: document 1"),
            (profile_first, "profile.yaml: document 1"),
        ] {
            let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
            assert_eq!(warnings, [expected(profile)]);
            // The planner then sets the GRPCRoute aside for the profile.
            let mut emoji = loaded.service("emoji", Some("emojivoto")).unwrap().clone();
            let aside = emoji.set_aside_for_profile();
            assert_eq!(aside.len(), 1, "{aside:?}");
            assert_eq!(aside[0].kind, "GRPCRoute");
            assert_eq!(order(&emoji), ["list"]);
        }
    }

    #[test]
    fn a_merge_names_each_http_route_it_sets_aside() {
        let grpc = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji-grpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {method: ListAll}}]
";
        let text = [&catch_all("web", "", ""), grpc].join("---\n");
        let served = load("routes.yaml", &text)
            .unwrap()
            .for_namespace("emojivoto");
        assert!(served.warnings.is_empty(), "{:?}", served.warnings);
        let mut merged = served.service("emoji", Some("emojivoto")).unwrap().clone();
        let warnings = merged.merge(served.service("emoji", None).unwrap().clone());
        let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "routes.yaml: document 1 (HTTPRoute web): spec.parentRefs[0]: set aside for \
              service emojivoto/emoji, whose GRPCRoutes (emojivoto/emoji-grpc) take its \
              requests: a service is served its GRPCRoutes or its HTTPRoutes, not both, and \
              GRPCRoutes win, as in Linkerd (GEP-1294)"
            ]
        );
        assert_eq!(order(&merged), ["emoji-grpc"]);
    }
}
