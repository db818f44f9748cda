//! The outcomes of evaluating a request or a connection.

use std::sync::Arc;

use mesh_core::{RouteId, labels::Authorized, route::RouteFilters};

use super::{RouteEntry, RuleEntry, ServerEntry};
use crate::{
    RateLimited,
    evaluate::{Client, ClientTls},
    metrics::GroupKind,
};

/// What authorization decided about a request. It borrows names and
/// counters from the [`Policy`](super::Policy), so making it allocates
/// nothing.
#[derive(Debug)]
pub enum Decision<'p> {
    /// The request may proceed.
    Allow(AllowedRequest<'p>),
    /// The request is refused: 403, or gRPC `PERMISSION_DENIED`.
    Deny(DeniedRequest<'p>),
    /// The request matches no route of its Server: 404, or gRPC
    /// `NOT_FOUND`.
    NotFound(RouteNotFound<'p>),
}

impl Decision<'_> {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow(_))
    }

    /// The name of the Server that decided (`default:<policy>` for a port
    /// no Server covers).
    pub fn server(&self) -> &str {
        match self {
            Self::Allow(a) => &a.server.name,
            Self::Deny(d) => &d.server.name,
            Self::NotFound(n) => &n.server.name,
        }
    }

    /// Counts the decision in its metrics.
    pub fn record(&self, tls: ClientTls<'_>) {
        match self {
            Self::Allow(a) => a.record(tls),
            Self::Deny(d) => {
                d.route.fallback.deny.get(tls).inc();
                d.route.fallback.deny_hits.inc();
            }
            Self::NotFound(n) => {
                n.server.not_found.get(tls).inc();
                n.server.not_found_hits.inc();
            }
        }
    }
}

impl<'p> Decision<'p> {
    /// Whether routes of the deciding Server name hostnames, so that the
    /// request's host took part in the decision.
    #[inline]
    pub(crate) fn ranks_hosts(&self) -> bool {
        match self {
            Self::Allow(a) => a.server.ranks_hosts,
            Self::Deny(d) => d.server.ranks_hosts,
            Self::NotFound(n) => n.server.ranks_hosts,
        }
    }

    /// The route that decided; `None` when no route matched.
    pub(crate) fn route_entry(&self) -> Option<&'p RouteEntry> {
        match self {
            Self::Allow(a) => Some(a.route),
            Self::Deny(d) => Some(d.route),
            Self::NotFound(_) => None,
        }
    }
}

/// An allowed request: which Server, route and authorization allowed it.
#[derive(Debug)]
pub struct AllowedRequest<'p> {
    server: &'p ServerEntry,
    route: &'p RouteEntry,
    rule: Option<&'p RuleEntry>,
    audit: bool,
    filters: Option<&'p Arc<RouteFilters>>,
}

impl<'p> AllowedRequest<'p> {
    pub(super) fn by_rule(
        server: &'p ServerEntry,
        route: &'p RouteEntry,
        rule: &'p RuleEntry,
        filters: Option<&'p Arc<RouteFilters>>,
    ) -> Self {
        Self {
            server,
            route,
            rule: Some(rule),
            audit: false,
            filters,
        }
    }

    pub(super) fn by_fallback(
        server: &'p ServerEntry,
        route: &'p RouteEntry,
        audit: bool,
        filters: Option<&'p Arc<RouteFilters>>,
    ) -> Self {
        Self {
            server,
            route,
            rule: None,
            audit,
            filters,
        }
    }

