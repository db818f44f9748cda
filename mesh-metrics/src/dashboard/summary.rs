//! The golden signals of a mesh over one window: workloads, the edges
//! between them, and the outbound routes where retries and timeouts happen.

use std::{
    cmp::Ordering,
    collections::{HashMap, HashSet},
    time::Duration,
};

use serde::Serialize;

use crate::{
    labels::Direction,
    query::{
        Delta, Golden, Sample, Target, Totals,
        routes::{RouteRow, outbound_route_key, rows_by},
        stat::{StatRow, stat_rows},
    },
};

/// The most edges a summary keeps: the busiest, by responses a second.
pub const MAX_EDGES: usize = 100;

/// The most outbound routes a summary keeps: the busiest, by requests a
/// second.
pub const MAX_ROUTES: usize = 100;

/// What the sources' metrics say about one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// One row per workload, from its inbound traffic, in the order the
    /// sources name them.
    pub workloads: Vec<WorkloadSummary>,
    /// Who calls whom, from each workload's outbound traffic, sorted: the
    /// [`MAX_EDGES`] busiest.
    pub edges: Vec<Edge>,
    /// Each workload's outbound routes, sorted by workload, service,
    /// route: the [`MAX_ROUTES`] busiest.
    pub routes: Vec<RouteSummary>,
}

/// A workload's golden signals, and what its policy turned away.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadSummary {
    /// The figures `sidecar stat` shows.
    #[serde(flatten)]
    pub stat: StatRow,
    /// Requests per second its authorization denied
    /// (`inbound_http_authz_deny_total`).
    pub denied: f64,
    /// The seconds its figures cover: its sources' window, shorter than
    /// the one configured while the dashboard has fewer rounds, or when a
    /// source's budget let its older scrapes go; 0 while none of its
    /// sources answered two rounds.
    pub window_seconds: f64,
}

/// Traffic from one workload to one service, as the caller's sidecar saw
/// it (`direction="outbound"`, by `dst_service`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edge {
    /// The calling workload: the name of the source that reported it.
    pub src: String,
    /// The service called: the `dst_service` label.
    pub dst: String,
    /// Success rate, RPS and latency of the calls, as the caller saw them.
    #[serde(flatten)]
    pub golden: Golden,
    /// The share of responses on mutual TLS; `None` without traffic.
    pub tls: Option<f64>,
    /// Responses per second that were forbidden: HTTP 403 or gRPC 7
    /// (`PERMISSION_DENIED`), which is how the callee's policy says no.
    /// The classification counts an HTTP 403 as a success and a gRPC 7
    /// as a failure, as Linkerd counts them; this counts both.
    pub forbidden: f64,
}

/// One outbound route: what callers saw, what the retries cost, and how
/// often requests ran out of time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteSummary {
    /// The figures `sidecar routes --to` shows.
    #[serde(flatten)]
    pub row: RouteRow,
    /// Retries sent per second (`retry_requests_total`).
    pub retries: f64,
    /// Responses per second that were a timeout (`error="timeout"`).
    pub timeouts: f64,
}

impl Summary {
    /// Summarizes the deltas of `targets` (`None` for one that could not be
    /// scraped both times), in the same order.
    pub fn from_deltas(targets: &[Target], deltas: &[Option<Delta>]) -> Self {
        Self {
            workloads: stat_rows(targets, deltas, Direction::Inbound)
                .into_iter()
                .map(|stat| {
                    let denied = denied(targets, deltas, &stat.name);
                    let window_seconds = window_of(targets, deltas, &stat.name).as_secs_f64();
                    WorkloadSummary {
                        stat,
                        denied,
                        window_seconds,
                    }
                })
                .collect(),
            edges: edges(targets, deltas),
            routes: routes(targets, deltas),
        }
    }
}

/// The services some source called. A set: a source picks how many.
fn services(deltas: &[Option<Delta>]) -> HashSet<&str> {
    let mut out = HashSet::new();
    for s in deltas.iter().flatten().flat_map(Delta::samples) {
        let service = if s.name.starts_with("retry_") {
            s.label("service")
        } else if is_outbound_response(s) {
            s.label("dst_service")
        } else {
            None
        };
        out.extend(service);
    }
    out
}

fn is_outbound_response(s: &Sample) -> bool {
    (s.name == "response_total" || s.name == "response_latency_ms_bucket")
        && s.label("direction") == Some(Direction::Outbound.as_label())
}

fn edges(targets: &[Target], deltas: &[Option<Delta>]) -> Vec<Edge> {
    // Found by hashing: a source picks how many services it names.
    let mut groups: HashMap<(&str, &str), (Totals, Duration, f64)> = HashMap::new();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        for s in delta.samples().iter().filter(|s| is_outbound_response(s)) {
            let Some(dst) = s.label("dst_service") else {
                continue;
            };
            let group = groups.entry((target.name.as_str(), dst)).or_default();
            group.0.add(s);
            group.1 = group.1.max(delta.elapsed());
            if s.name == "response_total" && is_forbidden(s) {
                group.2 += s.value;
            }
        }
        for s in delta.dropped_histograms() {
            if is_outbound_response(s)
                && let Some(dst) = s.label("dst_service")
                && let Some(group) = groups.get_mut(&(target.name.as_str(), dst))
            {
                group.0.add_dropped(s);
            }
        }
    }
    let mut out: Vec<Edge> = groups
        .into_iter()
        .map(|((src, dst), (t, window, forbidden))| Edge {
            src: src.to_owned(),
            dst: dst.to_owned(),
            golden: Golden::new(&t, window),
            tls: t.tls_rate(),
            forbidden: per_second(forbidden, window),
        })
        .collect();
    keep_busiest(
        &mut out,
        MAX_EDGES,
        |e| e.golden.rps,
        |a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)),
    );
    out
}

