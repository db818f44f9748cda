//! Authorization metrics, with Linkerd's names.
//!
//! Label values come only from configuration (Server, route and
//! authorization names) and closed sets (`tls`, rule kinds, results), so
//! the number of series is bounded by the policy, never by traffic. Each
//! compiled [`Policy`](crate::Policy) resolves the counters of its rules
//! once, so a request increments a counter it already holds.

use std::sync::Arc;

use mesh_core::{
    labels::ResourceKind,
    resource::{GATEWAY_GROUP, POLICY_GROUP},
};
use prometheus_client::{
    encoding::{EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::{AuthzKind, evaluate::ClientTls};

/// The metric families of authorization. Cloning shares them.
///
/// ```
/// let mut registry = prometheus_client::registry::Registry::default();
/// let metrics = mesh_policy::PolicyMetrics::register(&mut registry);
/// # drop(metrics);
/// ```
#[derive(Clone, Debug, Default)]
pub struct PolicyMetrics {
    pub(crate) http_allow: Family<HttpLabels, Counter>,
    pub(crate) http_deny: Family<RouteLabels, Counter>,
    pub(crate) http_not_found: Family<ServerLabels, Counter>,
    pub(crate) http_ratelimit: Family<RateLimitLabels, Counter>,
    pub(crate) tcp_allow: Family<TcpLabels, Counter>,
    pub(crate) tcp_deny: Family<ServerLabels, Counter>,
    pub(crate) tcp_terminate: Family<ServerLabels, Counter>,
    pub(crate) rule_hits: Family<RuleLabels, Counter>,
    pub(crate) reloads: Family<ReloadLabels, Counter>,
}

impl PolicyMetrics {
    /// Families registered into `registry`:
    ///
    /// - `inbound_http_authz_allow_total{srv_group, srv_kind, srv_name,
    ///   srv_port, route_group, route_kind, route_name, authz_group,
    ///   authz_kind, authz_name, tls}`: requests allowed, audit-mode ones
    ///   included;
    /// - `inbound_http_authz_deny_total{srv_group, srv_kind, srv_name,
    ///   srv_port, route_group, route_kind, route_name, tls}`: requests
    ///   denied, by route and without the `authz_*` labels, as
    ///   linkerd2-proxy keys its denials (`RouteLabels` in its
    ///   `app/inbound/src/metrics/authz.rs`): a denial is no
    ///   authorization's doing, and `linkerd viz authz` shows a route's
    ///   denials as one unauthorized row. Which fallback denied (the
    ///   Server's `accessPolicy`, or the default policy on a port no
    ///   Server covers) is not lost: `inbound_authz_rule_hits_total`
    ///   counts it as `rule_kind="default",rule_name="<policy>"` with
    ///   `result="deny"`;
    /// - `inbound_http_route_not_found_total{srv_group, srv_kind, srv_name,
    ///   srv_port, tls}`: requests that matched no route of their Server,
    ///   keyed by the Server as linkerd2-proxy keys them (`ServerLabel`);
    /// - `inbound_http_local_ratelimit_total{srv_group, srv_kind, srv_name,
    ///   srv_port, ratelimit_group, ratelimit_kind, ratelimit_name,
    ///   ratelimit_scope, tls}`: requests refused by an
    ///   `HTTPLocalRateLimitPolicy`, with linkerd2-proxy's name, help and
    ///   labels (its `app/inbound/src/metrics/authz.rs`), so that its
    ///   dashboards and alerts read ours: `srv_group` `policy.linkerd.io`,
    ///   `srv_kind` `server`, `srv_port` the number of the port the Server
    ///   covers (a named port resolved), `ratelimit_group`
    ///   `policy.linkerd.io`, `ratelimit_kind` `HTTPLocalRateLimitPolicy`;
    ///   `ratelimit_scope` is `total`, or `identity` for a client's own
    ///   limit or an override's, as in linkerd2-proxy. Every one of these
    ///   is known when a policy is compiled (a Server covers one port, and
    ///   every request it decides came to that port), so each series'
    ///   counter is resolved then and a refusal increments a counter it
    ///   holds. linkerd2-proxy's labels of the connection are left out,
    ///   because no counter could be resolved for them before the request:
    ///   the address the connection came to (`target_addr`, `target_ip`,
    ///   `target_port`), the client's identity (`client_id`, which would
    ///   also make the number of series grow with the clients) and why a
    ///   plaintext client has no TLS (`no_tls_reason`). linkerd2-proxy
    ///   looks its counter up in a map under a lock for each refusal; here
    ///   that would be a lookup, and for a new address or client an
    ///   allocation, on the request path. These requests were allowed
    ///   first, so the allow counter has them too;
    /// - `inbound_tcp_authz_allow_total{srv_group, srv_kind, srv_name,
    ///   srv_port, authz_group, authz_kind, authz_name, tls}`;
    /// - `inbound_tcp_authz_deny_total{srv_group, srv_kind, srv_name,
    ///   srv_port, tls}` and `inbound_tcp_authz_terminate_total{...}`
    ///   (open connections closed by a policy change), with the same
    ///   labels: by Server and without `authz_*`, as linkerd2-proxy keys
    ///   them (`ServerLabel`), the rule hits telling the fallback again;
    /// - `inbound_authz_rule_hits_total{rule_kind, rule_name, srv_kind,
    ///   srv_name, result}`: one series per rule that decided, with
    ///   `result` `allow`, `audit`, `deny` or `not_found`; `srv_kind`
    ///   (`server`, or `default` for the default server) keeps a Server
    ///   named as a policy is apart from the default server;
    /// - `inbound_policy_reloads_total{result}`: `ok` or `error`.
    ///
    /// The group and kind labels of the authorization families are
    /// linkerd2-proxy's, so that its dashboards read ours and so that
    /// resources of one name and different kinds count apart (an
    /// `AuthorizationPolicy` and a `ServerAuthorization` named alike, a
    /// policy named `deny` and an `accessPolicy: deny`): a Server is
    /// `srv_group="policy.linkerd.io",srv_kind="server"`; a route
    /// `route_kind` `HTTPRoute` or `GRPCRoute`, the kind as the API spells
    /// it (Linkerd's policy controller sends the route resource's own
    /// kind), in its own group (`policy.linkerd.io` or
    /// `gateway.networking.k8s.io`); an authorization
    /// `authz_group="policy.linkerd.io"` and `authz_kind`
    /// `authorizationpolicy` or `serverauthorization`. What no resource
    /// defines (the default server of a port no Server covers, the
    /// `default` and `probe` routes of a Server without routes, the
    /// probe exception, a default policy or `accessPolicy`) has kind
    /// `default` and an empty group, as in Linkerd; the default server
    /// and a default policy are named by the policy alone
    /// (`srv_kind="default",srv_name="all-unauthenticated"`), as Linkerd's
    /// policy controller names them since it sends the kind (the
    /// `default:<policy>` names of older control planes said the kind in
    /// the name). A Server named like a policy (`all-unauthenticated`)
    /// stays apart from the default server by `srv_kind`.
    ///
    /// `srv_port` is the port a Server covers (a named port resolved), as
    /// linkerd2-proxy writes it after `srv_name`: every request and
    /// connection a Server decides came to that port, so the series are
    /// resolved with it when the policy is compiled. The default server's
    /// series carry the port the request or connection came to (the
    /// application's port, for a sidecar that authorizes as that port),
    /// as linkerd2-proxy's do (its policy controller sends a default
    /// server for each port): a policy makes the default server of a port
    /// at the port's first request or connection, with its counters
    /// resolved, and keeps it, so later ones increment counters it holds,
    /// and a policy put in force in place of another makes those of the
    /// ports the other had made. Their number is bounded by the ports,
    /// never by the clients. Only a request that names no port (no
    /// connection's address, and a layer given none) is counted without
    /// `srv_port`.
    ///
    /// `tls` is `true` for a TLS client, with a certificate or without one,
    /// and `no_identity` for a plaintext one, as linkerd2-proxy labels
    /// them: a client that encrypts without a certificate is not counted
    /// as unencrypted.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "inbound_http_authz_allow",
            "HTTP requests allowed by authorization",
            metrics.http_allow.clone(),
        );
        registry.register(
            "inbound_http_authz_deny",
            "HTTP requests denied by authorization",
            metrics.http_deny.clone(),
        );
        registry.register(
            "inbound_http_route_not_found",
            "HTTP requests that matched no route of their server",
            metrics.http_not_found.clone(),
        );
        registry.register(
            "inbound_http_local_ratelimit",
            "The total number of inbound HTTP requests that were rate-limited",
            metrics.http_ratelimit.clone(),
        );
        registry.register(
            "inbound_tcp_authz_allow",
            "Connections allowed by authorization",
            metrics.tcp_allow.clone(),
        );
        registry.register(
            "inbound_tcp_authz_deny",
            "Connections refused by authorization",
            metrics.tcp_deny.clone(),
        );
        registry.register(
            "inbound_tcp_authz_terminate",
            "Open connections closed because a policy change no longer allows them",
            metrics.tcp_terminate.clone(),
        );
        registry.register(
            "inbound_authz_rule_hits",
            "Decisions made by each authorization rule",
            metrics.rule_hits.clone(),
        );
        registry.register(
            "inbound_policy_reloads",
            "Policy reloads, by result",
            metrics.reloads.clone(),
        );
        metrics
    }

    pub(crate) fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }
}

