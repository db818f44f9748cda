//! Building a server's entries: its routes, its rules and the counters of
//! each, resolved once per compiled policy.

use std::sync::Arc;

use mesh_core::route::RouteMatch;
use prometheus_client::metrics::counter::Counter;

use super::{
    Authz, AuthzKind, FallbackCounters, FallbackPolicy, MatchEntry, RouteEntry, RuleEntry,
    ServerEntry, build::CompiledRoute,
};
use crate::{
    PolicyMetrics,
    metrics::{ByTls, GroupKind, HttpLabels, RouteLabels, RuleLabels, ServerLabels, TcpLabels},
    resource::ProxyProtocol,
};

impl ServerEntry {
    /// A server named `name`, of `kind`: [`GroupKind::SERVER`] for a
    /// Server, [`GroupKind::DEFAULT`] for the default server; `port` is
    /// the port a Server covers or a default server answers, `None` for
    /// the default server of no port.
    pub(super) fn new(
        name: Arc<str>,
        kind: GroupKind,
        port: Option<u16>,
        protocol: ProxyProtocol,
        fallback: FallbackPolicy,
        server_authz: &[Arc<Authz>],
        metrics: &PolicyMetrics,
    ) -> Self {
        let tcp = server_authz
            .iter()
            .map(|authz| RuleEntry {
                authz: authz.clone(),
                allow: ByTls::resolve_tcp(&metrics.tcp_allow, |tls| TcpLabels {
                    srv: kind,
                    srv_name: name.clone(),
                    srv_port: port,
                    authz: GroupKind::authz(authz.kind),
                    authz_name: authz.name.clone(),
                    tls,
                }),
                hits: hits(
                    metrics,
                    authz.kind.as_str(),
                    &authz.name,
                    kind,
                    &name,
                    "allow",
                ),
            })
            .collect();
        let fb = fallback.authz.name.clone();
        // Denials, closed connections and requests no route matched are
        // the Server's, not an authorization's: linkerd2-proxy keys them
        // by the Server alone.
        let server_labels = |tls| ServerLabels {
            srv: kind,
            srv_name: name.clone(),
            srv_port: port,
            tls,
        };
        let tcp_fallback = FallbackCounters {
            allow: ByTls::resolve_tcp(&metrics.tcp_allow, |tls| TcpLabels {
                srv: kind,
                srv_name: name.clone(),
                srv_port: port,
                authz: GroupKind::DEFAULT,
                authz_name: fb.clone(),
                tls,
            }),
            deny: ByTls::resolve_tcp(&metrics.tcp_deny, server_labels),
            allow_hits: hits(metrics, "default", &fb, kind, &name, "allow"),
            audit_hits: hits(metrics, "default", &fb, kind, &name, "audit"),
            deny_hits: hits(metrics, "default", &fb, kind, &name, "deny"),
        };
        Self {
            tcp_terminate: ByTls::resolve_tcp(&metrics.tcp_terminate, server_labels),
            not_found: ByTls::resolve(&metrics.http_not_found, server_labels),
            not_found_hits: hits(metrics, "server", &name, kind, &name, "not_found"),
            name,
            kind,
            port,
            source: None,
            protocol,
            fallback,
            routes: Vec::new(),
            matches: Vec::new(),
            ranks_hosts: false,
            tcp,
            tcp_fallback,
            rate_limit: None,
        }
    }

    /// The routes of a server without `HTTPRoute`s: probes, then every
    /// request.
    pub(super) fn default_routes(
        &mut self,
        authz: &[Arc<Authz>],
        probes: &[RouteMatch],
        metrics: &PolicyMetrics,
    ) {
        if !probes.is_empty() {
            let probe = Arc::new(Authz {
                name: "probe".into(),
                kind: AuthzKind::Probe,
                requirements: Vec::new(),
            });
            let route = self.route_entry("probe".into(), GroupKind::DEFAULT, &[probe], metrics);
            for m in probes {
                self.matches.push(MatchEntry::new(
                    self.routes.len(),
                    Arc::new([]),
                    m.clone(),
                    0,
                ));
            }
            self.routes.push(route);
        }
        let route = self.route_entry("default".into(), GroupKind::DEFAULT, authz, metrics);
        self.matches.push(MatchEntry::new(
            self.routes.len(),
            Arc::new([]),
            RouteMatch::new(),
            1,
        ));
        self.routes.push(route);
    }

    pub(super) fn add_route(
        &mut self,
        route: &CompiledRoute,
        authz: &[Arc<Authz>],
        metrics: &PolicyMetrics,
    ) {
        let entry = self.route_entry(route.name.clone(), route.kind, authz, metrics);
        self.ranks_hosts |= !route.hosts.is_empty();
        for rule in &route.rules {
            for (i, m) in rule.matches.iter().enumerate() {
                let grpc = rule
                    .grpc
                    .as_ref()
                    .map(|ranks| ranks.get(i).copied().unwrap_or_default());
                self.matches.push(
                    MatchEntry::new(
                        self.routes.len(),
                        route.hosts.clone(),
                        m.clone(),
                        route.rank,
                    )
                    .with_filters(rule.filters.clone())
                    .with_grpc(grpc),
                );
            }
        }
        self.routes.push(entry);
    }

    fn route_entry(
        &self,
        route: Arc<str>,
        route_kind: GroupKind,
        authz: &[Arc<Authz>],
        metrics: &PolicyMetrics,
    ) -> RouteEntry {
        let srv = &self.name;
        let http = |family, authz_kind: AuthzKind, authz_name: &Arc<str>| {
            ByTls::resolve(family, |tls| HttpLabels {
                srv: self.kind,
                srv_name: srv.clone(),
                srv_port: self.port,
                route: route_kind,
                route_name: route.clone(),
                authz: GroupKind::authz(authz_kind),
                authz_name: authz_name.clone(),
                tls,
            })
        };
        let fb = &self.fallback.authz.name;
        // A denial is the route's, whichever fallback denied: no
        // `authz_*` labels, as linkerd2-proxy keys it; the rule hits say
        // which fallback it was.
        let deny = ByTls::resolve(&metrics.http_deny, |tls| RouteLabels {
            srv: self.kind,
            srv_name: srv.clone(),
            srv_port: self.port,
            route: route_kind,
            route_name: route.clone(),
            tls,
        });
        RouteEntry {
            kind: route_kind,
            authz: authz
                .iter()
                .map(|a| RuleEntry {
                    authz: a.clone(),
                    allow: http(&metrics.http_allow, a.kind, &a.name),
                    hits: hits(metrics, a.kind.as_str(), &a.name, self.kind, srv, "allow"),
                })
                .collect(),
            fallback: FallbackCounters {
                allow: http(&metrics.http_allow, AuthzKind::Default, fb),
                deny,
                allow_hits: hits(metrics, "default", fb, self.kind, srv, "allow"),
                audit_hits: hits(metrics, "default", fb, self.kind, srv, "audit"),
                deny_hits: hits(metrics, "default", fb, self.kind, srv, "deny"),
            },
            id: mesh_core::RouteId::new(route.clone()),
            name: route,
        }
    }
}

fn hits(
    metrics: &PolicyMetrics,
    rule_kind: &'static str,
    rule_name: &Arc<str>,
    srv: GroupKind,
    srv_name: &Arc<str>,
    result: &'static str,
) -> Counter {
    metrics.rule_hits.get_or_create_owned(&RuleLabels {
        rule_kind,
        rule_name: rule_name.clone(),
        srv,
        srv_name: srv_name.clone(),
        result,
    })
}
