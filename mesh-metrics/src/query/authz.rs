//! `authz`: traffic per authorization, like `linkerd viz authz`.
//!
//! Policy decides each inbound request: a Server's authorization (or a
//! default policy) allows it, or the request is denied with a 403 and never
//! reaches the application. This view answers "which rule lets this
//! traffic in, and how much is turned away?". Allowed requests are counted
//! by `inbound_http_authz_allow_total`, and their responses by the inbound
//! `response_total` and `response_latency_ms` series, all labelled with
//! the server, route and authorization (`srv_kind`, `srv_name`,
//! `route_kind`, `route_name`, `authz_kind`, `authz_name`): each
//! authorization's row has the golden signals of what it let in. Denied
//! requests are only in `inbound_http_authz_deny_total`, keyed by server
//! and route, without `authz_*` labels, as Linkerd's: each server and
//! route with denials has an unauthorized row, whose RPS is that of the
//! denied requests.
//!
//! Opaque TCP has no requests: a Server with `proxyProtocol: opaque` is
//! decided once per connection, and counted by
//! `inbound_tcp_authz_allow_total` (labelled with the server and the
//! authorization) and `inbound_tcp_authz_deny_total` (with the server
//! alone), with no route. Each
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
//! Names recur across kinds: a port no Server covers is decided by a
//! default policy, written `srv_kind="default"` with the policy's name
//! (`all-unauthenticated`), which a Server may have too; an `HTTPRoute`
//! and a `GRPCRoute` may share a name; so may an `AuthorizationPolicy`
//! and a `ServerAuthorization`, and a policy may be named as a default
//! one is (`deny`, `audit`). So rows are keyed by each kind as well as
//! each name where a scrape has it (one from a proxy that does not write
//! the labels has rows by name alone). The kinds are in every JSON row
//! (`server_kind`, `route_kind`, `authorization_kind`, `null` where
//! unknown); in the table, a default policy's SERVER is `default:NAME`,
//! as `linkerd viz authz` writes it, and ROUTE and AUTHORIZATION are
//! `kind/name` (`serverauthorization/web`) where rows of one name differ
//! in kind. Responses that carry `authz_kind` are split by it, so each
//! kind's row has its own success rate and latency. From a proxy whose
//! response families do not carry the kinds, the responses of names
//! allowed as one kind in the window are that kind's, and those of names
//! allowed as several cannot be split: they are a row of the names alone,
//! and each kind's row has the RPS of the requests it allowed and no
//! success rate or latency.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde::Serialize;

use super::{
    Delta, Format, Golden, QueryError, Sample, Target, Totals, View,
    group::{Groups, per_second},
    measure_each,
    render::{self, Table},
    to_json, with_failures,
};

/// AUTHORIZATION in the row of denied requests.
pub const UNAUTHORIZED: &str = "[unauthorized]";

/// The `srv_kind` of a default policy, which decides a port no Server
/// covers.
const DEFAULT_KIND: &str = "default";

/// One authorization's row, or a route's denied requests, or an opaque
/// Server's refused connections.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuthzRow {
    /// The workload whose admin server reported it.
    pub workload: String,
    /// The Server (`srv_name`), or for a port no Server covers, the
    /// default policy that decides it (`all-unauthenticated`...).
    pub server: String,
    /// The server's kind (`srv_kind`): `server` for a Server, `default`
    /// for a default policy; `null` in a scrape without the label.
    pub server_kind: Option<String>,
    /// The route (`route_name`); `None` (`null`) in the rows of opaque TCP
    /// connections, which have no routes.
    pub route: Option<String>,
    /// Its kind (`route_kind`: `HTTPRoute`, `GRPCRoute`, `default`);
    /// `null` in the rows of connections and in a scrape without the
    /// label.
    pub route_kind: Option<String>,
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
    /// Whether requests of the row's names were allowed as more than one
    /// kind of server, route or authorization: responses that do not say
    /// which are then in a row of their own.
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

/// The names of a sample's server, route (`None` for a connection) and
/// authorization (`None` for a denial).
type Names<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

/// The kinds of the same three, each `None` where the sample does not say
/// (or, for a route or an authorization, has none).
type Kinds<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// A sample's names, or `None` for one this view does not count.
fn names(s: &Sample, counted: Counted) -> Option<Names<'_>> {
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

/// The kinds a sample's labels give its names.
fn kinds_of(s: &Sample, counted: Counted) -> Kinds<'_> {
    (
        s.label("srv_kind"),
        s.label("route_kind").filter(|_| !counted.is_tcp()),
        s.label("authz_kind").filter(|_| !counted.is_denial()),
    )
}

/// Whether `known`, the kinds an allow family gave, can be those of a
/// response that says `said`: each kind the response names is the same.
fn agrees(said: Kinds<'_>, known: Kinds<'_>) -> bool {
    let same = |said: Option<&str>, known: Option<&str>| said.is_none() || said == known;
    same(said.0, known.0) && same(said.1, known.1) && same(said.2, known.2)
}

/// The kinds of a response that says `said`, each it does not say taken
/// from `agreeing`, the kinds its names were allowed as that agree with
/// it, where they all have the same.
fn fill<'a>(said: Kinds<'a>, agreeing: &[Kinds<'a>]) -> Kinds<'a> {
    let one = |said: Option<&'a str>, of: fn(&Kinds<'a>) -> Option<&'a str>| {
        said.or_else(|| {
            let (first, rest) = agreeing.split_first()?;
            rest.iter()
                .all(|k| of(k) == of(first))
                .then(|| of(first))
                .flatten()
        })
    };
    (
        one(said.0, |k| k.0),
        one(said.1, |k| k.1),
        one(said.2, |k| k.2),
    )
}