/// `tls` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TlsLabel {
    True,
    NoIdentity,
    /// TLS passed through to the application. Linkerd writes the server
    /// name beside it (`sni`); these families take label values from the
    /// policy and closed sets only, so they leave it out.
    Opaque,
}

impl EncodeLabelValue for TlsLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let value = match self {
            Self::True => "true",
            Self::NoIdentity => "no_identity",
            Self::Opaque => "opaque",
        };
        EncodeLabelValue::encode(&value, encoder)
    }
}

/// The group and kind of a resource an authorization family names, with
/// linkerd2-proxy's values (the `group` and `kind` of the metadata its
/// policy controller sends): without them an `AuthorizationPolicy` and a
/// `ServerAuthorization` of one name, or a policy named `deny` and a
/// Server's `accessPolicy: deny`, would count in one series. Both are
/// known when a policy is compiled, so a series' key holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GroupKind {
    group: &'static str,
    kind: &'static str,
}

impl GroupKind {
    /// What Linkerd writes for what no resource defines: the default
    /// server of a port no Server covers, the default and probe routes of
    /// a Server without routes, a default policy or `accessPolicy`, and
    /// the probe exception.
    pub(crate) const DEFAULT: Self = Self {
        group: "",
        kind: "default",
    };

    /// A `Server`.
    pub(crate) const SERVER: Self = Self {
        group: POLICY_GROUP,
        kind: "server",
    };

