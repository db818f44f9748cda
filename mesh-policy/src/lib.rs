//! Authorization for the mesh, with the policy resources Linkerd users
//! already write.
//!
//! Zero trust means each workload says who may call it, on which port and
//! on which route. Kubernetes users already say it with Linkerd's policy
//! resources, so this crate reads those manifests unchanged (`Server`,
//! `ServerAuthorization`, `AuthorizationPolicy`, `MeshTLSAuthentication`,
//! `NetworkAuthentication`, `HTTPRoute`, `GRPCRoute`,
//! `HTTPLocalRateLimitPolicy` and `EgressNetwork`) and
//! enforces them as tower layers, in process or in the reference sidecar.
//! It adds what operators ask other meshes for: an audit (dry-run) mode, a
//! counter per rule that decides, and [`Policy::explain`], which says why
//! a request is denied, and which rate limits it would meet.
//!
//! # How it fits together
//!
//! 1. [`Policy::compile`] reads multi-document YAML ([`PolicySource`]) and
//!    compiles it for one [`Workload`] (its namespace, labels, named ports,
//!    cluster networks and trust domain). Mistakes are rejected whole, with
//!    a [`ResourceError`](mesh_core::resource::ResourceError) naming the
//!    document, kind, name, field and line; what is read but not enforced
//!    (a `ServiceProfile`, an unknown field, a route filter other than the
//!    header modifiers and `RequestRedirect`) comes back as
//!    one [`PolicyWarnings`] value. A kind `policy.linkerd.io` does not
//!    have (a misspelt `Server`) is a mistake, not a kind to skip: the
//!    port of a Server skipped would be left to the default policy.
//! 2. A [`PolicyStore`] holds the policy in force. Requests read it without
//!    a lock; [`PolicyStore::reload`] and [`PolicyStore::swap`] replace it,
//!    and a [`PolicyWatcher`] reloads it when its files change. A reload
//!    that fails keeps the last good policy.
//! 3. [`AuthorizeLayer`] decides each HTTP request: 403 (gRPC 7) when
//!    denied, 404 (gRPC 5) when no route matches, 429 (gRPC 8) when over
//!    its Server's rate limit ([`RateLimited`]; a hook,
//!    [`AuthorizeLayer::on_rate_limited`], is told of each, so that the
//!    embedder can count it), an
//!    [`Authorized`](mesh_core::labels::Authorized) extension when allowed.
//!    [`AuthorizeOpaqueLayer`] decides opaque connections, and closes open
//!    ones that a policy change no longer allows.
//! 4. [`ApplyFiltersLayer`], inside [`AuthorizeLayer`], applies the
//!    filters of the `HTTPRoute` rule an allowed request matched: its
//!    header modifiers and its redirect (see [`filters`]).
//! 5. [`PolicyMetrics`] counts decisions with Linkerd's metric names.
//!
//! The example needs, besides this crate,
//! `cargo add --git https://github.com/mesh-rs/mesh mesh-core`,
//! `cargo add tower http` and `cargo add tokio --features full`:
//!
//! ```
//! use mesh_core::{ConnectionInfo, body::BoxBody};
//! use mesh_policy::{AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // The guide's Server for `web` on port 80, and who may reach it.
//! const POLICY: &str = r#"
//! apiVersion: policy.linkerd.io/v1beta3
//! kind: Server
//! metadata: { name: web-server-80 }
//! spec:
//!   podSelector: { matchLabels: { app: web } }
//!   port: 80
//! ---
//! apiVersion: policy.linkerd.io/v1alpha1
//! kind: NetworkAuthentication
//! metadata: { name: cluster }
//! spec:
//!   networks: [{ cidr: 10.0.0.0/8 }]
//! ---
//! apiVersion: policy.linkerd.io/v1alpha1
//! kind: AuthorizationPolicy
//! metadata: { name: web-from-cluster }
//! spec:
//!   targetRef: { group: policy.linkerd.io, kind: Server, name: web-server-80 }
//!   requiredAuthenticationRefs:
//!     - { group: policy.linkerd.io, kind: NetworkAuthentication, name: cluster }
//! "#;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let workload = Workload::new("emojivoto").with_label("app", "web");
//! let store = PolicyStore::new(workload, PolicyConfig::default(), PolicyMetrics::default());
//! store.reload(&[PolicySource::new("policy.yaml", POLICY)])?;
//!
//! let app = service_fn(|_req: http::Request<BoxBody>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(BoxBody::default()))
//! });
//! let svc = ServiceBuilder::new().layer(AuthorizeLayer::new(store)).service(app);
//!
//! // The server inserts the connection's addresses and TLS status: a
//! // client outside 10.0.0.0/8 is refused, one inside reaches the app.
//! for (client, status) in [("192.168.1.7:50000", 403), ("10.1.2.3:50000", 200)] {
//!     let mut req = http::Request::get("/api/list").body(BoxBody::default())?;
//!     req.extensions_mut().insert(ConnectionInfo::plaintext("10.0.0.5:80".parse()?, client.parse()?));
//!     let rsp = svc.clone().oneshot(req).await?;
//!     assert_eq!(rsp.status(), status, "client {client}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Egress networks
//!
//! Traffic that leaves the cluster needs a policy as much as traffic that
//! arrives. Linkerd 2.17+ describes it with the `EgressNetwork` resource
//! (<https://linkerd.io/2.17/reference/egress-network/>): a set of
//! addresses (`networks`, each a `cidr` less its `except`; when absent,
//! every address outside [`Workload::cluster_networks`]) and a
//! `trafficPolicy`, `Allow` or `Deny`, for what the workload sends there.
//! This crate reads them with the other kinds and compiles, with each
//! policy, the ones that apply to the workload's clients
//! ([`Policy::egress_networks`]), so a reload changes them with the rest
//! of the policy and a failed one keeps them; an embedder that sends a
//! request to a destination no service names asks
//! [`EgressNetworks::find`](egress::EgressNetworks::find) which network
//! captures its address, and allows or refuses it by that network's
//! policy.
//!
//! The network is chosen as Linkerd's policy controller chooses it
//! (`resolve_egress_network`): only the networks of the workload's own
//! namespace if it has any, even when none captures the address, else
//! those of the global egress namespace
//! ([`PolicyConfig::egress_namespace`], `linkerd-egress` by default);
//! among those that capture the address, the one whose matching block is
//! the smallest (its addresses less those of its `except`, as Linkerd
//! sizes it: a network without `networks` is smaller than a written
//! `0.0.0.0/0`), then the older by `metadata.creationTimestamp`, then the
//! first by name. One without a timestamp ranks after those with one, as
//! routes and Servers do here (applied, it would be the newest; Linkerd's
//! comparison puts it first, but in a cluster every resource has one).
//! An empty `networks: []` is an error, as Linkerd's admission webhook
//! refuses it. See [`egress`].
//!
//! # Semantics
//!
//! These follow Linkerd's.
//!
//! - An `AuthorizationPolicy` on a route without a Server parent (an
//!   outbound route, or a Gateway's) authorizes nothing, with a
//!   [`WarningKind::NotApplied`] warning.
//! - A `Server` covers one port (by number, or by a name from
//!   [`Workload::ports`]) of the workloads its `podSelector` selects in its
//!   namespace (a Server with an `externalWorkloadSelector` selects
//!   external workloads, so none here, with a warning). Once covered, a port denies what no authorization allows,
//!   unless its `accessPolicy` says otherwise. Ports no Server covers get
//!   [`PolicyConfig::default_policy`] (a [`DefaultPolicy`]).
//! - An `AuthorizationPolicy` targets a Server (every request to it), an
//!   HTTPRoute or a GRPCRoute (the requests that route matches), or its
//!   own namespace
//!   (every Server and route in it), always in its own namespace: a
//!   `targetRef.namespace` naming another is an error. **All** of its
//!   `requiredAuthenticationRefs` must match, so, as Linkerd's admission
//!   webhook requires, it names at most one `MeshTLSAuthentication` or
//!   `ServiceAccount` and at most one `NetworkAuthentication`: two of a
//!   kind would admit only the clients both admit, where their author
//!   most likely meant either.
//! - A `GRPCRoute` is read as the `HTTPRoute` its method matches make (a
//!   gRPC call is a `POST` to `/{service}/{method}`; see mesh-core's
//!   `resource::GrpcRoute`), its matches keeping their `GRPCRoute`
//!   precedence, and may share its name with an `HTTPRoute`.
//!   So may an `HTTPRoute` of `policy.linkerd.io` with one of the Gateway
//!   API (`gateway.networking.k8s.io`), as while routes move from one to
//!   the other; a `targetRef` names one by its `group`, as Linkerd reads
//!   it. A route of that kind and name in the other group is not the one
//!   named, even when it is the only one: the reference dangles (an error
//!   at `spec.targetRef.group`), where Linkerd would apply the policy to
//!   nothing.
//! - A `targetRef` names its target's API group, as Linkerd's policy
//!   controller requires (`targets_kind`, which reads an absent or empty
//!   group as the core group): a `Server` is in `policy.linkerd.io`, an
//!   `HTTPRoute` in `policy.linkerd.io` or `gateway.networking.k8s.io`, a
//!   `GRPCRoute` in `gateway.networking.k8s.io`, and a `Namespace` in the
//!   core group (`core`, `""` or none). A target in another group is an
//!   error at `spec.targetRef.group`, in an `AuthorizationPolicy` and in an
//!   `HTTPLocalRateLimitPolicy`: Linkerd would apply it to nothing. So do
//!   the other references: a `MeshTLSAuthentication` or
//!   `NetworkAuthentication` in `requiredAuthenticationRefs` is in
//!   `policy.linkerd.io`, and a `ServiceAccount` (there, in `identityRefs`
//!   or in `clientRefs`) or a `Namespace` (in `identityRefs`) in the core
//!   group; one in another group is an error at its `group`, as Linkerd's
//!   policy controller resolves it to nothing it knows. Kinds, in
//!   references as there, are compared without regard to case (`kind:
//!   server` names a Server), as `targets_kind` compares them.
//! - An `HTTPRoute` whose parents are all core `Service`s or Linkerd
//!   `EgressNetwork`s is an outbound route, which authorization does not
//!   use, and is not warned about; one with a parent that is none of
//!   these (a `Gateway`, a misspelt kind), and no Server parent, gets a
//!   warning.
//! - `TLSRoute`s and `TCPRoute`s (`gateway.networking.k8s.io`) are
//!   outbound routes of connections, which the sidecar's routing reads;
//!   authorization has no use for them and does not warn about them.
//! - A route attaches to the Servers its `parentRefs` name in its own
//!   namespace, by name only: a parent in another namespace, or one with
//!   a `port` or `sectionName`, is an error, as Linkerd refuses such a
//!   route. So no namespace's routes, nor the policies there that target
//!   them, can open another namespace's Server.
//! - A Server serves one kind of route, chosen by its `proxyProtocol`, as
//!   Linkerd's policy controller sends its proxies (`to_server` in
//!   `policy-controller/grpc/src/inbound.rs`): its `GRPCRoute`s when it is
//!   `gRPC`, its `HTTPRoute`s when it is `unknown`, `HTTP/1` or `HTTP/2`.
//!   Were both served, a policy written for Linkerd could admit calls
//!   Linkerd refuses (one on a `GRPCRoute` of a Server it detects HTTP
//!   on), or the reverse. A route of the other kind is set aside with a
//!   [`WarningKind::NotApplied`] warning naming it, the Server, its
//!   protocol and what to change, and so is each `AuthorizationPolicy`
//!   that targets it, which authorizes nothing there. A Server left
//!   without routes of its kind has the default route (below).
//! - An `HTTPRoute` written without `rules` (or with `rules: null`) takes
//!   every request to its Servers: its CRD defaults `rules` to one rule
//!   matching the path prefix `/`, and mesh-core reads it so. One with
//!   `rules: []`, which the API server keeps as written, and a `GRPCRoute`
//!   without rules, whose CRD has no default, take nothing: their
//!   `AuthorizationPolicy`s authorize nothing, the requests fall to the
//!   Server's other routes or get its 404, and a
//!   [`WarningKind::NotApplied`] warning names `spec.rules`.
//! - A Server with routes answers 404 to requests no route matches.
//!   Routes are tried in the Gateway API's order of precedence: the route
//!   whose hostnames match the request's host most specifically first
//!   (exact, then wildcard, then none), then by their matches (see
//!   `MatchEntry::precedence` in the source): a `GRPCRoute`'s by the
//!   `GRPCRoute` order (a service named, then a method named, then more
//!   header matches), not by the paths it is read as. Equal matches of two routes
//!   go to the older by `metadata.creationTimestamp` (a route without one,
//!   which would be the newest once applied, after those with one; one
//!   that is not an RFC 3339 time is an error), then to the first by
//!   `{namespace}/{name}`, not to the one written first; within a route,
//!   to its first rule. A Server without routes has
//!   one route, `default`, and, unless its `proxyProtocol` is `gRPC` (as in
//!   Linkerd), a `probe` route that lets `GET` requests to
//!   the [probe paths](PolicyConfig::probe_paths) through, so kubelet
//!   probes keep working under `deny`; ports no Server covers have both too.
//! - Routes match the path as written, as Linkerd's do. Put mesh-core's
//!   `NormalizePathLayer` in front (the reference sidecar does) so that
//!   the application serves the very path that was authorized. Without
//!   it, or for an application that also reads an escaped `/`, or a `\`,
//!   as `/`, a path not in normal form (`/public/../admin`, `//admin`,
//!   `/%61dmin`, `/admin%2Fx`, `/public/..;/admin` with the `;`
//!   parameters servlet containers drop, or `/public/..\admin` with the
//!   `\` that the WHATWG URL parser and IIS read as `/`) is also decided
//!   as it will likely be read, and is allowed only if both are:
//!   otherwise a client could reach a route it may not use through the
//!   spelling of one it may.
//! - Routes match the host a request's URI names (an HTTP/1 request in
//!   absolute form, HTTP/2's `:authority`) before its `Host` header, as
//!   HTTP says a server must. An application may read the header instead,
//!   and of several `Host` headers any one, as frameworks differ; so on a
//!   Server whose routes name hostnames, a request that names more than
//!   one host (in its URI and a header, or in two headers) is allowed
//!   only if it is under each. Each costs a decision, so one whose `Host`
//!   headers name more than eight distinct hosts is refused (HTTP has a
//!   server refuse more than one `Host` outright).
//! - `audit`, as a default or an `accessPolicy`, allows what would be
//!   denied, marks it ([`AllowedRequest::is_audit`]), logs it at `info`
//!   and counts it as `result="audit"` in the per-rule counter. A denied
//!   request or connection is logged at `info` too, with the client's
//!   address and TLS, as linkerd2-proxy logs them.
//! - Identities: an exact SPIFFE ID or DNS-style name, `*` for any mesh
//!   identity, or `*.suffix` for DNS-style names under a suffix. A service
//!   account (`identityRefs`, `serviceAccounts`, a `ServiceAccount`
//!   authentication) matches both forms of its identity:
//!   `spiffe://<trust-domain>/ns/<ns>/sa/<name>` and Linkerd's
//!   `<name>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>`
//!   ([`Workload::service_account_identities`]). An `identityRefs` entry
//!   of `kind: Namespace` matches every service account of that namespace
//!   in either form. So does a service account written out in Linkerd's
//!   form under the workload's trust domain and control-plane namespace
//!   (`web.ns.serviceaccount.identity.linkerd.<td>`, `*.ns...` for a
//!   namespace, or a wildcard over every namespace of the trust domain:
//!   `*.serviceaccount.identity.linkerd.<td>`, `*.linkerd.<td>` or
//!   `*.<td>`, which also matches every `spiffe://<td>/ns/<ns>/sa/<name>`
//!   with one namespace and one account segment): a policy copied from
//!   Linkerd admits the same clients
//!   when they carry SPIFFE IDs (the account is what comes before the last
//!   `.` ahead of the namespace, since an account name may hold dots and
//!   a namespace never does). References are read in lowercase, as
//!   Kubernetes names are, so both forms of an account written `Api`
//!   match `api`; so is the control-plane namespace of Linkerd's form.
//!   Other names match only as written.
//! - As Linkerd's admission webhook does, these are errors: a network
//!   `except` that covers all of its `cidr` (the network would match no
//!   address); a ServerAuthorization's `unauthenticatedTLS: true` beside
//!   `identities` or `serviceAccounts`, which it would ignore, admitting
//!   every TLS client; an `identityRefs` entry of `kind: Namespace`
//!   with a `namespace`; and a reference naming a namespace with a `.`,
//!   which no Kubernetes namespace has and which Linkerd's form would read
//!   as another account of another namespace.
//! - A resource without a namespace belongs to the workload's, as with
//!   `kubectl apply -n`. A reference's `namespace` absent or `""`
//!   (`targetRef`, `requiredAuthenticationRefs`, `identityRefs`, a
//!   ServerAuthorization's `serviceAccounts`, `clientRefs`) is the referring resource's own, as
//!   Linkerd's CRDs say ("unspecified or empty string"), not a namespace
//!   named `""`.
//! - A `ServerAuthorization` without `networks`, or with `networks: []`,
//!   admits clients from [`Workload::cluster_networks`] only, as Linkerd's
//!   policy controller serves it (`to_authz` in linkerd2's
//!   `policy-controller/grpc/src/inbound.rs`): an authorization written
//!   for the cluster's clients must not also let in every routable address.
//!   To admit every address, write `networks: [{cidr: 0.0.0.0/0}, {cidr:
//!   "::/0"}]`. A client without a known address (no `ConnectionInfo`)
//!   matches no network.
//! - An `HTTPLocalRateLimitPolicy` (Linkerd 2.17+) caps how often the
//!   clients a Server allows may call it, so that one client cannot take
//!   all of a workload's capacity. It targets one Server of its namespace.
//!   Once a request is allowed, it must pass `total.requestsPerSecond`
//!   (all clients together), then the limit of the last `overrides` entry
//!   whose `clientRefs` (ServiceAccounts, resolved to identities as
//!   `identityRefs` are; a `namespace` absent or `""` is the policy's, as
//!   Linkerd's CRD says) name the client, shared by that entry's clients,
//!   or else `identity.requestsPerSecond`, one limit per client identity,
//!   which clients without an identity share. Each limit admits a burst
//!   of one second's requests, then one request per `1/rps` seconds; a
//!   request over one gets 429, or gRPC `RESOURCE_EXHAUSTED` (8), whose
//!   `mesh-error` (and `grpc-message`) names the limit and its rate, as
//!   linkerd2-proxy's `l5d-proxy-error` does, and is counted in `inbound_http_local_ratelimit_total`. A request whose
//!   route rule redirects is answered with the redirect without consulting
//!   the limit, as linkerd2-proxy applies a rule's filters first
//!   (`HttpPolicyService::call`): it spends no share and never gets 429,
//!   since it asks nothing of the application. The order, the
//!   burst, the shared limits and the metric follow linkerd2-proxy
//!   (`LocalRateLimit::check`); rates must be above 0, and an `identity`
//!   or override rate at most the total, as Linkerd's admission webhook
//!   requires. At most 10 000 identities are tracked per policy: idle
//!   ones are forgotten (which changes no decision), and identities that
//!   do not fit among active ones share one more limit.
//! - A reload keeps the state of every rate limit it does not change.
//!   Policies reload whenever any policy file changes; were limits to
//!   start full at each reload, every unrelated edit would let each client
//!   burst again, and a client could time its requests to reloads. So when
//!   [`PolicyStore`] puts a new policy in force, each limit of the same
//!   Server (by name) at the same rate, in the same scope, carries over
//!   with what it has used: the `total`, the `identity` limit of each
//!   client (and of clients without an identity), and each `overrides`
//!   entry whose `clientRefs` name the same identities. A limit whose
//!   rate or clients changed, and a new one, starts full. The new policy
//!   shares the old one's limiters rather than copying them, so requests
//!   still deciding on the old policy count too. This happens once per
//!   reload, not per request.
//!
//! # Where this differs from Linkerd, on purpose
//!
//! - `accessPolicy` on a `v1beta1` or `v1beta2` Server is an error:
//!   Linkerd's CRD has it at `v1beta3` only, so its API server drops it
//!   there and the port stays at `deny`.
//! - References to resources that do not exist (a `targetRef`, an
//!   authentication, a route's Server parent, a ServerAuthorization's
//!   `server.name`) are errors, not silently inert rules.
//! - A field of `spec` that is not read is an error in a
//!   `MeshTLSAuthentication`, `NetworkAuthentication`,
//!   `AuthorizationPolicy` or `ServerAuthorization` (elsewhere, a
//!   warning). Every field of theirs narrows who gets in, so a misspelt
//!   `except` or `networks` would silently admit clients it was meant to
//!   refuse; the API server would prune it just as silently, and only
//!   `kubectl`'s strict field validation catches it. So is a field of a
//!   `Server`'s `podSelector` that is not read: a misspelt `matchLabels`
//!   leaves an empty selector, which selects every pod, and the Server
//!   would take, and open as it says, a port of workloads it was not
//!   meant for. And so is one of an `HTTPRoute` or `GRPCRoute` with a
//!   Server parent, in its `spec`, its rules, their `matches`, or the
//!   header modifiers and redirects it applies: a misspelt `matches`
//!   matches every request, and a misspelt `hostnames` every host, where
//!   the Server would refuse what none of its routes matches. (Fields the
//!   Gateway API has that a Server's routes do not use, such as
//!   `backendRefs` and `sessionPersistence`, stay warnings.) So is one of
//!   an `HTTPLocalRateLimitPolicy`'s `spec`: each field is a limit, and a
//!   misspelt `identity` would leave every client unlimited.
//! - A network whose `cidr` has host bits set (`10.1.2.3/8`) is an error
//!   rather than the network it truncates to, as is an `except` outside
//!   its `cidr`, which could only be inert: both are more often a typo
//!   than what was meant.
//! - A `List` of resources (as `kubectl get -o yaml` writes one), or a
//!   `<Kind>List` of a kind read here, is an error: `kubectl apply`
//!   would apply its items, but they are not read here, and skipped like
//!   a kind authorization does not use, a listed `Server` would leave its
//!   port to the default policy. Write each item as a document.
//! - Two Servers may select one port of the workload, as Linkerd's
//!   admission webhook allows, and as its policy controller does, the
//!   oldest by `metadata.creationTimestamp` takes it, then the first by
//!   name, whatever the order of the documents; a reload that adds a newer
//!   one leaves the port where it was. Each other one covers nothing, so
//!   what targets it by name (authorizations, routes, a rate limit)
//!   applies to nothing. Where Linkerd's controller only logs this, here
//!   the Server that lost the port gets a [`WarningKind::NotApplied`]
//!   warning naming the port and the Server that took it. A Server without
//!   a timestamp, as policy files often are, ranks after those with one,
//!   as routes do (applied, it would be the newest; Linkerd's sort puts
//!   one first, but in a cluster every Server has one); a timestamp that
//!   is not an RFC 3339 time is an error.
//! - Two `HTTPLocalRateLimitPolicy`s targeting one Server is an error.
//!   Linkerd accepts the older (by creation time, then name) and marks the
//!   other not accepted; policy files have no creation times, and a limit
//!   that silently does nothing is the mistake this crate refuses.
//! - A policy change that leaves a Server's rate limit alone keeps the
//!   limit's state (see above). linkerd2-proxy builds a Server's limiters
//!   afresh from every update of that Server's policy, an authorization
//!   or route change included, which lets clients burst again at each.
//! - A `ServerAuthorization` whose `server.selector` matches no Server by
//!   its labels applies to the Servers whose `podSelector.matchLabels` it
//!   matches, with a [`WarningKind::Deviation`] warning. Linkerd would apply
//!   it to none, and the guide our users follow writes exactly that. It
//!   must hold for every pod such a Server selects: a pod may carry any
//!   label the `matchLabels` do not name, so a requirement that such a
//!   label be absent (`DoesNotExist`) or not have a value (`NotIn`) does
//!   not select the Server, which would open it to pods it was written to
//!   leave out.
//!   `ServerAuthorization` is read at `v1beta2` as at `v1beta1`, with a
//!   warning, for the same reason.
//! - A client on loopback (`127.0.0.1`, `::1`) is decided like any
//!   other. linkerd2-proxy allows loopback on every port whatever the
//!   policy, since in a pod only the pod itself is there; a process that
//!   embeds the mesh, or a sidecar on a shared host, cannot tell the
//!   workload's own calls from another local process's.
//! - An `HTTPRoute` rule under a Server applies its
//!   `RequestHeaderModifier` and `RequestRedirect` filters to the requests
//!   it allows, as Linkerd's inbound proxy does, and its
//!   `ResponseHeaderModifier` too, which Linkerd's policy controller drops
//!   from inbound routes (with [`ApplyFiltersLayer`]). Its other filters,
//!   its timeouts and retries are reported as not applied, and the rest of
//!   the rule applies; Linkerd's controller ignores a whole route with
//!   such a filter. See [`filters`].