/// The authorization rows in the inbound traffic of `targets`, from their
/// deltas (`None` for a target that could not be scraped); sorted by
/// workload, server, route (connections, which have none, first), then
/// authorization, each route's or opaque Server's denials last.
///
/// Rows are keyed by the kind of each resource as well as its name: the
/// default policy `all-unauthenticated` and a Server of that name, an
/// `HTTPRoute` and a `GRPCRoute` of one name, or an `AuthorizationPolicy`
/// and a `ServerAuthorization` of one name, are rows of their own. A
/// response that does not say a kind (a proxy that does not write it)
/// takes the one its names were allowed as in the window; when they were
/// allowed as several, the responses are a row of their own, without the
/// kinds that differ.
pub fn authz_rows(targets: &[Target], deltas: &[Option<Delta>]) -> Vec<AuthzRow> {
    type Key = (
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let mut groups: Groups<Key, AuthzSum> = Groups::default();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        // The kinds each server, route and authorization name allowed
        // requests or connections as in the window, for the responses
        // that do not say.
        let mut allowed_as: BTreeMap<Names<'_>, BTreeSet<Kinds<'_>>> = BTreeMap::new();
        for s in delta.samples().iter().filter(|s| s.value > 0.0) {
            let Some(counted) = Counted::of(s).filter(|c| c.is_allowed()) else {
                continue;
            };
            if let Some(names) = names(s, counted) {
                allowed_as
                    .entry(names)
                    .or_default()
                    .insert(kinds_of(s, counted));
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
            let said = kinds_of(s, counted);
            let known = allowed_as.get(&names);
            let shared_name = known.is_some_and(|k| k.len() > 1);
            let kinds = match counted {
                Counted::Response => {
                    let agreeing: Vec<Kinds<'_>> = known
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|known| agrees(said, *known))
                        .collect();
                    fill(said, &agreeing)
                }
                _ => said,
            };
            let owned = |s: Option<&str>| s.map(str::to_owned);
            let key = (
                target.name.clone(),
                owned(kinds.0),
                server.to_owned(),
                owned(kinds.1),
                owned(route),
                owned(authz),
                owned(kinds.2),
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
            |(
                (
                    workload,
                    server_kind,
                    server,
                    route_kind,
                    route,
                    authorization,
                    authorization_kind,
                ),
                sum,
            )| {
                let golden = match (&route, &authorization) {
                    (None, _) => Golden::default(),
                    // The responses, which did not say the kind, are in
                    // a row of their own.
                    (Some(_), Some(_)) if sum.shared_name && sum.totals.responses() <= 0.0 => {
                        Golden {
                            rps: per_second(sum.allowed, sum.window),
                            ..Golden::default()
                        }
                    }
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
                    server_kind,
                    route,
                    route_kind,
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
                r.server_kind.clone(),
                r.route.clone(),
                r.route_kind.clone(),
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
/// and those of HTTP requests `-` for TCP_CONN. SERVER is
/// `default:NAME` for a default policy, as `linkerd viz authz` writes it,
/// so that it reads apart from a Server of the same name; ROUTE and
/// AUTHORIZATION are `kind/name` where rows of the name differ in kind.
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
    type RouteOf<'a> = (Option<&'a str>, &'a str, &'a str);
    let mut route_kinds: BTreeMap<RouteOf<'_>, BTreeSet<Option<&str>>> = BTreeMap::new();
    for r in rows {
        if let Some(name) = &r.authorization {
            kinds
                .entry(name)
                .or_default()
                .insert(r.authorization_kind.as_deref());
        }
        if let Some(route) = &r.route {
            route_kinds
                .entry((r.server_kind.as_deref(), &r.server, route))
                .or_default()
                .insert(r.route_kind.as_deref());
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
        let route = match (&r.route, &r.route_kind) {
            (None, _) => none(),
            (Some(name), Some(kind))
                if route_kinds
                    .get(&(r.server_kind.as_deref(), r.server.as_str(), name.as_str()))
                    .is_some_and(|k| k.len() > 1) =>
            {
                format!("{kind}/{name}")
            }
            (Some(name), _) => name.clone(),
        };
        let server = match r.server_kind.as_deref() {
            Some(DEFAULT_KIND) => format!("{DEFAULT_KIND}:{}", r.server),
            _ => r.server.clone(),
        };
        cells.extend([route, server, authz]);
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
/// [`view`], as text alone.
///
/// # Errors
///
/// When no target is given, none can be scraped, or JSON encoding fails.
pub async fn run(
    targets: &[Target],
    window: Duration,
    format: Format,
) -> Result<String, QueryError> {
    view(targets, window, format).await.map(|v| v.text)
}

/// `sidecar authz`: scrapes `targets` a `window` apart and renders one row
/// per authorization, one per route with denied requests, and one per
/// opaque Server with refused connections.
///
/// With the targets that could not be scraped beside the text, for a
/// caller to report those of JSON, which does not name them.
///
/// # Errors
///
/// When no target is given, none can be scraped, or JSON encoding fails.
pub async fn view(
    targets: &[Target],
    window: Duration,
    format: Format,
) -> Result<View, QueryError> {
    let measured = measure_each(targets, window).await?;
    let text = render_authz(&authz_rows(targets, &measured.deltas), format)?;
    Ok(with_failures(text, targets, &measured, format))
}

#[cfg(test)]
mod tests;