    const POLICY_AUTHZ: Self = Self {
        group: POLICY_GROUP,
        kind: "authorizationpolicy",
    };
    const SERVER_AUTHZ: Self = Self {
        group: POLICY_GROUP,
        kind: "serverauthorization",
    };
    const POLICY_HTTP_ROUTE: Self = Self {
        group: POLICY_GROUP,
        kind: "HTTPRoute",
    };
    const POLICY_GRPC_ROUTE: Self = Self {
        group: POLICY_GROUP,
        kind: "GRPCRoute",
    };
    const GATEWAY_HTTP_ROUTE: Self = Self {
        group: GATEWAY_GROUP,
        kind: "HTTPRoute",
    };
    const GATEWAY_GRPC_ROUTE: Self = Self {
        group: GATEWAY_GROUP,
        kind: "GRPCRoute",
    };

    /// An authorization of `kind`.
    pub(crate) fn authz(kind: AuthzKind) -> Self {
        match kind {
            AuthzKind::AuthorizationPolicy => Self::POLICY_AUTHZ,
            AuthzKind::ServerAuthorization => Self::SERVER_AUTHZ,
            AuthzKind::Probe | AuthzKind::Default => Self::DEFAULT,
        }
    }

    /// A route of the API group `group`: a `GRPCRoute` (of the Gateway
    /// API only) or an `HTTPRoute` of either group.
    pub(crate) fn route(group: &str, grpc: bool) -> Self {
        match (group == GATEWAY_GROUP, grpc) {
            (true, true) => Self::GATEWAY_GRPC_ROUTE,
            (true, false) => Self::GATEWAY_HTTP_ROUTE,
            (false, true) => Self::POLICY_GRPC_ROUTE,
            (false, false) => Self::POLICY_HTTP_ROUTE,
        }
    }

    /// The same group and kind as the request extension that tells
    /// metrics who decided ([`mesh_core::labels::Authorized`]) holds them:
    /// one `static` per pair, so that every request refers to the same
    /// one and comparing two is a pointer's work.
    pub(crate) fn resource(self) -> &'static ResourceKind {
        const fn of(kind: GroupKind) -> ResourceKind {
            ResourceKind {
                group: kind.group,
                kind: kind.kind,
            }
        }
        static KINDS: [ResourceKind; 7] = [
            of(GroupKind::SERVER),
            of(GroupKind::POLICY_AUTHZ),
            of(GroupKind::SERVER_AUTHZ),
            of(GroupKind::POLICY_HTTP_ROUTE),
            of(GroupKind::GATEWAY_HTTP_ROUTE),
            of(GroupKind::GATEWAY_GRPC_ROUTE),
            of(GroupKind::POLICY_GRPC_ROUTE),
        ];
        static DEFAULT: ResourceKind = ResourceKind::DEFAULT;
        KINDS
            .iter()
            .find(|known| known.group == self.group && known.kind == self.kind)
            .unwrap_or(&DEFAULT)
    }

    /// The group and kind under `keys`' first two label names, then
    /// `name` under the third.
    fn encode_named(
        self,
        [group, kind, name_key]: [&'static str; 3],
        name: &str,
        encoder: &mut LabelSetEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        (group, self.group).encode(encoder.encode_label())?;
        (kind, self.kind).encode(encoder.encode_label())?;
        (name_key, name).encode(encoder.encode_label())
    }
}

