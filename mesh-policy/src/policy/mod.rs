//! A policy compiled for one workload: the index requests are checked
//! against.
//!
//! Compiling does everything that does not depend on the request: it
//! resolves references, picks the Servers that select the workload and the
//! ports they cover, sorts each Server's route matches by the Gateway
//! API's precedence, builds identity and network sets, and resolves the
//! metric counters of every rule. Evaluating a request is then a port
//! lookup, a walk over that Server's sorted matches, and a check of the
//! matched route's authorizations, none of which allocates.

mod authz;
mod build;
mod client;
mod decision;
mod defaults;
mod entry;
mod normalize;
mod ratelimit;
mod refs;
mod route;
mod server_authz;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Uri, header::HOST};
use mesh_core::resource::ResourceError;
use prometheus_client::metrics::counter::Counter;

use self::defaults::DefaultServers;
pub use self::{
    client::AuthzKind,
    decision::{
        AllowedConnection, AllowedRequest, ConnectionDecision, Decision, DeniedConnection,
        DeniedRequest, RouteNotFound,
    },
};
pub(crate) use self::{
    client::{Authz, IdentitySet, NetworkSet, Requirement},
    route::{HostMatch, HostRank, MatchEntry},
};
use crate::{
    DefaultPolicy, PolicyConfig, PolicyMetrics, PolicySource, PolicyWarnings, Workload,
    egress::EgressNetworks,
    evaluate::Client,
    metrics::{ByTls, GroupKind},
    ratelimit::LocalRateLimit,
    resource::{PortRef, ProxyProtocol},
};

/// The most distinct hosts a request's `Host` headers may name: each
/// costs a decision, and HTTP has a server refuse a request with more than
/// one `Host` at all (RFC 9112, section 3.2), so a request naming more is
/// refused rather than decided that many times over.
const MAX_HOSTS: usize = 8;

/// A policy compiled for one [`Workload`]. Immutable; share it in an `Arc`
/// (a [`PolicyStore`](crate::PolicyStore) does).
#[derive(Debug)]
pub struct Policy {
    /// Covered ports, sorted, with the index of their server.
    ports: Vec<(u16, usize)>,
    servers: Vec<ServerEntry>,
    /// The default server as a question sees it (an explanation, a
    /// port's protocol) on a port that has none of its own yet: its
    /// counters are in families no registry holds, so that asking shows
    /// in no scrape.
    default: ServerEntry,
    /// The default server of each port no Server covers, made at the
    /// port's first request or connection.
    defaults: DefaultServers,
    workload: Workload,
    config: PolicyConfig,
    /// The `EgressNetwork`s that apply to the workload's clients.
    egress: EgressNetworks,
}

/// A policy and what it did not enforce.
#[derive(Debug)]
pub struct Compiled {
    /// The policy.
    pub policy: Policy,
    /// Kinds, fields and filters read but not enforced.
    pub warnings: PolicyWarnings,
}

impl Compiled {
    /// The policy's egress networks ([`Policy::egress_networks`]).
    pub fn egress_networks(&self) -> &EgressNetworks {
        self.policy.egress_networks()
    }
}

