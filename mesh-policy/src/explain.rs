//! Why a request would be allowed or denied, and which rate limits it
//! would meet, for operators debugging a denial or a 429 (`sidecar policy
//! explain`).

use std::{fmt, net::IpAddr};

use http::{HeaderMap, Method, StatusCode, Uri};
use mesh_core::{Identity, ProxyErrorKind, error::is_grpc};

use crate::{
    AuthzKind, Client, ClientTls, ConnectionDecision, Decision, DefaultPolicy, Policy,
    policy::{RuleEntry, ServerEntry},
    ratelimit::{Applicable, ClientLimit, LocalRateLimit},
    resource::ProxyProtocol,
};

/// A hypothetical request to explain.
#[derive(Clone, Debug)]
pub struct ExplainQuery {
    /// The port it arrives on.
    pub port: u16,
    /// The client's mesh identity; `None` for a client without one.
    pub identity: Option<Identity>,
    /// For a client without an identity: whether it uses TLS (without a
    /// certificate) rather than plaintext.
    pub tls_without_identity: bool,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The method.
    pub method: Method,
    /// The path, with any query, or an absolute URI (whose host routes
    /// with hostnames see).
    pub uri: Uri,
    /// Request headers.
    pub headers: HeaderMap,
}

impl ExplainQuery {
    /// A plaintext `GET /` on `port` from no address.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            identity: None,
            tls_without_identity: false,
            client_ip: None,
            method: Method::GET,
            uri: Uri::from_static("/"),
            headers: HeaderMap::new(),
        }
    }
}

/// The decision for an [`ExplainQuery`] and how it was reached.
/// Its `Display` is what the CLI prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// `allow`, `allow (audit)`, `deny` or `not found`, as the layer would
    /// answer.
    pub decision: String,
    /// The HTTP status the layer would answer with, when it answers itself
    /// (403 or 404). A gRPC call (a request whose `content-type` is gRPC's)
    /// is answered 200, with the refusal in [`grpc_status`](Self::grpc_status),
    /// since gRPC clients read that and not the HTTP status.
    pub status: Option<u16>,
    /// For a gRPC call the layer answers itself, the `grpc-status` of its
    /// answer: 7 (`PERMISSION_DENIED`) or 5 (`NOT_FOUND`).
    pub grpc_status: Option<u16>,
    /// The workload: namespace, service account and labels.
    pub workload: String,
    /// The client, in words.
    pub client: String,
    /// The server that covers the port, and where it came from.
    pub server: String,
    /// Whether the port is opaque (its Server's `proxyProtocol` is
    /// `opaque` or `TLS`), so that what is explained is the decision on
    /// the whole connection, as
    /// [`AuthorizeOpaque`](crate::AuthorizeOpaque) makes it: the Server's
    /// own authorizations, no route, and no HTTP answer (a connection it
    /// refuses is closed).
    pub connection: bool,
    /// The route the request matched, if any.
    pub route: Option<String>,
    /// Every authorization of that route, in the order they are tried.
    pub authorizations: Vec<ExplainedAuthz>,
    /// What happens when no authorization matches.
    pub fallback: String,
    /// The Server's `HTTPLocalRateLimitPolicy`, when it has one, and the
    /// limits this request would meet, in the order they are checked:
    /// the total, then the client's override (by its place in
    /// `spec.overrides`) or identity limit, each with its rate. Only an
    /// allowed request meets them, and not one whose rule redirects: the
    /// redirect is answered first. Reading them uses none of them, so
    /// whether the request would be over one (429) depends on traffic an
    /// explanation does not see.
    pub rate_limit: Option<String>,
}

/// One authorization considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainedAuthz {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: AuthzKind,
    /// Whether every requirement held.
    pub matched: bool,
    /// Each requirement, and whether it held.
    pub requirements: Vec<String>,
}