    /// The same request refused on the same route, by the Server's
    /// fallback: for a request that must not be decided any further.
    pub(super) fn refused(&self) -> DeniedRequest<'p> {
        DeniedRequest {
            server: self.server,
            route: self.route,
        }
    }

    /// The filters of the route rule the request matched, when it has any:
    /// its header modifiers and redirect, which
    /// [`ApplyFiltersLayer`](crate::ApplyFiltersLayer) applies once the
    /// request is allowed.
    pub fn filters(&self) -> Option<&'p RouteFilters> {
        self.filters.map(|f| &**f)
    }

    /// The filters, shared, for the request's extensions.
    pub(crate) fn shared_filters(&self) -> Option<Arc<RouteFilters>> {
        self.filters.cloned()
    }

    /// The Server's name.
    pub fn server(&self) -> &'p str {
        &self.server.name
    }

    /// The route's name: an `HTTPRoute`'s, `default` on a server without
    /// routes, or `probe`.
    pub fn route(&self) -> &'p str {
        &self.route.name
    }

    /// The authorization's name: a resource's, `probe`, or the fallback
    /// policy's (`audit`, `default:all-unauthenticated`...).
    pub fn authz(&self) -> &'p str {
        self.authz_arc()
    }

    fn authz_arc(&self) -> &'p Arc<str> {
        match self.rule {
            Some(rule) => &rule.authz.name,
            None => &self.server.fallback.authz.name,
        }
    }

    /// Whether the request was allowed only by audit mode: a `deny` would
    /// have refused it.
    pub fn is_audit(&self) -> bool {
        self.audit
    }

    /// Checks the Server's rate limit (its `HTTPLocalRateLimitPolicy`) for
    /// one more request of `client`, which takes its share of each limit
    /// that applies. A refusal is counted in
    /// `inbound_http_local_ratelimit_total`. Call it once per request,
    /// after [`Decision::record`], unless the request's rule redirects:
    /// [`Authorize`](crate::Authorize) does, answering a redirect before
    /// any limit as linkerd2-proxy does.
    ///
    /// # Errors
    ///
    /// [`RateLimited`] when the request is over a limit.
    pub fn check_rate_limit(&self, client: &Client<'_>) -> Result<(), RateLimited> {
        match &self.server.rate_limit {
            Some(limit) => limit.check(client),
            None => Ok(()),
        }
    }

    /// The name of the `HTTPLocalRateLimitPolicy` on the Server, if any.
    pub fn rate_limit(&self) -> Option<&'p str> {
        self.server.rate_limit.as_ref().map(|l| &*l.name)
    }

    /// The request extension naming the policy, with the group and kind
    /// of each resource the authorization families count it under, so
    /// that request metrics split what they split; cloning names is
    /// reference counting, not copying.
    pub fn authorized(&self) -> Authorized {
        let authz_kind = match self.rule {
            Some(rule) => GroupKind::authz(rule.authz.kind),
            None => GroupKind::DEFAULT,
        };
        Authorized {
            server: self.server.name.clone(),
            server_kind: self.server.kind.resource(),
            server_port: self.server.port,
            route: self.route.name.clone(),
            route_kind: Some(self.route.kind.resource()),
            authz: self.authz_arc().clone(),
            authz_kind: authz_kind.resource(),
            audit: self.audit,
        }
    }

    /// The route, as the extension metrics label requests with.
    pub fn route_id(&self) -> RouteId {
        self.route.id.clone()
    }

    fn record(&self, tls: ClientTls<'_>) {
        match self.rule {
            Some(rule) => {
                rule.allow.get(tls).inc();
                rule.hits.inc();
            }
            None => {
                self.route.fallback.allow.get(tls).inc();
                if self.audit {
                    self.route.fallback.audit_hits.inc();
                } else {
                    self.route.fallback.allow_hits.inc();
                }
            }
        }
    }
}

/// A denied request.
#[derive(Debug)]
pub struct DeniedRequest<'p> {
    pub(super) server: &'p ServerEntry,
    pub(super) route: &'p RouteEntry,
}

impl<'p> DeniedRequest<'p> {
    /// The Server's name.
    pub fn server(&self) -> &'p str {
        &self.server.name
    }

    /// The route the request matched.
    pub fn route(&self) -> &'p str {
        &self.route.name
    }

    /// The policy that denied it: the Server's `accessPolicy` (`deny`) or
    /// the default policy.
    pub fn policy(&self) -> &'p str {
        &self.server.fallback.authz.name
    }
}

/// A request that matched no route.
#[derive(Debug)]
pub struct RouteNotFound<'p> {
    pub(super) server: &'p ServerEntry,
}

