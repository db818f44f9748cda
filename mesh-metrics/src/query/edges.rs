//! `edges`: who calls whom, and whether on mutual TLS, like `linkerd viz
//! edges`.
//!
//! An edge is traffic from one workload to another in the window. Each end
//! sees it: the caller's sidecar counts its outbound requests by
//! `dst_service`, with the `server_id` its sidecar requires of that
//! service (the handshake fails closed on any other); the server's
//! sidecar counts its inbound requests and connections by the `client_id`
//! the client proved, or by why there was none (`no_tls_reason`). An edge
//! seen from both ends, where the caller's identity is known, is one row;
//! its figures are the caller's, as the caller saw the calls.
//!
//! Each workload given with `--admin` is known by its identity, which its
//! sidecar names in its own scrape (`identity_cert_info{identity}`). A
//! scrape without that series (a sidecar without identity or an older one)
//! leaves it to be inferred from the peers' scrapes: a server's is the
//! `server_id` its callers saw for the service named like the workload
//! (`dst_service="emoji"` for `emoji=ADDR`); a caller's is the one client
//! identity a named server saw in the window that no named workload holds,
//! when that server had one named caller of unknown identity in the
//! window. An identity these leave open is shown as it is (SRC is then
//! the client's identity, and CLIENT_ID or SERVER_ID may be `-`) rather
//! than guessed.
//!
//! DST, from the caller's end, is the named workload that holds the
//! `server_id` the call required, when exactly one does, so that the two
//! ends meet in one row even where a workload is named otherwise than the
//! service it serves; failing that, it is the service called.
//!
//! Workloads that share an identity (one service account) are each
//! known by it, but a server cannot tell them apart: its end of their
//! calls is left out where their own ends show them, and otherwise has
//! the identity as SRC.
//!
//! Without an identity, nothing ties the two ends together, and no join
//! of them would be sound. A server's sidecar counts the requests and
//! connections of every client that proved no identity in the same
//! series: the labels name no client address (label values come from
//! closed sets), so nothing there tells a named caller's plaintext calls
//! to `dst_service="emoji"` from those of a client without a sidecar, or
//! of a workload not given with `--admin`. Nor can the two ends' counts be
//! matched: each sidecar is scraped at its own instant, and a server
//! counts the requests its policy denied in no `response_total`. So, as
//! `linkerd viz edges` does, a plaintext edge is its caller's row (SRC its
//! name, DST the service called, no identities, SECURED why: `Disabled`),
//! and a server's series from clients without identity make no row, as
//! they name no source; `sidecar stat` (TLS) and `sidecar authz` count
//! that traffic. A server counts requests its policy denied in no
//! `response_total`, so an edge of denied calls has, from the server's
//! end, connections but no RPS (`sidecar authz` counts them).
//!
//! A series without a `tls` label (its sidecar did not know the TLS status)
//! has SECURED `Unknown`.
//!
//! Outbound connections carry no `dst_service`, so an edge is found from
//! the caller's end only by its HTTP requests; opaque TCP edges are seen
//! from the server's end.
//!
//! A series a sidecar folded into its overflow (`overflow="true"`, past a
//! family's series limit) keeps the direction and the TLS status but not
//! the peer: its traffic is no one edge's, and is left out rather than
//! shown as traffic from a client without identity. The sidecar's
//! `*_series_overflow_total` counts what was folded.

use std::time::Duration;

use serde::Serialize;

use super::{
    Delta, Format, Golden, QueryError, Sample, Target, Totals, View,
    group::Groups,
    identity::{Identities, no_tls_reason, peer_identity},
    measure_each,
    render::{self, Table},
    to_json, with_failures,
};

/// SECURED when the traffic was on mutual TLS, as Linkerd prints it.
pub const SECURED: &str = "✓";

/// One edge's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeRow {
    /// The calling workload's name, or its identity when no named
    /// workload holds it.
    pub src: String,
    /// The called workload's name, or the service called when no one
    /// named workload holds the identity the call required.
    pub dst: String,
    /// The caller's identity, if it proved one (or was learned).
    pub client_id: Option<String>,
    /// The server's identity, as its caller required it (or as learned).
    pub server_id: Option<String>,
    /// Why the traffic was not on mutual TLS (`disabled`,
    /// `no_tls_from_remote`...); `null` when it was.
    pub no_tls_reason: Option<String>,
    /// Success rate, RPS and latency of the requests: the caller's
    /// figures when its sidecar reported responses in the window, else the
    /// server's.
    #[serde(flatten)]
    pub golden: Golden,
}