impl Policy {
    /// Explains the decision for `query`: the decision itself comes from
    /// the same evaluation requests get; the rest lists the Server, the
    /// route and every authorization considered, and why each matched or
    /// not, and the rate limits the request would meet. Explaining changes
    /// nothing: it counts no decision and uses no share of a rate limit.
    ///
    /// On an opaque port, what is explained is the decision on the
    /// connection ([`Policy::evaluate_connection`]); the query's method,
    /// path and headers play no part.
    pub fn explain(&self, query: &ExplainQuery) -> Explanation {
        let tls = match (&query.identity, query.tls_without_identity) {
            (Some(id), _) => ClientTls::Mutual(id),
            (None, true) => ClientTls::NoClientCert,
            (None, false) => ClientTls::Plaintext,
        };
        let client = Client {
            tls,
            // As `Client::from_connection` takes a connection's address.
            addr: query.client_ip.map(|ip| ip.to_canonical()),
        };
        // Asking about a port counts nothing, so it makes no default
        // server for it either.
        let server = self.server_at(query.port);
        if server.protocol.is_opaque() {
            return self.explain_connection(query.port, server, &client);
        }
        let decision = self.evaluate_on(server, &client, &query.method, &query.uri, &query.headers);
        let rate_limit = server.rate_limit.as_ref().map(|limit| {
            // As `Authorize` checks: an allowed request whose rule
            // redirects answers before any limit is consulted.
            let skipped = match &decision {
                Decision::Allow(a) if a.filters().is_some_and(|f| f.redirect.is_some()) => {
                    Some("the rule redirects before any limit")
                }
                Decision::Allow(_) => None,
                _ => Some("only allowed requests are limited"),
            };
            describe_rate_limit(limit, skipped, client.identity())
        });
        let (decision_text, refusal) = match &decision {
            Decision::Allow(a) if a.is_audit() => {
                ("allow (audit: a deny would refuse it)".to_owned(), None)
            }
            Decision::Allow(a) => (format!("allow by {}", a.authz()), None),
            Decision::Deny(d) => (
                format!("deny (fallback {})", d.policy()),
                Some(ProxyErrorKind::Denied),
            ),
            Decision::NotFound(_) => (
                "not found: no route matches".to_owned(),
                Some(ProxyErrorKind::NoRoute),
            ),
        };
        // The layer answers as `ProxyErrorKind::response` does.
        let grpc = is_grpc(&query.headers);
        let status = refusal.map(|kind| {
            if grpc {
                StatusCode::OK.as_u16()
            } else {
                kind.http_status().as_u16()
            }
        });
        let grpc_status = refusal.filter(|_| grpc).map(ProxyErrorKind::grpc_code);
        // The route of the decision: for a path not in normal form, the
        // one that refused may not be the one the path names as written.
        let route = decision.route_entry();
        Explanation {
            decision: decision_text,
            status,
            grpc_status,
            workload: describe_workload(self.workload()),
            client: describe_client(&client),
            server: describe_server(server, query.port),
            connection: false,
            route: route.map(|r| r.name.to_string()),
            authorizations: route
                .map(|r| authorizations(&r.authz, &client))
                .unwrap_or_default(),
            fallback: describe_fallback(server),
            rate_limit,
        }
    }

    /// [`explain`](Self::explain) for an opaque port: the connection's
    /// decision, by the Server's own authorizations. No request is
    /// limited there, so no rate limit is named.
    fn explain_connection(
        &self,
        port: u16,
        server: &ServerEntry,
        client: &Client<'_>,
    ) -> Explanation {
        let decision_text = match self.evaluate_connection(port, client) {
            ConnectionDecision::Allow(a) if a.is_audit() => {
                "allow (audit: a deny would refuse it)".to_owned()
            }
            ConnectionDecision::Allow(a) => format!("allow by {}", a.authz()),
            ConnectionDecision::Deny(_) => format!(
                "deny (fallback {}): the connection is closed",
                server.fallback.authz.name
            ),
        };
        Explanation {
            decision: decision_text,
            status: None,
            grpc_status: None,
            workload: describe_workload(self.workload()),
            client: describe_client(client),
            server: describe_server(server, port),
            connection: true,
            route: None,
            authorizations: authorizations(&server.tcp, client),
            fallback: describe_fallback(server),
            rate_limit: None,
        }
    }
}

fn authorizations(rules: &[RuleEntry], client: &Client<'_>) -> Vec<ExplainedAuthz> {
    rules
        .iter()
        .map(|rule| ExplainedAuthz {
            name: rule.authz.name.to_string(),
            kind: rule.authz.kind,
            matched: rule.authz.allows(client),
            requirements: if rule.authz.requirements.is_empty() {
                vec!["no requirements: every client".to_owned()]
            } else {
                rule.authz
                    .requirements
                    .iter()
                    .map(|r| r.explain(client))
                    .collect()
            },
        })
        .collect()
}

fn describe_workload(workload: &crate::Workload) -> String {
    let labels: Vec<String> = workload
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{}/{} (labels {})",
        workload.namespace,
        workload.service_account,
        if labels.is_empty() {
            "none".to_owned()
        } else {
            labels.join(",")
        }
    )
}