impl<'p> RouteNotFound<'p> {
    /// The Server's name.
    pub fn server(&self) -> &'p str {
        &self.server.name
    }
}

/// What authorization decided about a connection to an opaque port.
#[derive(Debug)]
pub enum ConnectionDecision<'p> {
    /// The connection may proceed.
    Allow(AllowedConnection<'p>),
    /// The connection is closed.
    Deny(DeniedConnection<'p>),
}

impl ConnectionDecision<'_> {
    /// Whether the connection may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow(_))
    }

    /// Counts the decision in its metrics.
    pub fn record(&self, tls: ClientTls<'_>) {
        match self {
            Self::Allow(a) => match a.rule {
                Some(rule) => {
                    rule.allow.get(tls).inc();
                    rule.hits.inc();
                }
                None => {
                    a.server.tcp_fallback.allow.get(tls).inc();
                    if a.audit {
                        a.server.tcp_fallback.audit_hits.inc();
                    } else {
                        a.server.tcp_fallback.allow_hits.inc();
                    }
                }
            },
            Self::Deny(d) => {
                d.server.tcp_fallback.deny.get(tls).inc();
                d.server.tcp_fallback.deny_hits.inc();
            }
        }
    }

    /// Counts an open connection closed because this decision denies it.
    pub fn record_terminate(&self, tls: ClientTls<'_>) {
        let server = match self {
            Self::Allow(a) => a.server,
            Self::Deny(d) => d.server,
        };
        server.tcp_terminate.get(tls).inc();
    }
}

/// An allowed connection.
#[derive(Debug)]
pub struct AllowedConnection<'p> {
    server: &'p ServerEntry,
    rule: Option<&'p RuleEntry>,
    audit: bool,
}

impl<'p> AllowedConnection<'p> {
    pub(super) fn by_rule(server: &'p ServerEntry, rule: &'p RuleEntry) -> Self {
        Self {
            server,
            rule: Some(rule),
            audit: false,
        }
    }

    pub(super) fn by_fallback(server: &'p ServerEntry, audit: bool) -> Self {
        Self {
            server,
            rule: None,
            audit,
        }
    }

    /// The Server's name.
    pub fn server(&self) -> &'p str {
        &self.server.name
    }

    /// The authorization's name.
    pub fn authz(&self) -> &'p str {
        match self.rule {
            Some(rule) => &rule.authz.name,
            None => &self.server.fallback.authz.name,
        }
    }

    /// Whether only audit mode allowed it.
    pub fn is_audit(&self) -> bool {
        self.audit
    }
}

/// A denied connection.
#[derive(Debug)]
pub struct DeniedConnection<'p> {
    pub(super) server: &'p ServerEntry,
}

impl<'p> DeniedConnection<'p> {
    /// The Server's name.
    pub fn server(&self) -> &'p str {
        &self.server.name
    }
}

#[cfg(test)]
mod tests {
    use http::Request;
    use mesh_core::labels::{Authorized, ResourceKind};
    use prometheus_client::registry::Registry;

    use crate::{
        Client, ClientTls, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload,
    };

    /// A Server on port 8080 with an `AuthorizationPolicy` and a
    /// `ServerAuthorization` of one name, each for clients of its own
    /// network; every other port has the default server.
    const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: app, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: inside, namespace: ns}
spec:
  networks: [{cidr: 10.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: clients, namespace: ns}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: app}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: inside}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: clients, namespace: ns}
spec:
  server: {name: app}
  client:
    unauthenticated: true
    networks: [{cidr: 192.168.0.0/16}]
