//! `authz`: traffic per authorization, like `linkerd viz authz`.
//!
//! Policy decides each inbound request: a Server's authorization (or a
//! default policy) allows it, or the request is denied with a 403 and never
//! reaches the application. This view answers "which rule lets this
//! traffic in, and how much is turned away?". Allowed requests are counted
//! by `inbound_http_authz_allow_total`, and their responses by the inbound
//! `response_total` and `response_latency_ms` series, all labelled with
//! `srv_name`, `route_name` and `authz_name`: each authorization's row has
//! the golden signals of what it let in. Denied requests are only in
//! `inbound_http_authz_deny_total` (whose `authz_name` is the fallback that
//! denied): each server and route with denials has an unauthorized row,
//! whose RPS is that of the denied requests.
//!
//! Opaque TCP has no requests: a Server with `proxyProtocol: opaque` is
//! decided once per connection, and counted by
//! `inbound_tcp_authz_allow_total` and `inbound_tcp_authz_deny_total`,
//! labelled with `srv_name` and `authz_name` but no route. Each
//! authorization that let connections in has a row of its own, and each
//! such Server with refusals an unauthorized row; their ROUTE is `-`
//! (`null` in JSON), they have no success rate, RPS or latency, and their
//! TCP_CONN column (`tcp_connections`) is the number of connections
//! allowed, or refused, in the window. That column is `-` (`null`) in the
//! rows of HTTP requests. Like `linkerd viz stat`'s TCP_CONN, it counts
//! connections, not bytes; open connections a policy change closed
//! (`inbound_tcp_authz_terminate_total`) are not shown, having been
//! allowed when they opened.
//!
//! Rows appear for traffic in the window: an authorization that allowed
//! nothing is not shown.
//!
//! An `AuthorizationPolicy` and a `ServerAuthorization` may share a name,
//! and a policy may be named as a default one is (`deny`, `audit`): the
//! allow families tell them apart by `authz_kind`, so rows are keyed by
//! kind as well as name where a scrape has it (one from a proxy that does
//! not write the label has rows by name alone). The kind is in every JSON
//! row (`authorization_kind`, `null` where unknown), and in the table
//! (`serverauthorization/web`) where rows of one name differ in it. The
//! response families do not carry the kind: the responses of a name that
//! one kind allowed requests as in the window are that kind's, and those
//! of a name that several did cannot be split, so they are a row of the
//! name alone, and each kind's row has the RPS of the requests it allowed
//! and no success rate or latency.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde::Serialize;

use super::{
    Delta, Format, Golden, QueryError, Sample, Target, Totals,
    group::{Groups, per_second},
    measure_each,
    render::{self, Table},
    to_json, with_failures,
};

/// AUTHORIZATION in the row of denied requests.
pub const UNAUTHORIZED: &str = "[unauthorized]";

/// One authorization's row, or a route's denied requests, or an opaque
/// Server's refused connections.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuthzRow {
    /// The workload whose admin server reported it.
    pub workload: String,
    /// The Server (`srv_name`), or the default policy of a port no Server
    /// covers (`default:all-unauthenticated`...).
    pub server: String,
    /// The route (`route_name`); `None` (`null`) in the rows of opaque TCP
    /// connections, which have no routes.
    pub route: Option<String>,
    /// The authorization that allowed the requests or connections
    /// (`authz_name`); `null` in the row of denied ones.
    pub authorization: Option<String>,
    /// Its kind (`authz_kind`: `authorizationpolicy`,
    /// `serverauthorization`, `default`); `null` in the row of denied
    /// requests or connections, in a scrape without the label, and in the
    /// row of responses that several kinds of one name allowed.
    pub authorization_kind: Option<String>,
    /// Success rate, RPS and latency of the allowed requests; in the row of
    /// denied requests, the RPS of those and nothing else; in the rows of
    /// TCP connections, nothing (no rate, `rps` 0).
    #[serde(flatten)]
    pub golden: Golden,
    /// In the rows of TCP connections, how many the authorization allowed
    /// in the window, or in the unauthorized row, how many were refused;
    /// `None` (`null`) in the rows of HTTP requests.
    pub tcp_connections: Option<u64>,
}

/// What one row's samples add up to.
#[derive(Debug, Default)]
struct AuthzSum {
    allowed: f64,
    denied: f64,
    connections: f64,
    totals: Totals,
    window: Duration,
    /// Whether the name's responses are in a row of their own, another
    /// kind of authorization having the same name.
    shared_name: bool,
}