fn describe_client(client: &Client<'_>) -> String {
    let tls = match client.tls {
        ClientTls::Plaintext => "plaintext".to_owned(),
        ClientTls::NoClientCert => "TLS without a client certificate".to_owned(),
        ClientTls::Mutual(id) => format!("mutual TLS as {id}"),
        ClientTls::Passthrough(sni) => format!("TLS for {sni}, passed through"),
    };
    match client.addr {
        Some(addr) => format!("{tls} from {addr}"),
        None => format!("{tls} from an unknown address"),
    }
}

fn describe_server(server: &ServerEntry, port: u16) -> String {
    match &server.source {
        Some(source) => {
            let protocol = match server.protocol {
                ProxyProtocol::Unknown => String::new(),
                p => format!(", {p}"),
            };
            format!(
                "{} (Server in {}, port {}{protocol})",
                server.name, source.document, source.port
            )
        }
        // Named by its policy alone, as Linkerd names it: the kind, which
        // the metrics write as `srv_kind="default"`, is said here.
        None => format!(
            "{} (the default server: no Server covers port {port})",
            server.name
        ),
    }
}

fn describe_fallback(server: &ServerEntry) -> String {
    let policy = server.fallback.policy;
    let what = match policy {
        DefaultPolicy::Deny => "deny".to_owned(),
        DefaultPolicy::Audit => "allow, flagged as audit".to_owned(),
        _ => {
            let reqs: Vec<String> = server
                .fallback
                .authz
                .requirements
                .iter()
                .map(|r| r.describe())
                .collect();
            if reqs.is_empty() {
                "allow every client".to_owned()
            } else {
                format!("allow clients with {}", reqs.join(" and "))
            }
        }
    };
    let source = if server.source.is_some() {
        "accessPolicy"
    } else {
        "default policy"
    };
    format!("{source} {policy}: {what}")
}

fn describe_rate_limit(
    limit: &LocalRateLimit,
    skipped: Option<&str>,
    identity: Option<&Identity>,
) -> String {
    let name = format!("HTTPLocalRateLimitPolicy {}", limit.name);
    if let Some(why) = skipped {
        return format!("{name}: not checked: {why}");
    }
    let Applicable { total, client } = limit.applicable(identity);
    let mut limits = Vec::new();
    if let Some(rps) = total {
        limits.push(format!(
            "total {rps} requests per second (every client together)"
        ));
    }
    limits.extend(client.map(|client| match client {
        ClientLimit::Override { index, rps } => format!(
            "spec.overrides[{index}] {rps} requests per second (shared by the clients it names)"
        ),
        ClientLimit::Identity { rps } if identity.is_some() => {
            format!("identity {rps} requests per second (this client's own)")
        }
        ClientLimit::Identity { rps } => {
            format!("identity {rps} requests per second (shared by clients without an identity)")
        }
    }));
    if limits.is_empty() {
        format!("{name}: no limit applies to this client")
    } else {
        format!("{name}: {}", limits.join(", then "))
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "decision: {}", self.decision)?;
        match (self.grpc_status, self.status) {
            (Some(code), Some(status)) => write!(f, " (gRPC status {code}, HTTP {status})")?,
            (Some(code), None) => write!(f, " (gRPC status {code})")?,
            (None, Some(status)) => write!(f, " (HTTP {status})")?,
            (None, None) => {}
        }
        writeln!(f)?;
        writeln!(f, "workload: {}", self.workload)?;
        writeln!(f, "client:   {}", self.client)?;
        writeln!(f, "server:   {}", self.server)?;
        match &self.route {
            Some(route) => writeln!(f, "route:    {route}")?,
            None if self.connection => writeln!(
                f,
                "route:    none: an opaque connection is decided whole, by the Server's own authorizations"
            )?,
            None => writeln!(f, "route:    none matched")?,
        }
        if self.route.is_some() || self.connection {
            if self.authorizations.is_empty() {
                writeln!(f, "authorizations: none")?;
            } else {
                writeln!(f, "authorizations, in order:")?;
            }
            for a in &self.authorizations {
                let mark = if a.matched { "match" } else { "no match" };
                writeln!(f, "  - {} ({}): {mark}", a.name, a.kind.as_str())?;
                for r in &a.requirements {
                    writeln!(f, "      {r}")?;
                }
            }
        }
        write!(f, "fallback: {}", self.fallback)?;
        if let Some(rate_limit) = &self.rate_limit {
            write!(f, "\nrate limit: {rate_limit}")?;
        }
        Ok(())
    }
}