/// The labels of `inbound_http_authz_allow_total`, in linkerd2-proxy's
/// order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HttpLabels {
    pub(crate) srv: GroupKind,
    pub(crate) srv_name: Arc<str>,
    /// The port the server covers or answers; `None` for no port.
    pub(crate) srv_port: Option<u16>,
    pub(crate) route: GroupKind,
    pub(crate) route_name: Arc<str>,
    pub(crate) authz: GroupKind,
    pub(crate) authz_name: Arc<str>,
    pub(crate) tls: TlsLabel,
}

impl EncodeLabelSet for HttpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_server(self.srv, &self.srv_name, self.srv_port, encoder)?;
        self.route
            .encode_named(ROUTE_KEYS, &self.route_name, encoder)?;
        self.authz
            .encode_named(AUTHZ_KEYS, &self.authz_name, encoder)?;
        ("tls", self.tls).encode(encoder.encode_label())
    }
}

/// The labels of `inbound_http_authz_deny_total`, in linkerd2-proxy's
/// order: a route's, without the authorization's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RouteLabels {
    pub(crate) srv: GroupKind,
    pub(crate) srv_name: Arc<str>,
    /// The port the server covers or answers; `None` for no port.
    pub(crate) srv_port: Option<u16>,
    pub(crate) route: GroupKind,
    pub(crate) route_name: Arc<str>,
    pub(crate) tls: TlsLabel,
}

impl EncodeLabelSet for RouteLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_server(self.srv, &self.srv_name, self.srv_port, encoder)?;
        self.route
            .encode_named(ROUTE_KEYS, &self.route_name, encoder)?;
        ("tls", self.tls).encode(encoder.encode_label())
    }
}

/// The labels of `inbound_http_route_not_found_total`,
/// `inbound_tcp_authz_deny_total` and `inbound_tcp_authz_terminate_total`,
/// in linkerd2-proxy's order: a Server's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ServerLabels {
    pub(crate) srv: GroupKind,
    pub(crate) srv_name: Arc<str>,
    /// The port the server covers or answers; `None` for no port.
    pub(crate) srv_port: Option<u16>,
    pub(crate) tls: TlsLabel,
}

impl EncodeLabelSet for ServerLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_server(self.srv, &self.srv_name, self.srv_port, encoder)?;
        ("tls", self.tls).encode(encoder.encode_label())
    }
}

/// The labels of `inbound_http_local_ratelimit_total`. The group and kind
/// of the Server and of the policy are the same for every series (a rate
/// limit targets only a Server), so they are written as they are encoded
/// rather than held: linkerd2-proxy's values, the Server's `labels` its
/// policy controller sends (`kind` `server`) and the policy's resource
/// metadata (`kind` `HTTPLocalRateLimitPolicy`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RateLimitLabels {
    pub(crate) srv_name: Arc<str>,
    /// The port the Server covers, or `None` for a Server that covers no
    /// port of the workload, whose counters no request reaches.
    pub(crate) srv_port: Option<u16>,
    pub(crate) ratelimit_name: Arc<str>,
    pub(crate) ratelimit_scope: &'static str,
    pub(crate) tls: TlsLabel,
}

impl EncodeLabelSet for RateLimitLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_server(GroupKind::SERVER, &self.srv_name, self.srv_port, encoder)?;
        ("ratelimit_group", POLICY_GROUP).encode(encoder.encode_label())?;
        ("ratelimit_kind", "HTTPLocalRateLimitPolicy").encode(encoder.encode_label())?;
        ("ratelimit_name", &*self.ratelimit_name).encode(encoder.encode_label())?;
        ("ratelimit_scope", self.ratelimit_scope).encode(encoder.encode_label())?;
        ("tls", self.tls).encode(encoder.encode_label())
    }
}