";

    fn authorized(policy: &Policy, port: u16, addr: &str) -> Authorized {
        let client = Client {
            tls: ClientTls::Plaintext,
            addr: Some(addr.parse().unwrap()),
        };
        let req = Request::get("/").body(()).unwrap();
        match policy.evaluate(port, &client, &req) {
            Decision::Allow(allowed) => allowed.authorized(),
            other => panic!("{port} {addr}: {other:?}"),
        }
    }

    #[test]
    fn the_extension_names_the_kind_of_each_resource_that_decided() {
        let policy = Policy::compile(
            &[PolicySource::new("policy.yaml", POLICY)],
            &Workload::new("ns").with_label("app", "web"),
            &PolicyConfig::default(),
            &PolicyMetrics::register(&mut Registry::default()),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .policy;
        let server = &ResourceKind {
            group: "policy.linkerd.io",
            kind: "server",
        };

        let by_policy = authorized(&policy, 8080, "10.1.2.3");
        let by_server_authz = authorized(&policy, 8080, "192.168.1.2");
        for a in [&by_policy, &by_server_authz] {
            assert_eq!((&*a.server, a.server_kind), ("app", server));
            assert_eq!(a.server_port, Some(8080));
            assert_eq!(&*a.authz, "clients");
        }
        assert_eq!(
            by_policy.authz_kind,
            &ResourceKind {
                group: "policy.linkerd.io",
                kind: "authorizationpolicy",
            }
        );
        assert_eq!(
            by_server_authz.authz_kind,
            &ResourceKind {
                group: "policy.linkerd.io",
                kind: "serverauthorization",
            }
        );

        // A port no Server covers: the default server and policy, which
        // no resource defines, of the port the request came to.
        let by_default = authorized(&policy, 9090, "10.1.2.3");
        assert_eq!(by_default.server_kind, &ResourceKind::DEFAULT);
        assert_eq!(by_default.server_port, Some(9090));
        assert_eq!(
            authorized(&policy, 9091, "10.1.2.3").server_port,
            Some(9091)
        );
        // No port known: no port.
        assert_eq!(authorized(&policy, 0, "10.1.2.3").server_port, None);
        assert_eq!(by_default.authz_kind, &ResourceKind::DEFAULT);
        assert_eq!(&*by_default.server, "all-unauthenticated");
        // Neither has routes: the Server's default route and the default
        // server's, which no resource defines either.
        for a in [&by_policy, &by_default] {
            assert_eq!(
                (&*a.route, a.route_kind),
                ("default", Some(&ResourceKind::DEFAULT))
            );
        }
    }

    #[test]
    fn the_extension_names_the_group_and_kind_of_the_route_that_matched() {
        // One HTTPRoute of each API group on the Server, on paths of their
        // own, and a policy on the Server allowing everyone.
        let routes = |group: &str, name: &str, path: &str| {
            format!(
                "---\napiVersion: {group}\nkind: HTTPRoute\n\
                 metadata: {{name: {name}, namespace: ns}}\n\
                 spec:\n  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: app}}]\n\
                 \u{20} rules:\n  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n"
            )
        };
        let text = format!(
            "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {{name: app, namespace: ns}}\n\
             spec:\n  podSelector: {{matchLabels: {{app: web}}}}\n  port: 8080\n  proxyProtocol: HTTP/1\n  \
             accessPolicy: all-unauthenticated\n{}{}",
            routes("policy.linkerd.io/v1beta3", "linkerd-route", "/a"),
            routes("gateway.networking.k8s.io/v1", "gateway-route", "/b"),
        );
        let policy = Policy::compile(
            &[PolicySource::new("policy.yaml", &text)],
            &Workload::new("ns").with_label("app", "web"),
            &PolicyConfig::default(),
            &PolicyMetrics::register(&mut Registry::default()),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .policy;
        let client = Client {
            tls: ClientTls::Plaintext,
            addr: Some("10.1.2.3".parse().unwrap()),
        };
        for (path, name, group) in [
            ("/a", "linkerd-route", "policy.linkerd.io"),
            ("/b", "gateway-route", "gateway.networking.k8s.io"),
        ] {
            let req = Request::get(path).body(()).unwrap();
            let Decision::Allow(allowed) = policy.evaluate(8080, &client, &req) else {
                panic!("{path} was not allowed");
            };
            let a = allowed.authorized();
            assert_eq!(&*a.route, name);
            assert_eq!(
                a.route_kind,
                Some(&ResourceKind {
                    group,
                    kind: "HTTPRoute",
                }),
                "{path}"
            );
        }
    }
}