pub mod authorize;
mod default_policy;
pub mod egress;
mod evaluate;
mod explain;
pub mod filters;
mod metrics;
pub mod opaque;
mod policy;
mod ratelimit;
pub mod resource;
mod store;
mod warnings;
mod workload;

pub use self::{
    authorize::{Authorize, AuthorizeLayer},
    default_policy::{DefaultPolicy, InvalidDefaultPolicy},
    evaluate::{Client, ClientTls},
    explain::{ExplainQuery, ExplainedAuthz, Explanation},
    filters::{ApplyFilters, ApplyFiltersLayer},
    metrics::PolicyMetrics,
    opaque::{AuthorizeOpaque, AuthorizeOpaqueLayer},
    policy::{
        AllowedConnection, AllowedRequest, AuthzKind, Compiled, ConnectionDecision, Decision,
        DeniedConnection, DeniedRequest, Policy, RouteNotFound,
    },
    ratelimit::{RateLimitScope, RateLimited},
    resource::PolicySource,
    store::{PolicyFiles, PolicyStore, PolicyTexts, PolicyWatcher},
    warnings::{PolicyWarning, PolicyWarnings, WarningKind},
    workload::{
        DEFAULT_EGRESS_NAMESPACE, DEFAULT_PROBE_PATHS, DEFAULT_TRUST_DOMAIN, PolicyConfig,
        Workload, default_cluster_networks,
    },
};

/// The Prometheus client whose
/// [`Registry`](prometheus_client::registry::Registry) [`PolicyMetrics::register`] registers in, re-exported
/// so that a service needs no dependency of its own to hold one, nor to
/// keep its version in step.
///
/// ```
/// use mesh_policy::{PolicyMetrics, prometheus_client::registry::Registry};
///
/// let mut registry = Registry::default();
/// let metrics = PolicyMetrics::register(&mut registry);
/// # let _ = metrics;
/// ```
pub use prometheus_client;

/// The README's examples, compiled as doctests so that they keep up with the
/// crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