/// What a sample counts for this view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counted {
    /// A response to an allowed request (`response_*`).
    Response,
    /// An allowed request.
    Allowed,
    /// A denied request.
    Denied,
    /// An allowed connection.
    TcpAllowed,
    /// A refused connection.
    TcpDenied,
}

impl Counted {
    fn of(s: &Sample) -> Option<Self> {
        Some(match s.name.as_str() {
            "response_total" | "response_latency_ms_bucket"
                if s.label("direction") == Some("inbound") =>
            {
                Self::Response
            }
            "inbound_http_authz_allow_total" => Self::Allowed,
            "inbound_http_authz_deny_total" => Self::Denied,
            "inbound_tcp_authz_allow_total" => Self::TcpAllowed,
            "inbound_tcp_authz_deny_total" => Self::TcpDenied,
            _ => return None,
        })
    }

    fn is_tcp(self) -> bool {
        matches!(self, Self::TcpAllowed | Self::TcpDenied)
    }

    fn is_denial(self) -> bool {
        matches!(self, Self::Denied | Self::TcpDenied)
    }

    fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed | Self::TcpAllowed)
    }
}

/// A sample's server, route (`None` for a connection) and authorization
/// (`None` for a denial), or `None` for one this view does not count.
fn names(s: &Sample, counted: Counted) -> Option<(&str, Option<&str>, Option<&str>)> {
    let server = s.label("srv_name")?;
    // Connections have no route; requests always have one.
    let route = match counted.is_tcp() {
        true => None,
        false => Some(s.label("route_name")?),
    };
    let authz = match counted.is_denial() {
        true => None,
        false => Some(s.label("authz_name")?),
    };
    Some((server, route, authz))
}