/// The labels of `inbound_tcp_authz_allow_total`, in linkerd2-proxy's
/// order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TcpLabels {
    pub(crate) srv: GroupKind,
    pub(crate) srv_name: Arc<str>,
    /// The port the server covers or answers; `None` for no port.
    pub(crate) srv_port: Option<u16>,
    pub(crate) authz: GroupKind,
    pub(crate) authz_name: Arc<str>,
    pub(crate) tls: TlsLabel,
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_server(self.srv, &self.srv_name, self.srv_port, encoder)?;
        self.authz
            .encode_named(AUTHZ_KEYS, &self.authz_name, encoder)?;
        ("tls", self.tls).encode(encoder.encode_label())
    }
}

/// The label names of a server, a route and an authorization: group,
/// kind and name.
const SERVER_KEYS: [&str; 3] = ["srv_group", "srv_kind", "srv_name"];
const ROUTE_KEYS: [&str; 3] = ["route_group", "route_kind", "route_name"];
const AUTHZ_KEYS: [&str; 3] = ["authz_group", "authz_kind", "authz_name"];

/// A server's labels, as every family writes them: its group, kind and
/// name, then its port.
fn encode_server(
    srv: GroupKind,
    name: &str,
    port: Option<u16>,
    encoder: &mut LabelSetEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    srv.encode_named(SERVER_KEYS, name, encoder)?;
    encode_port(port, encoder)
}

/// `srv_port`, written after `srv_name` as linkerd2-proxy writes it, and
/// left out where no one port is known.
fn encode_port(
    port: Option<u16>,
    encoder: &mut LabelSetEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match port {
        Some(port) => ("srv_port", port).encode(encoder.encode_label()),
        None => Ok(()),
    }
}

/// The labels of `inbound_authz_rule_hits_total`. `srv_kind` keeps the
/// default server apart from a Server of its name (one named
/// `all-unauthenticated`, say), the default server being named by its
/// policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RuleLabels {
    pub(crate) rule_kind: &'static str,
    pub(crate) rule_name: Arc<str>,
    pub(crate) srv: GroupKind,
    pub(crate) srv_name: Arc<str>,
    pub(crate) result: &'static str,
}

impl EncodeLabelSet for RuleLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("rule_kind", self.rule_kind).encode(encoder.encode_label())?;
        ("rule_name", &*self.rule_name).encode(encoder.encode_label())?;
        ("srv_kind", self.srv.kind).encode(encoder.encode_label())?;
        ("srv_name", &*self.srv_name).encode(encoder.encode_label())?;
        ("result", self.result).encode(encoder.encode_label())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    result: &'static str,
}

/// A counter per `tls` value, resolved once.
#[derive(Clone, Debug, Default)]
pub(crate) struct ByTls {
    /// Clients with TLS, mutual or not.
    tls: Counter,
    plaintext: Counter,
    /// Clients whose TLS was passed through (`tls="opaque"`): only a
    /// connection's families have the series, since such a connection
    /// never carries an HTTP request the mesh reads.
    opaque: Option<Counter>,
}

impl ByTls {
    /// The counters of a request's family: `tls="true"` and
    /// `tls="no_identity"`.
    pub(crate) fn resolve<L>(family: &Family<L, Counter>, labels: impl Fn(TlsLabel) -> L) -> Self
    where
        L: Clone + std::hash::Hash + Eq,
    {
        Self {
            tls: family.get_or_create_owned(&labels(TlsLabel::True)),
            plaintext: family.get_or_create_owned(&labels(TlsLabel::NoIdentity)),
            opaque: None,
        }
    }

    /// The counters of a connection's family: a request's, and
    /// `tls="opaque"`.
    pub(crate) fn resolve_tcp<L>(
        family: &Family<L, Counter>,
        labels: impl Fn(TlsLabel) -> L,
    ) -> Self
    where
        L: Clone + std::hash::Hash + Eq,
    {
        Self {
            opaque: Some(family.get_or_create_owned(&labels(TlsLabel::Opaque))),
            ..Self::resolve(family, labels)
        }
    }

    pub(crate) fn get(&self, tls: ClientTls<'_>) -> &Counter {
        match tls {
            ClientTls::Mutual(_) | ClientTls::NoClientCert => &self.tls,
            ClientTls::Plaintext => &self.plaintext,
            // A request's family has no such series: no request comes on
            // such a connection.
            ClientTls::Passthrough(_) => self.opaque.as_ref().unwrap_or(&self.plaintext),
        }
    }
}