/// What one edge's samples add up to, from each end.
#[derive(Debug, Default)]
struct EdgeSum {
    client_id: Option<String>,
    server_id: Option<String>,
    active: bool,
    caller: Option<(Totals, Duration)>,
    server: Option<(Totals, Duration)>,
}

/// The samples that show traffic on an edge.
const EDGE_SAMPLES: [&str; 5] = [
    "response_total",
    "response_latency_ms_bucket",
    "tcp_open_total",
    "tcp_read_bytes_total",
    "tcp_write_bytes_total",
];

/// The edges in the deltas of `targets` (`None` for a target that could
/// not be scraped): the traffic of the window, sorted by SRC, then DST.
pub fn edge_rows(targets: &[Target], deltas: &[Option<Delta>]) -> Vec<EdgeRow> {
    let ids = Identities::learn(targets, deltas);
    let mut groups: Groups<(String, String, Option<String>), EdgeSum> = Groups::default();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        for s in delta.samples() {
            if !EDGE_SAMPLES.contains(&s.name.as_str()) || s.label("overflow") == Some("true") {
                continue;
            }
            let Some(end) = End::of(s, &target.name, &ids) else {
                continue;
            };
            let reason = no_tls_reason(s, end.peer_label()).map(str::to_owned);
            let sum = groups.entry((end.src(), end.dst(), reason));
            sum.add(s, &end, delta.elapsed());
        }
        // The latency histograms left out for their bounds mark the end
        // they were of.
        for s in delta.dropped_histograms() {
            if !EDGE_SAMPLES.contains(&s.name.as_str()) || s.label("overflow") == Some("true") {
                continue;
            }
            let Some(end) = End::of(s, &target.name, &ids) else {
                continue;
            };
            let reason = no_tls_reason(s, end.peer_label()).map(str::to_owned);
            let sum = groups.entry((end.src(), end.dst(), reason));
            let side = match end {
                End::Caller { .. } => &mut sum.caller,
                End::Server { .. } => &mut sum.server,
            };
            side.get_or_insert_with(Default::default).0.add_dropped(s);
        }
    }
    let entries = groups.into_entries();
    // The server's end of calls from an identity several named workloads
    // share: each of them shows its own share of those calls, and the
    // server's sum of them all would count them again.
    let seen_by_callers = |src: &str, dst: &str| {
        ids.holders(src).nth(1).is_some()
            && ids.holders(src).any(|caller| {
                entries
                    .iter()
                    .any(|((s, d, _), sum)| s == caller && d == dst && sum.active)
            })
    };
    let shown: Vec<bool> = entries
        .iter()
        .map(|((src, dst, _), sum)| sum.active && !seen_by_callers(src, dst))
        .collect();
    let mut rows: Vec<EdgeRow> = entries
        .into_iter()
        .zip(shown)
        .filter_map(|(entry, shown)| shown.then_some(entry))
        .map(|((src, dst, no_tls_reason), sum)| {
            // A caller's end with no response in the window reported none
            // of the calls the server's end saw (another replica made them).
            let reported = sum
                .caller
                .as_ref()
                .is_some_and(|(t, _)| t.responses() > 0.0);
            let (totals, window) = if reported {
                sum.caller
            } else {
                sum.server.or(sum.caller)
            }
            .unwrap_or_default();
            EdgeRow {
                src,
                dst,
                client_id: sum.client_id,
                server_id: sum.server_id,
                no_tls_reason,
                golden: Golden::new(&totals, window),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
    rows
}

/// Which end of an edge reported a sample, and what it knows of the other.
enum End<'a> {
    /// The caller's outbound series to `server`: the named workload that
    /// holds the identity the call required, or the service called.
    Caller {
        name: &'a str,
        server: &'a str,
        own_id: Option<&'a str>,
        server_id: Option<&'a str>,
    },
    /// The server's inbound series, from `client_id`: the named workload
    /// that holds it, or the identity itself.
    Server {
        name: &'a str,
        client: &'a str,
        client_id: &'a str,
        own_id: Option<&'a str>,
    },
}

impl<'a> End<'a> {
    fn of(s: &'a Sample, name: &'a str, ids: &'a Identities) -> Option<Self> {
        match s.label("direction")? {
            "outbound" => {
                let server_id = s.label("server_id").filter(|id| !id.is_empty());
                let service = s.label("dst_service")?;
                Some(Self::Caller {
                    name,
                    server: peer_identity(s, "server_id")
                        .and_then(|id| ids.name_of(id))
                        .unwrap_or(service),
                    own_id: ids.of(name),
                    server_id,
                })
            }
            "inbound" => {
                // Traffic from no identity names no source (see the module
                // docs): it is no edge.
                let client_id = s.label("client_id").filter(|id| !id.is_empty())?;
                Some(Self::Server {
                    name,
                    client: ids.name_of(client_id).unwrap_or(client_id),
                    client_id,
                    own_id: ids.of(name),
                })
            }
            _ => None,
        }
    }

    fn peer_label(&self) -> &'static str {
        match self {
            Self::Caller { .. } => "server_id",
            Self::Server { .. } => "client_id",
        }
    }

    fn src(&self) -> String {
        match self {
            Self::Caller { name, .. } => (*name).to_owned(),
            Self::Server { client, .. } => (*client).to_owned(),
        }
    }

    fn dst(&self) -> String {
        match self {
            Self::Caller { server, .. } => (*server).to_owned(),
            Self::Server { name, .. } => (*name).to_owned(),
        }
    }
}