/// Keeps the `max` rows of `rows` with the most `rps`, ties broken by
/// `order`, and sorts them by `order`. A source picks how many services
/// and routes it names; the page draws a few, and each row kept costs
/// its sparklines in every view and in every point of the history.
fn keep_busiest<T>(
    rows: &mut Vec<T>,
    max: usize,
    rps: impl Fn(&T) -> f64,
    order: impl Fn(&T, &T) -> Ordering,
) {
    if rows.len() > max && max > 0 {
        rows.select_nth_unstable_by(max - 1, |a, b| {
            rps(b).total_cmp(&rps(a)).then_with(|| order(a, b))
        });
    }
    rows.truncate(max);
    rows.sort_unstable_by(order);
}

fn is_forbidden(s: &Sample) -> bool {
    s.label("status_code") == Some("403") || s.label("grpc_status") == Some("7")
}

/// The outbound routes of every service some source called, in one pass
/// over the samples: a source picks how many services and routes it
/// names, so none is looked up by a scan of the others.
fn routes(targets: &[Target], deltas: &[Option<Delta>]) -> Vec<RouteSummary> {
    let services = services(deltas);
    let rows = rows_by(targets, deltas, |s| {
        outbound_route_key(s).filter(|(_, service)| services.contains(service))
    });
    let timeouts = timeouts(targets, deltas);
    let retries = retries(targets, deltas);
    let mut out: Vec<RouteSummary> = rows
        .into_iter()
        .map(|row| {
            let window = window_of(targets, deltas, &row.workload);
            let key = (
                row.workload.as_str(),
                row.route.as_str(),
                row.service.as_str(),
            );
            let timeouts = timeouts.get(&key).copied().unwrap_or(0.0);
            RouteSummary {
                // From `retry_requests_total`: the attempts' statuses,
                // where served, also count what no retry sent.
                retries: per_second(retries.get(&key).copied().unwrap_or(0.0), window),
                timeouts: per_second(timeouts, window),
                row,
            }
        })
        .collect();
    keep_busiest(
        &mut out,
        MAX_ROUTES,
        |r| r.row.golden.rps,
        |a, b| {
            (&a.row.workload, &a.row.service, &a.row.route).cmp(&(
                &b.row.workload,
                &b.row.service,
                &b.row.route,
            ))
        },
    );
    out
}

/// Requests per second `workload`'s authorization denied, over its sources.
fn denied(targets: &[Target], deltas: &[Option<Delta>], workload: &str) -> f64 {
    let count = samples_of(targets, deltas, workload)
        .filter(|s| s.name == "inbound_http_authz_deny_total")
        .map(|s| s.value)
        // Not `sum`, which starts at -0.0: the page would show "-0".
        .fold(0.0, |total, value| total + value);
    per_second(count, window_of(targets, deltas, workload))
}

/// The samples of `workload`'s sources.
fn samples_of<'a>(
    targets: &'a [Target],
    deltas: &'a [Option<Delta>],
    workload: &'a str,
) -> impl Iterator<Item = &'a Sample> {
    targets
        .iter()
        .zip(deltas)
        .filter(move |(target, _)| target.name == workload)
        .filter_map(|(_, delta)| delta.as_ref())
        .flat_map(Delta::samples)
}

/// Responses that ended in a timeout, by workload, route and service.
fn timeouts<'a>(
    targets: &'a [Target],
    deltas: &'a [Option<Delta>],
) -> HashMap<(&'a str, &'a str, &'a str), f64> {
    let mut out = HashMap::new();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        for s in delta.samples() {
            if s.name != "response_total"
                || !is_outbound_response(s)
                || s.label("error") != Some("timeout")
            {
                continue;
            }
            // As the route rows read it.
            let Some((route, service)) = outbound_route_key(s) else {
                continue;
            };
            *out.entry((target.name.as_str(), route, service))
                .or_insert(0.0) += s.value;
        }
    }
    out
}

/// Retries sent (`retry_requests_total`), by workload, route and service.
fn retries<'a>(
    targets: &'a [Target],
    deltas: &'a [Option<Delta>],
) -> HashMap<(&'a str, &'a str, &'a str), f64> {
    let mut out = HashMap::new();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        for s in delta.samples() {
            if s.name != "retry_requests_total" {
                continue;
            }
            let Some((route, service)) = outbound_route_key(s) else {
                continue;
            };
            *out.entry((target.name.as_str(), route, service))
                .or_insert(0.0) += s.value;
        }
    }
    out
}

/// The longest window among `workload`'s sources.
fn window_of(targets: &[Target], deltas: &[Option<Delta>], workload: &str) -> Duration {
    targets
        .iter()
        .zip(deltas)
        .filter(|(target, _)| target.name == workload)
        .filter_map(|(_, delta)| delta.as_ref().map(Delta::elapsed))
        .max()
        .unwrap_or(Duration::ZERO)
}

fn per_second(count: f64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs > 0.0 { count / secs } else { 0.0 }
}