/// The authorization rows in the inbound traffic of `targets`, from their
/// deltas (`None` for a target that could not be scraped); sorted by
/// workload, server, route (connections, which have none, first), then
/// authorization, each route's or opaque Server's denials last.
pub fn authz_rows(targets: &[Target], deltas: &[Option<Delta>]) -> Vec<AuthzRow> {
    type Key = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let mut groups: Groups<Key, AuthzSum> = Groups::default();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        // The kinds each server, route and name allowed as in the window,
        // for the responses, which do not say.
        let mut kinds: BTreeMap<_, BTreeSet<&str>> = BTreeMap::new();
        for s in delta.samples().iter().filter(|s| s.value > 0.0) {
            let Some(counted) = Counted::of(s).filter(|c| c.is_allowed()) else {
                continue;
            };
            if let (Some(names), Some(kind)) = (names(s, counted), s.label("authz_kind")) {
                kinds.entry(names).or_default().insert(kind);
            }
        }
        // The histogram series left out for their bounds mark the rows
        // they were of.
        let left_out = delta.dropped_histograms().iter().map(|s| (s, true));
        for (s, dropped) in delta.samples().iter().map(|s| (s, false)).chain(left_out) {
            let Some(counted) = Counted::of(s) else {
                continue;
            };
            let Some(names @ (server, route, authz)) = names(s, counted) else {
                continue;
            };
            let of_name = kinds.get(&names);
            let shared_name = of_name.is_some_and(|k| k.len() > 1);
            let kind = match counted {
                Counted::Denied | Counted::TcpDenied => None,
                Counted::Allowed | Counted::TcpAllowed => s.label("authz_kind"),
                Counted::Response => s.label("authz_kind").or_else(|| {
                    of_name
                        .filter(|_| !shared_name)
                        .and_then(|k| k.first().copied())
                }),
            };
            let key = (
                target.name.clone(),
                server.to_owned(),
                route.map(str::to_owned),
                authz.map(str::to_owned),
                kind.map(str::to_owned),
            );
            let sum = groups.entry(key);
            sum.window = sum.window.max(delta.elapsed());
            sum.shared_name |= shared_name && counted == Counted::Allowed;
            match counted {
                Counted::Response if dropped => sum.totals.add_dropped(s),
                Counted::Response => sum.totals.add(s),
                Counted::Allowed => sum.allowed += s.value,
                Counted::Denied => sum.denied += s.value,
                Counted::TcpAllowed | Counted::TcpDenied => sum.connections += s.value,
            }
        }
    }
    let mut rows: Vec<AuthzRow> = groups
        .into_entries()
        .into_iter()
        .filter(|(_, sum)| {
            sum.allowed > 0.0
                || sum.denied > 0.0
                || sum.connections > 0.0
                || sum.totals.responses() > 0.0
        })
        .map(
            |((workload, server, route, authorization, authorization_kind), sum)| {
                let golden = match (&route, &authorization) {
                    (None, _) => Golden::default(),
                    // The responses are in the name's row.
                    (Some(_), Some(_)) if sum.shared_name => Golden {
                        rps: per_second(sum.allowed, sum.window),
                        ..Golden::default()
                    },
                    (Some(_), Some(_)) => Golden::new(&sum.totals, sum.window),
                    (Some(_), None) => Golden {
                        rps: per_second(sum.denied, sum.window),
                        ..Golden::default()
                    },
                };
                // Counter increases are whole numbers but for float noise.
                let tcp_connections = route.is_none().then(|| sum.connections.round() as u64);
                AuthzRow {
                    workload,
                    server,
                    route,
                    authorization,
                    authorization_kind,
                    golden,
                    tcp_connections,
                }
            },
        )
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &AuthzRow| {
            (
                r.workload.clone(),
                r.server.clone(),
                r.route.clone(),
                r.authorization.is_none(),
                r.authorization.clone(),
                r.authorization_kind.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    rows
}

/// Writes `rows` as a table or JSON. A table with no row says so; one
/// with the rows of more than one workload begins with a WORKLOAD column.
/// The rows of TCP connections have `-` for ROUTE and the golden signals,
/// and those of HTTP requests `-` for TCP_CONN. AUTHORIZATION is
/// `kind/name` where rows of the name differ in kind.
///
/// # Errors
///
/// Only when JSON encoding fails.
pub fn render_authz(rows: &[AuthzRow], format: Format) -> Result<String, QueryError> {
    if format == Format::Json {
        return to_json(&rows);
    }
    if rows.is_empty() {
        return Ok("No authorized or denied requests or connections found.\n".to_owned());
    }
    // One workload's rows read as Linkerd's do; several need saying whose
    // each is, as the same Server, route and authorization names recur.
    let several = rows
        .first()
        .is_some_and(|first| rows.iter().any(|r| r.workload != first.workload));
    // The names that rows of more than one kind (or of none) have.
    let mut kinds: BTreeMap<&str, BTreeSet<Option<&str>>> = BTreeMap::new();
    for r in rows {
        if let Some(name) = &r.authorization {
            kinds
                .entry(name)
                .or_default()
                .insert(r.authorization_kind.as_deref());
        }
    }
    let mut header = if several {
        vec!["WORKLOAD"]
    } else {
        Vec::new()
    };
    header.extend(["ROUTE", "SERVER", "AUTHORIZATION"]);
    header.extend(render::GOLDEN_HEADER);
    header.push("TCP_CONN");
    let mut table = Table::new(header);
    for r in rows {
        let authz = match (&r.authorization, &r.authorization_kind) {
            (None, _) => UNAUTHORIZED.to_owned(),
            (Some(name), Some(kind)) if kinds.get(name.as_str()).is_some_and(|k| k.len() > 1) => {
                format!("{kind}/{name}")
            }
            (Some(name), _) => name.clone(),
        };
        let mut cells = if several {
            vec![r.workload.clone()]
        } else {
            Vec::new()
        };
        let none = || "-".to_owned();
        let route = r.route.clone().unwrap_or_else(none);
        cells.extend([route, r.server.clone(), authz]);
        match r.tcp_connections {
            None => {
                cells.extend(render::golden(&r.golden));
                cells.push(none());
            }
            Some(n) => {
                cells.extend(render::GOLDEN_HEADER.map(|_| none()));
                cells.push(n.to_string());
            }
        }
        table.row(cells);
    }
    Ok(table.render() + &render::dropped_note(rows.iter().map(|r| &r.golden)))
}

/// `sidecar authz`: scrapes `targets` a `window` apart and renders one row
/// per authorization, one per route with denied requests, and one per
/// opaque Server with refused connections.
///
/// # Errors
///
/// When no target is given, none can be scraped, or JSON encoding fails.
pub async fn run(
    targets: &[Target],
    window: Duration,
    format: Format,
) -> Result<String, QueryError> {
    let measured = measure_each(targets, window).await?;
    let text = render_authz(&authz_rows(targets, &measured.deltas), format)?;
    Ok(with_failures(text, targets, &measured, format))
}

#[cfg(test)]
mod tests;