impl EdgeSum {
    fn add(&mut self, s: &Sample, end: &End<'_>, elapsed: Duration) {
        let (client_id, server_id, side) = match *end {
            End::Caller {
                own_id, server_id, ..
            } => (own_id, server_id, &mut self.caller),
            End::Server {
                client_id, own_id, ..
            } => (Some(client_id), own_id, &mut self.server),
        };
        fill(&mut self.client_id, client_id);
        fill(&mut self.server_id, server_id);
        self.active |= s.value > 0.0;
        let (totals, window) = side.get_or_insert_with(Default::default);
        totals.add(s);
        *window = (*window).max(elapsed);
    }
}

fn fill(slot: &mut Option<String>, value: Option<&str>) {
    if slot.is_none() {
        *slot = value.map(str::to_owned);
    }
}

/// `sa.ns` for an identity of service account `sa` in namespace `ns`
/// (`spiffe://td/ns/ns/sa/sa` or `sa.ns.serviceaccount.identity...`), as
/// Linkerd's table shortens them; anything else as it is.
pub fn short_identity(id: &str) -> String {
    if let Some(path) = id.strip_prefix("spiffe://") {
        let segments: Vec<&str> = path.split('/').collect();
        return match segments[..] {
            [_, "ns", ns, "sa", sa] => format!("{sa}.{ns}"),
            _ => id.to_owned(),
        };
    }
    let labels: Vec<&str> = id.split('.').collect();
    match labels[..] {
        [sa, ns, "serviceaccount", "identity", ..] => format!("{sa}.{ns}"),
        _ => id.to_owned(),
    }
}

/// SECURED: [`SECURED`] for mutual TLS, else the reason in words, as
/// Linkerd prints it (`not_provided_by_service_discovery` is `Not
/// Provided By Service Discovery`).
pub fn secured(no_tls_reason: Option<&str>) -> String {
    let Some(reason) = no_tls_reason else {
        return SECURED.to_owned();
    };
    reason
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `rows` as a table or JSON. The table shortens identities as
/// Linkerd's does ([`short_identity`]); JSON has them whole. A table with
/// no edge says so.
///
/// # Errors
///
/// Only when JSON encoding fails.
pub fn render_edges(rows: &[EdgeRow], format: Format) -> Result<String, QueryError> {
    if format == Format::Json {
        return to_json(&rows);
    }
    if rows.is_empty() {
        return Ok("No edges found.\n".to_owned());
    }
    let mut table = Table::new(vec![
        "SRC",
        "DST",
        "CLIENT_ID",
        "SERVER_ID",
        "SECURED",
        "SUCCESS",
        "RPS",
    ]);
    let id = |id: &Option<String>| id.as_deref().map_or_else(|| "-".into(), short_identity);
    for r in rows {
        table.row(vec![
            short_identity(&r.src),
            r.dst.clone(),
            id(&r.client_id),
            id(&r.server_id),
            secured(r.no_tls_reason.as_deref()),
            render::percent(r.golden.success),
            render::rps(r.golden.rps),
        ]);
    }
    Ok(table.render())
}

/// `sidecar edges`: scrapes `targets` a `window` apart and renders the
/// edges between them.
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

/// `sidecar edges`: scrapes `targets` a `window` apart and renders the
/// edges between them.
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
    let text = render_edges(&edge_rows(targets, &measured.deltas), format)?;
    Ok(with_failures(text, targets, &measured, format))
}

#[cfg(test)]
mod tests;