impl Policy {
    /// Reads and compiles policy documents for `workload`.
    ///
    /// # Errors
    ///
    /// The first problem, as a [`ResourceError`] naming the document, kind,
    /// name, field and line: malformed YAML, a missing field, a bad value
    /// (CIDR, regular expression, identity, creation timestamp, selector),
    /// two resources of a kind with one name, a reference to nothing, or a
    /// field not read where it would
    /// widen who gets in (see the crate docs: in an authentication or
    /// authorization, a Server's `podSelector`, a route under a Server).
    pub fn compile(
        sources: &[PolicySource<'_>],
        workload: &Workload,
        config: &PolicyConfig,
        metrics: &PolicyMetrics,
    ) -> Result<Compiled, ResourceError> {
        build::compile(sources, workload, config, metrics)
    }

    /// The policy with no resources: every port gets the default policy.
    pub fn empty(workload: &Workload, config: &PolicyConfig, metrics: &PolicyMetrics) -> Self {
        build::empty(workload, config, metrics)
    }

    /// The workload the policy was compiled for.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The configuration the policy was compiled with.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The `EgressNetwork`s that apply to the workload's clients: those of
    /// its namespace, else those of the global egress namespace, ready for
    /// [`EgressNetworks::find`]. They are part of the policy, so that a
    /// [`PolicyStore`](crate::PolicyStore) reload puts them in force with
    /// the rest of it, and one that fails keeps the last good ones.
    pub fn egress_networks(&self) -> &EgressNetworks {
        &self.egress
    }

    /// The ports Servers cover, with each Server's name and protocol, in
    /// port order. The sidecar uses the protocol to treat opaque ports.
    pub fn covered_ports(&self) -> impl Iterator<Item = (u16, &str, ProxyProtocol)> {
        self.ports
            .iter()
            .filter_map(|&(port, i)| self.servers.get(i).map(|s| (port, &*s.name, s.protocol)))
    }

    /// The protocol of `port`: its Server's `proxyProtocol`, or `unknown`
    /// when no Server covers it.
    pub fn protocol(&self, port: u16) -> ProxyProtocol {
        self.server_at(port).protocol
    }

    /// Decides a request.
    pub fn evaluate<B>(&self, port: u16, client: &Client<'_>, req: &Request<B>) -> Decision<'_> {
        self.evaluate_head(port, client, req.method(), req.uri(), req.headers())
    }

    /// Decides a request from its head.
    ///
    /// A path that is not in normal form (`/public/../admin`, `//admin`,
    /// `/%61dmin`) is decided twice, as written and as the application
    /// will likely read it, and is allowed only if both are allowed; else
    /// the normal form's refusal stands. Routes match the path as written,
    /// as Linkerd's do, so without this a client could reach a route it
    /// may not use through the spelling of one it may.
    ///
    /// Likewise, on a Server whose routes name hostnames, a request whose
    /// URI names one host and whose `Host` header another, or with several
    /// `Host` headers naming different hosts, is allowed only if it is
    /// under each: routes match the URI's host, else the first header's,
    /// but an application may route by a header, and by any of several.
    /// One whose `Host` headers name more than eight distinct hosts is
    /// refused.
    pub fn evaluate_head(
        &self,
        port: u16,
        client: &Client<'_>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Decision<'_> {
        self.evaluate_on(self.server_for(port), client, method, uri, headers)
    }

    /// Decides a request to `server`, as
    /// [`evaluate_head`](Self::evaluate_head) does. Inlined into it, so
    /// that a request's decision, server lookup included, is one call
    /// (callgrind, `policy` bench, `evaluate_allow`: 1,877 instructions
    /// out of line, 1,861 inlined).
    #[inline(always)]
    pub(crate) fn evaluate_on<'p>(
        &'p self,
        server: &'p ServerEntry,
        client: &Client<'_>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Decision<'p> {
        let decision = decide_head(server, client, method, uri, headers);
        if decision.is_allowed()
            && (!normalize::is_normal(uri.path())
                || decision.ranks_hosts() && route::hosts_differ(uri, headers))
        {
            return decide_other_readings(decision, server, client, method, uri, headers);
        }
        decision
    }

    /// Decides a connection to an opaque port: the Server's own
    /// authorizations apply (those that target one of its routes do not).
    pub fn evaluate_connection(&self, port: u16, client: &Client<'_>) -> ConnectionDecision<'_> {
        let server = self.server_for(port);
        for rule in &server.tcp {
            if rule.authz.allows(client) {
                return ConnectionDecision::Allow(AllowedConnection::by_rule(server, rule));
            }
        }
        match server.fallback.decide(client) {
            Fallback::Allow => {
                ConnectionDecision::Allow(AllowedConnection::by_fallback(server, false))
            }
            Fallback::Audit => {
                ConnectionDecision::Allow(AllowedConnection::by_fallback(server, true))
            }
            Fallback::Deny => ConnectionDecision::Deny(DeniedConnection { server }),
        }
    }

    /// Takes over `old`'s rate limit state for each limit whose Server (by
    /// name) and settings are the same, so that putting this policy in
    /// place of `old` refills none of them. Run once per swap, never per
    /// request.
    pub(crate) fn carry_rate_limits(&mut self, old: &Policy) {
        for server in &mut self.servers {
            let Some(limit) = &mut server.rate_limit else {
                continue;
            };
            let previous = old
                .servers
                .iter()
                .find(|s| s.name == server.name)
                .and_then(|s| s.rate_limit.as_ref());
            if let Some(previous) = previous {
                limit.carry_over(previous);
            }
        }
    }

    /// Makes, in this policy, the default server of each port `old` had
    /// made one for and this policy covers with no Server, so that the
    /// first request on such a port after the swap finds its counters
    /// resolved. Run once per swap, never per request.
    pub(crate) fn carry_default_servers(&self, old: &Policy) {
        for port in old.defaults.ports() {
            if self.covered(port).is_none() {
                self.default_for(port);
            }
        }
    }

    /// The server of `port`: its Server's, else the default server of the
    /// port, made if this is its first request or connection.
    #[inline]
    pub(crate) fn server_for(&self, port: u16) -> &ServerEntry {
        match self.covered(port) {
            Some(server) => server,
            None => self.default_for(port),
        }
    }

    /// The server of `port` for a question that counts nothing (an
    /// explanation, the port's protocol): as
    /// [`server_for`](Self::server_for), but a port without a default
    /// server of its own yet gets the one of no port rather than one made
    /// for it, so that asking about a port never adds series for it.
    pub(crate) fn server_at(&self, port: u16) -> &ServerEntry {
        self.covered(port)
            .or_else(|| self.defaults.get(port))
            .unwrap_or(&self.default)
    }

    /// The Server that covers `port`, if one does.
    #[inline]
    fn covered(&self, port: u16) -> Option<&ServerEntry> {
        let i = self.ports.binary_search_by_key(&port, |&(p, _)| p).ok()?;
        self.ports.get(i).and_then(|&(_, s)| self.servers.get(s))
    }

    /// The default server of `port`, whose series carry the port, as
    /// linkerd2-proxy labels its default servers' (`ServerLabel` with the
    /// connection's port). Port 0 is no port (a request without a
    /// connection's address, to a layer given none): its default
    /// server's series have no `srv_port`.
    #[inline]
    fn default_for(&self, port: u16) -> &ServerEntry {
        self.defaults.get_or_make(port, |port| {
            build::default_server(
                self.config.default_policy,
                &self.workload,
                &self.defaults.probes,
                &self.defaults.metrics,
                (port != 0).then_some(port),
            )
        })
    }
}

/// Decides a request on `server`, by its route matches and authorizations.
#[inline]
fn decide_head<'p>(
    server: &'p ServerEntry,
    client: &Client<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Decision<'p> {
    let Some((route, matched)) = server.match_for(method, uri, headers) else {
        return Decision::NotFound(RouteNotFound { server });
    };
    let filters = matched.filters.as_ref();
    for rule in &route.authz {
        if rule.authz.allows(client) {
            return Decision::Allow(AllowedRequest::by_rule(server, route, rule, filters));
        }
    }
    match server.fallback.decide(client) {
        Fallback::Allow => {
            Decision::Allow(AllowedRequest::by_fallback(server, route, false, filters))
        }
        Fallback::Audit => {
            Decision::Allow(AllowedRequest::by_fallback(server, route, true, filters))
        }
        Fallback::Deny => Decision::Deny(DeniedRequest { server, route }),
    }
}

/// The first refusal of another reading of the request (its path in
/// normal form; its host as the `Host` header names it, when that
/// differs), else `allowed`: the rare path of
/// [`Policy::evaluate_head`], kept out of the common one.
#[cold]
#[inline(never)]
fn decide_other_readings<'p>(
    allowed: Decision<'p>,
    server: &'p ServerEntry,
    client: &Client<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Decision<'p> {
    let normal = normalize::normalized_uri(uri);
    if let Some(normal) = &normal {
        let second = decide_head(server, client, method, normal, headers);
        if !second.is_allowed() {
            return second;
        }
    }
    if !(allowed.ranks_hosts() && route::hosts_differ(uri, headers)) {
        return allowed;
    }
    // Without the URI's host, the `Host` header names the host: each
    // of them in turn, when there are several, in one copy of the
    // headers that holds one at a time.
    let by_header_uris: Vec<Uri> = [Some(uri), normal.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(route::without_authority)
        .collect();
    let refusal = |headers: &HeaderMap| {
        by_header_uris
            .iter()
            .map(|other| decide_head(server, client, method, other, headers))
            .find(|second| !second.is_allowed())
    };
    let values: Vec<HeaderValue> = headers.get_all(HOST).iter().cloned().collect();
    if values.len() < 2 {
        return refusal(headers).unwrap_or(allowed);
    }
    // Each distinct host costs a decision; repeats of one are one.
    let mut one_host = headers.clone();
    let mut seen: Vec<Option<&str>> = Vec::new();
    for value in &values {
        let host = route::host_in(value);
        let same = |s: &Option<&str>| match (s, host) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if seen.iter().any(same) {
            continue;
        }
        if seen.len() == MAX_HOSTS {
            return match &allowed {
                Decision::Allow(a) => Decision::Deny(a.refused()),
                _ => allowed,
            };
        }
        seen.push(host);
        one_host.insert(HOST, value.clone());
        if let Some(refused) = refusal(&one_host) {
            return refused;
        }
    }
    allowed
}

/// A Server, or the default server of a port no Server covers.
#[derive(Debug)]
pub(crate) struct ServerEntry {
    pub(crate) name: Arc<str>,
    /// The group and kind its counters are labelled with.
    pub(crate) kind: GroupKind,
    /// The port a Server covers, or the one a default server answers:
    /// its counters' `srv_port`. `None` only for the default server of no
    /// port (port 0), whose counters have no `srv_port`.
    pub(crate) port: Option<u16>,
    /// The Server resource, or `None` for the default server.
    pub(crate) source: Option<ServerSource>,
    pub(crate) protocol: ProxyProtocol,
    pub(crate) fallback: FallbackPolicy,
    pub(crate) routes: Vec<RouteEntry>,
    /// Every match of every route, by precedence.
    pub(crate) matches: Vec<MatchEntry>,
    /// Whether a route names hostnames, so the request's host ranks the
    /// matches before their order does.
    pub(crate) ranks_hosts: bool,
    /// Authorizations of connections.
    pub(crate) tcp: Vec<RuleEntry>,
    pub(crate) tcp_fallback: FallbackCounters,
    pub(crate) tcp_terminate: ByTls,
    pub(crate) not_found: ByTls,
    pub(crate) not_found_hits: Counter,
    /// The `HTTPLocalRateLimitPolicy` that targets the Server, with its
    /// state.
    pub(crate) rate_limit: Option<LocalRateLimit>,
}

/// Where a Server came from, for explanations.
#[derive(Debug)]
pub(crate) struct ServerSource {
    pub(crate) port: PortRef,
    pub(crate) document: String,
}

impl ServerEntry {
    /// The route a request takes, and the match of it that took it.
    #[inline]
    pub(crate) fn match_for(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<(&RouteEntry, &MatchEntry)> {
        let found = if self.ranks_hosts {
            // The most specific host match wins; among equals, the first
            // match in precedence order.
            let host = route::host_of(uri, headers);
            let mut best: Option<(HostRank, &MatchEntry)> = None;
            for m in &self.matches {
                if let Some(rank) = m.ranked_match(host, method, uri, headers)
                    && best.is_none_or(|(b, _)| rank > b)
                {
                    best = Some((rank, m));
                }
            }
            best.map(|(_, m)| m)
        } else {
            self.matches
                .iter()
                .find(|m| m.matches(method, uri, headers))
        };
        found.and_then(|m| self.routes.get(m.route).map(|r| (r, m)))
    }
}

/// A route of a server, with the authorizations that apply to it.
#[derive(Debug)]
pub(crate) struct RouteEntry {
    pub(crate) name: Arc<str>,
    /// The id a request it decides carries, built once: cloning it is an
    /// `Arc` increment, making one an allocation.
    pub(crate) id: mesh_core::RouteId,
    /// Its group and kind, as its series label it.
    pub(crate) kind: GroupKind,
    pub(crate) authz: Vec<RuleEntry>,
    pub(crate) fallback: FallbackCounters,
}

/// An authorization as it applies to one route (or a server's
/// connections), with the counters of that pairing.
#[derive(Debug)]
pub(crate) struct RuleEntry {
    pub(crate) authz: Arc<Authz>,
    pub(crate) allow: ByTls,
    pub(crate) hits: Counter,
}

/// The counters of a server's fallback policy on one route.
#[derive(Debug)]
pub(crate) struct FallbackCounters {
    pub(crate) allow: ByTls,
    pub(crate) deny: ByTls,
    pub(crate) allow_hits: Counter,
    pub(crate) audit_hits: Counter,
    pub(crate) deny_hits: Counter,
}

/// What a server does with clients no authorization allows: its
/// `accessPolicy`, or the default policy.
#[derive(Debug)]
pub(crate) struct FallbackPolicy {
    pub(crate) policy: DefaultPolicy,
    /// Named after the policy (`deny`, `audit`...), for a Server's
    /// `accessPolicy` and for the default server's alike; the kind of the
    /// server tells them apart.
    pub(crate) authz: Authz,
}

pub(crate) enum Fallback {
    Allow,
    Audit,
    Deny,
}

impl FallbackPolicy {
    #[inline]
    pub(crate) fn decide(&self, client: &Client<'_>) -> Fallback {
        match self.policy {
            DefaultPolicy::Deny => Fallback::Deny,
            DefaultPolicy::Audit => Fallback::Audit,
            _ if self.authz.allows(client) => Fallback::Allow,
            _ => Fallback::Deny,
        }
    }
}
