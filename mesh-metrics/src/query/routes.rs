//! `routes`: the golden signals of each route.
//!
//! Without a destination, the rows are a workload's inbound routes (the
//! `route_name` its authorization or router attached, per `srv_name`),
//! apart by kind where the responses say it: a port no Server covers is
//! decided by a default policy (`srv_kind="default"`), whose name a Server
//! may have too, shown as `default:NAME` as `linkerd viz authz` writes
//! it; an `HTTPRoute` and a `GRPCRoute` may share a name, shown as
//! `kind/name` where they do.
//! With `to`, they are its outbound routes to that service (`dst_service`),
//! where retries happen; there each row also says how often requests were
//! retried and how the success rate of single attempts (actual) compares
//! with that of requests (effective, what callers saw). The retry layer's
//! `retry_requests_total` is matched to a route by its `route_name` (or
//! `route`) and `dst_service` (or `service`) labels.
//!
//! Actual is every attempt as the backend answered it, as Linkerd's
//! `routes -o wide` ACTUAL_SUCCESS reads `route_actual_response_total`
//! (linkerd2's `viz/metrics-api/top_routes.go`): here the sidecar's
//! `outbound_http_route_backend_response_statuses_total` and, for gRPC
//! calls, `outbound_grpc_route_backend_response_statuses_total`, both
//! counted under the retries and matched by `parent_name` and
//! `route_name`. A gRPC attempt failed when its `grpc_status` is not `OK`
//! or it has an `error`, as linkerd2's `viz/cmd/stat_outbound.go` reads
//! that family: a gRPC server fails a call with a `200` and the status
//! in its trailers, which an HTTP status does not show. Where a source
//! serves neither family, actual is worked out from the retries, as if
//! each followed a failed attempt, which a route that retries a 429
//! makes wrong; where it serves the HTTP family but not the gRPC one, the
//! gRPC calls among its attempts count by their HTTP status alone.
//! Either way the row says the figure is estimated (`actual_estimated`,
//! `~` in a table) rather than present it as a count.
//!
//! A series a sidecar folded into its overflow (`overflow="true"`, past a
//! family's series limit) keeps the direction but not the route or the
//! server: its requests went to named routes, but to which is not known,
//! so it makes no row rather than pass for requests no route named
//! ([`DEFAULT_ROUTE`]). `sidecar stat` counts that traffic, and the
//! sidecar's `*_series_overflow_total` what was folded.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use serde::Serialize;

use super::{
    Delta, Format, Golden, QueryError, Sample, Target, Totals, View, measure_each,
    render::{self, Table},
    to_json, with_failures,
};

/// The route name of requests no route named, as `linkerd viz routes`
/// calls it (linkerd2's `viz/metrics-api/top_routes.go`).
pub const DEFAULT_ROUTE: &str = "[DEFAULT]";

/// One route's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteRow {
    /// The workload whose admin server reported it.
    pub workload: String,
    /// The route's name.
    pub route: String,
    /// The service: the server inbound, the destination outbound.
    pub service: String,
    /// Inbound, the server's kind (`srv_kind`): `server` for a Server,
    /// `default` for the default policy of a port no Server covers, which
    /// may have a Server's name (`all-unauthenticated`); left out of JSON
    /// outbound and where a scrape does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_kind: Option<String>,
    /// Inbound, the route's kind (`route_kind`: `HTTPRoute`, `GRPCRoute`,
    /// `default`), as routes of two kinds may share a name; left out of
    /// JSON outbound and where a scrape does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_kind: Option<String>,
    /// Success rate, RPS and latency of requests, as callers saw them
    /// (effective); the `actual_*` fields count attempts.
    #[serde(flatten)]
    pub golden: Golden,
    /// Retries per request.
    pub retry_ratio: Option<f64>,
    /// Successful attempts over all attempts, retries included.
    pub actual_success: Option<f64>,
    /// Attempts per second, retries included; `null` in JSON when it
    /// cannot be computed, as [`Golden::rps`].
    #[serde(serialize_with = "super::golden::number_or_null")]
    pub actual_rps: f64,
    /// Whether `actual_success` and `actual_rps` are estimates rather than
    /// counts of attempts ([`Totals::actual_estimated`]); a table marks
    /// them `~`.
    pub actual_estimated: bool,
}

/// The route rows of `targets` from their deltas: inbound routes, or with
/// `to` the outbound routes to that service. Sorted by workload, then route.
pub fn route_rows(targets: &[Target], deltas: &[Option<Delta>], to: Option<&str>) -> Vec<RouteRow> {
    match to {
        Some(_) => rows_by(targets, deltas, |s| route_key(s, to)),
        None => rows_by_kinds(targets, deltas, inbound_route_key),
    }
}

/// The kinds of an inbound row's server and route, where it says them.
type RowKinds<'a> = (Option<&'a str>, Option<&'a str>);

/// The route rows of the samples `key` puts in a (route, service), sorted
/// by workload, route and service. One pass, each sample's row found by
/// hashing: a scraped server picks how many routes and services there
/// are.
pub(crate) fn rows_by<'a>(
    targets: &'a [Target],
    deltas: &'a [Option<Delta>],
    key: impl Fn(&'a Sample) -> Option<(&'a str, &'a str)>,
) -> Vec<RouteRow> {
    rows_by_kinds(targets, deltas, |s| key(s).map(|key| (key, (None, None))))
}

/// [`rows_by`], with rows apart by the kinds of their server and route
/// too.
fn rows_by_kinds<'a>(
    targets: &'a [Target],
    deltas: &'a [Option<Delta>],
    key: impl Fn(&'a Sample) -> Option<((&'a str, &'a str), RowKinds<'a>)>,
) -> Vec<RouteRow> {
    type Key<'a> = (&'a str, &'a str, &'a str, RowKinds<'a>);
    let mut groups: HashMap<Key<'a>, (Totals, Duration)> = HashMap::new();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        for s in delta.samples() {
            let Some(((route, service), kinds)) = key(s) else {
                continue;
            };
            let group = groups
                .entry((target.name.as_str(), route, service, kinds))
                .or_default();
            group.0.add(s);
            group.1 = group.1.max(delta.elapsed());
        }
        // A histogram left out makes no row, but marks the row it was of.
        for s in delta.dropped_histograms() {
            if let Some(((route, service), kinds)) = key(s)
                && let Some(group) = groups.get_mut(&(target.name.as_str(), route, service, kinds))
            {
                group.0.add_dropped(s);
            }
        }
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    groups
        .into_iter()
        .filter(|(_, (t, _))| t.responses() > 0.0 || t.retries > 0.0)
        .map(
            |((workload, route, service, kinds), (t, window))| RouteRow {
                workload: workload.to_owned(),
                route: route.to_owned(),
                service: service.to_owned(),
                server_kind: kinds.0.map(str::to_owned),
                route_kind: kinds.1.map(str::to_owned),
                golden: Golden::new(&t, window),
                retry_ratio: t.retry_ratio(),
                actual_success: t.actual_success_rate(),
                actual_rps: t.actual_rps(window),
                actual_estimated: t.actual_estimated(),
            },
        )
        .collect()
}

/// The (route, service) a sample belongs to, if it is one of the selection.
/// A series a sidecar folded past a family's series limit
/// (`overflow="true"`) kept no route nor server: it belongs to none.
fn route_key<'a>(s: &'a Sample, to: Option<&str>) -> Option<(&'a str, &'a str)> {
    if s.label("overflow") == Some("true") {
        return None;
    }
    match to {
        Some(to) => outbound_route_key(s).filter(|(_, service)| *service == to),
        None => inbound_route_key(s).map(|(key, _)| key),
    }
}

/// The inbound (route, server) of a sample, and their kinds, where it
/// says them.
fn inbound_route_key(s: &Sample) -> Option<((&str, &str), RowKinds<'_>)> {
    let inbound = s.label("overflow") != Some("true")
        && !s.name.starts_with("retry_")
        && s.label("direction") == Some("inbound");
    inbound.then(|| {
        let key = (route_of(s), named(s, "srv_name").unwrap_or("-"));
        (key, (s.label("srv_kind"), s.label("route_kind")))
    })
}

/// The outbound (route, service) of a sample: a retry's, or an outbound
/// response's.
pub(crate) fn outbound_route_key(s: &Sample) -> Option<(&str, &str)> {
    // The attempts a route sent its backends, under the service the
    // requests were addressed to.
    if s.name.starts_with("outbound_http_route_backend_")
        || s.name.starts_with("outbound_grpc_route_backend_")
    {
        return Some((s.label("route_name")?, s.label("parent_name")?));
    }
    if s.name.starts_with("retry_") {
        let service = s.label("dst_service").or_else(|| s.label("service"))?;
        return Some((route_of(s), service));
    }
    let service = s.label("dst_service")?;
    (s.label("direction") == Some("outbound")).then(|| (route_of(s), service))
}

/// A sample's route: its `route_name` (or `route`), else [`DEFAULT_ROUTE`].
/// A label written empty is no label, as Prometheus reads it: mesh-retry
/// counts the retries of a request no route named under `route=""`, and
/// their responses have no `route_name`; `sum by (route)` puts both in
/// one series, and so does the view.
fn route_of(s: &Sample) -> &str {
    named(s, "route_name")
        .or_else(|| named(s, "route"))
        .unwrap_or(DEFAULT_ROUTE)
}

/// The value of label `name`, unless it is absent or empty.
fn named<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.label(name).filter(|v| !v.is_empty())
}

/// The ROUTE and SERVICE cells of each of `rows`. An inbound default
/// policy's server is `default:NAME`, as `linkerd viz authz` writes it,
/// so that it reads apart from a Server of the same name; a route is
/// `kind/name` where rows of one workload and server have the name in
/// more than one kind.
pub(crate) fn name_cells(rows: &[RouteRow]) -> Vec<[String; 2]> {
    // A scraped server picks how many routes there are: the kinds of each
    // name are gathered once, not looked for row by row.
    let mut kinds: HashMap<_, HashSet<Option<&str>>> = HashMap::new();
    for r in rows {
        kinds
            .entry((&r.workload, &r.service, &r.server_kind, &r.route))
            .or_default()
            .insert(r.route_kind.as_deref());
    }
    let kinds_of = |r: &RouteRow| {
        kinds
            .get(&(&r.workload, &r.service, &r.server_kind, &r.route))
            .is_some_and(|k| k.len() > 1)
    };
    rows.iter()
        .map(|r| {
            let route = match &r.route_kind {
                Some(kind) if kinds_of(r) => format!("{kind}/{}", r.route),
                _ => r.route.clone(),
            };
            let service = match r.server_kind.as_deref() {
                Some(DEFAULT_SERVER_KIND) => format!("{DEFAULT_SERVER_KIND}:{}", r.service),
                _ => r.service.clone(),
            };
            [route, service]
        })
        .collect()
}

/// The `srv_kind` of a default policy.
const DEFAULT_SERVER_KIND: &str = "default";

/// Writes `rows` as a table or JSON. The retry columns appear for outbound
/// routes (`outbound`), where retries happen; a table with the rows of
/// more than one workload begins with a WORKLOAD column.
///
/// # Errors
///
/// Only when JSON encoding fails.
pub fn render_routes(
    rows: &[RouteRow],
    outbound: bool,
    format: Format,
) -> Result<String, QueryError> {
    if format == Format::Json {
        return to_json(&rows);
    }
    // One workload's rows read as Linkerd's do; several need saying whose
    // each is, as callers of one service share its routes' names.
    let several = rows
        .first()
        .is_some_and(|first| rows.iter().any(|r| r.workload != first.workload));
    let mut header = if several {
        vec!["WORKLOAD"]
    } else {
        Vec::new()
    };
    header.extend(["ROUTE", "SERVICE"]);
    header.extend(render::GOLDEN_HEADER);
    if outbound {
        header.extend(["RETRY_RATIO", "ACTUAL_SUCCESS", "ACTUAL_RPS"]);
    }
    let mut table = Table::new(header);
    let mut names = name_cells(rows).into_iter();
    for r in rows {
        let mut cells = if several {
            vec![r.workload.clone()]
        } else {
            Vec::new()
        };
        cells.extend(names.next().unwrap_or_default());
        cells.extend(render::golden(&r.golden));
        if outbound {
            let estimate = |cell: String| {
                if r.actual_estimated && cell != "-" {
                    format!("~{cell}")
                } else {
                    cell
                }
            };
            cells.extend([
                render::percent(r.retry_ratio),
                estimate(render::percent(r.actual_success)),
                estimate(render::rps(r.actual_rps)),
            ]);
        }
        table.row(cells);
    }
    let mut out = table.render();
    if outbound && rows.iter().any(|r| r.actual_estimated) {
        out += "~ estimated: worked out from retry_requests_total, as if every retry followed a \
                failed attempt, where the attempts' statuses \
                (outbound_http_route_backend_response_statuses_total) are not served; or \
                counting gRPC calls by their HTTP status, where \
                outbound_grpc_route_backend_response_statuses_total is not served\n";
    }
    Ok(out + &render::dropped_note(rows.iter().map(|r| &r.golden)))
}

/// `sidecar routes`: scrapes `targets` a `window` apart and renders one row
/// per route; inbound routes, or with `to` the outbound routes to it.
///
/// [`view`], as text alone.
///
/// # Errors
///
/// When no target is given, none can be scraped, or JSON encoding fails.
pub async fn run(
    targets: &[Target],
    to: Option<&str>,
    window: Duration,
    format: Format,
) -> Result<String, QueryError> {
    view(targets, to, window, format).await.map(|v| v.text)
}

/// `sidecar routes`: scrapes `targets` a `window` apart and renders one row
/// per route; inbound routes, or with `to` the outbound routes to it.
///
/// With the targets that could not be scraped beside the text, for a
/// caller to report those of JSON, which does not name them.
///
/// # Errors
///
/// When no target is given, none can be scraped, or JSON encoding fails.
pub async fn view(
    targets: &[Target],
    to: Option<&str>,
    window: Duration,
    format: Format,
) -> Result<View, QueryError> {
    let measured = measure_each(targets, window).await?;
    let rows = route_rows(targets, &measured.deltas, to);
    let text = if rows.is_empty() && format == Format::Table {
        no_routes(to)
    } else {
        render_routes(&rows, to.is_some(), format)?
    };
    Ok(with_failures(text, targets, &measured, format))
}

/// What `routes` says when the window had no request to show, rather than
/// a bare header that reads as a misspelled `--to` as readily as a quiet
/// service.
fn no_routes(to: Option<&str>) -> String {
    match to {
        Some(service) => format!(
            "No requests to {service} found. Is {service} the name of a service these sidecars \
             send to (the dst_service label of their outbound metrics)?\n"
        ),
        None => "No inbound requests found.\n".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Scrape;

    #[tokio::test]
    async fn an_empty_window_says_so_and_names_the_service() {
        // An admin server that answers every scrape with no metrics.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0; 1024];
                    let _ = tcp.read(&mut buf).await;
                    let _ = tcp
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n# EOF\n")
                        .await;
                });
            }
        });
        let targets = Target::parse_list(&format!("web={addr}")).unwrap();
        let window = Duration::from_millis(10);
        let text = run(&targets, Some("nosuch"), window, Format::Table)
            .await
            .unwrap();
        assert!(text.starts_with("No requests to nosuch found."), "{text}");
        let text = run(&targets, None, window, Format::Table).await.unwrap();
        assert_eq!(text, "No inbound requests found.\n");
        let json = run(&targets, Some("nosuch"), window, Format::Json)
            .await
            .unwrap();
        assert_eq!(json.trim(), "[]");
    }

    #[test]
    fn a_default_policy_and_a_server_of_its_name_and_routes_of_two_kinds_have_rows_apart() {
        // Port 9090 is decided by the default policy `all-unauthenticated`,
        // port 8080 by a Server of that name, which has an HTTPRoute and a
        // GRPCRoute both named `get`.
        let line = |srv_kind: &str, route_kind: &str, route: &str, n: u32| {
            format!(
                "response_total{{direction=\"inbound\",srv_kind=\"{srv_kind}\",\
                 srv_name=\"all-unauthenticated\",route_kind=\"{route_kind}\",\
                 route_name=\"{route}\",classification=\"success\"}} {n}\n"
            )
        };
        let after = Scrape::parse(
            &[
                line("default", "default", "default", 10),
                line("server", "HTTPRoute", "get", 20),
                line("server", "GRPCRoute", "get", 30),
            ]
            .concat(),
        )
        .unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(10));
        let targets = Target::parse_list("web=a:1").unwrap();
        let rows = route_rows(&targets, &[Some(delta)], None);
        let table = render_routes(&rows, false, Format::Table).unwrap();
        let names: Vec<(&str, &str, f64)> = table
            .lines()
            .skip(1)
            .zip(&rows)
            .map(|(line, r)| {
                let mut cells = line.split_whitespace();
                (cells.next().unwrap(), cells.next().unwrap(), r.golden.rps)
            })
            .collect();
        assert_eq!(
            names,
            [
                ("default", "default:all-unauthenticated", 1.0),
                ("GRPCRoute/get", "all-unauthenticated", 3.0),
                ("HTTPRoute/get", "all-unauthenticated", 2.0),
            ],
            "{table}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_routes(&rows, false, Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["service"], "all-unauthenticated");
        assert_eq!(json[0]["server_kind"], "default");
        assert_eq!(json[1]["route_kind"], "GRPCRoute");
    }

    #[test]
    fn a_scraped_route_name_cannot_write_to_the_terminal() {
        // The label values come from whatever the admin server serves: one
        // with escape sequences (clear the screen, set the window title, a
        // C1 CSI) or a newline must not reach the terminal as they are.
        let after = Scrape::parse(
            "response_total{direction=\"inbound\",srv_name=\"web\",\
             route_name=\"a\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\\nFAKE 100.00%\",\
             classification=\"success\"} 5\n",
        )
        .unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(1));
        let targets = Target::parse_list("web=a:1").unwrap();
        let rows = route_rows(&targets, &[Some(delta)], None);
        let table = render_routes(&rows, false, Format::Table).unwrap();
        assert!(!table.contains(['\u{1b}', '\u{7}', '\u{9b}']), "{table:?}");
        assert_eq!(table.lines().count(), 2, "{table}");
        let route = table.lines().nth(1).unwrap();
        assert!(
            route.starts_with(r"a\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\u{a}FAKE 100.00% "),
            "{route}"
        );
        // Nor through `-o json`, whose own escapes stop at C0.
        let json = render_routes(&rows, false, Format::Json).unwrap();
        assert!(!json.contains(['\u{1b}', '\u{7}', '\u{9b}']), "{json:?}");
        assert!(
            json.contains(r#""route": "a\u001b[2J\u001b]0;owned\u0007\u009b31m\nFAKE 100.00%""#),
            "{json}"
        );
        let back: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0]["route"], rows[0].route);
    }

    #[test]
    fn routes_of_several_workloads_say_whose_each_is() {
        // web and vote both call emoji's `get`: without the workload, the
        // table had two rows `get emoji` that nothing told apart.
        let scrape = |ok: u32| {
            Scrape::parse(&format!(
                "response_total{{direction=\"outbound\",dst_service=\"emoji\",route_name=\"get\",classification=\"success\"}} {ok}\n"
            ))
            .unwrap()
        };
        let window = Duration::from_secs(1);
        let delta = |ok| Some(Delta::between(&Scrape::default(), &scrape(ok), window));
        let targets = Target::parse_list("web=a:1,vote=b:2").unwrap();
        let rows = route_rows(&targets, &[delta(3), delta(5)], Some("emoji"));
        let table = render_routes(&rows, true, Format::Table).unwrap();
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().take(4).collect())
            .collect();
        assert_eq!(
            lines,
            [
                vec!["WORKLOAD", "ROUTE", "SERVICE", "SUCCESS"],
                vec!["vote", "get", "emoji", "100.00%"],
                vec!["web", "get", "emoji", "100.00%"],
            ],
            "{table}"
        );
        assert!(table.lines().nth(1).unwrap().contains(" 5.0rps"), "{table}");
        // One workload's rows read as Linkerd's do.
        let rows = route_rows(&targets[..1], &[delta(3)], Some("emoji"));
        let table = render_routes(&rows, true, Format::Table).unwrap();
        assert!(table.starts_with("ROUTE "), "{table}");
    }

    #[test]
    fn traffic_folded_past_the_series_limit_makes_no_route_row() {
        // Past a family's series limit, a sidecar folds label sets into an
        // `overflow="true"` series that keeps the direction but neither
        // the route nor the server: its requests went to routes that had
        // names, and were shown as requests no route named.
        let after = Scrape::parse(
            "response_total{direction=\"inbound\",srv_name=\"web\",route_name=\"get\",classification=\"success\"} 5\n\
             response_total{direction=\"inbound\",tls=\"true\",classification=\"success\",overflow=\"true\"} 40\n\
             response_latency_ms_bucket{direction=\"inbound\",tls=\"true\",le=\"+Inf\",overflow=\"true\"} 40\n",
        )
        .unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(1));
        let targets = Target::parse_list("web=a:1").unwrap();
        let rows = route_rows(&targets, &[Some(delta)], None);
        let routes: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.route.as_str(), r.service.as_str()))
            .collect();
        assert_eq!(routes, [("get", "web")]);
        assert_eq!(rows[0].golden.rps, 5.0);
    }

    #[test]
    fn outbound_routes_show_retries_and_actual_success() {
        let after = Scrape::parse(
            "response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"get\",status_code=\"200\",classification=\"success\"} 99\n\
             response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"get\",status_code=\"500\",classification=\"failure\"} 1\n\
             response_total{direction=\"outbound\",dst_service=\"vote\",route_name=\"get\",classification=\"success\"} 7\n\
             response_total{direction=\"inbound\",srv_name=\"web\",classification=\"success\"} 5\n\
             retry_requests_total{route=\"get\",service=\"emoji\"} 10\n",
        )
        .unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(10));
        let targets = Target::parse_list("web=a:1").unwrap();
        let rows = route_rows(&targets, &[Some(delta.clone())], Some("emoji"));
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.route.as_str(), r.service.as_str()), ("get", "emoji"));
        assert_eq!(r.golden.success, Some(0.99));
        assert_eq!(r.golden.rps, 10.0);
        assert_eq!(r.retry_ratio, Some(0.1));
        // 99 successful attempts of 100 requests + 10 retries.
        assert_eq!(r.actual_success, Some(0.9));
        assert_eq!(r.actual_rps, 11.0);
        // Scripts read these names, in this order.
        assert_eq!(
            serde_json::to_string(r).unwrap(),
            concat!(
                r#"{"workload":"web","route":"get","service":"emoji","#,
                r#""success":0.99,"rps":10.0,"#,
                r#""latency_ms_p50":null,"latency_ms_p95":null,"latency_ms_p99":null,"#,
                r#""retry_ratio":0.1,"actual_success":0.9,"actual_rps":11.0,"#,
                r#""actual_estimated":true}"#,
            )
        );

        let inbound = route_rows(&targets, &[Some(delta)], None);
        assert_eq!(inbound.len(), 1);
        assert_eq!(
            (inbound[0].route.as_str(), inbound[0].service.as_str()),
            (DEFAULT_ROUTE, "web")
        );
        let table = render_routes(&inbound, false, Format::Table).unwrap();
        assert!(
            table.starts_with("ROUTE       SERVICE   SUCCESS"),
            "{table}"
        );
        // Requests no route named, as `linkerd viz routes` calls them.
        assert!(
            table.lines().nth(1).unwrap().starts_with("[DEFAULT]   "),
            "{table}"
        );
    }

    #[test]
    fn a_route_whose_histogram_has_hundreds_of_bounds_alone_loses_its_latency() {
        let route = |route: &str, bounds: &[&str]| {
            let mut text = format!(
                "response_total{{direction=\"inbound\",srv_name=\"web\",route_name=\"{route}\",classification=\"success\"}} 10\n"
            );
            for le in bounds {
                text += &format!(
                    "response_latency_ms_bucket{{direction=\"inbound\",srv_name=\"web\",route_name=\"{route}\",le=\"{le}\"}} 10\n"
                );
            }
            text
        };
        let bogus: Vec<String> = (0..300).map(|i| format!("{i}.25")).collect();
        let bogus: Vec<&str> = bogus.iter().map(String::as_str).collect();
        let after = Scrape::parse(&(route("bad", &bogus) + &route("get", &["5", "+Inf"]))).unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(1));
        assert_eq!(delta.dropped_histograms().len(), 1);
        let targets = Target::parse_list("web=a:1").unwrap();
        let rows = route_rows(&targets, &[Some(delta)], None);
        let bad = rows.iter().find(|r| r.route == "bad").unwrap();
        let get = rows.iter().find(|r| r.route == "get").unwrap();
        assert_eq!((bad.golden.rps, bad.golden.latency_ms_p50), (10.0, None));
        assert_eq!(bad.golden.latency_series_dropped, 1);
        assert_eq!(get.golden.latency_ms_p50, Some(2.5));
        assert_eq!(get.golden.latency_series_dropped, 0);
        let table = render_routes(&rows, false, Format::Table).unwrap();
        assert!(
            table.contains("* latency leaves out 1 histogram series"),
            "{table}"
        );
        assert_eq!(table.matches('*').count(), 4, "{table}");
    }

    #[test]
    fn actual_success_of_grpc_calls_is_read_from_their_grpc_statuses() {
        // emoji's `list` route took four gRPC calls and one plain GET. The
        // backend answered five gRPC attempts: UNAVAILABLE in a
        // trailers-only head (retried), OK twice, INTERNAL in the
        // trailers of a `200`, and one cut short; all five carry HTTP
        // status 200 or none, so only their gRPC statuses show that three
        // of them failed. The GET's one attempt was a 200.
        let grpc = |status: &str, error: &str, n: u32| {
            format!(
                "outbound_grpc_route_backend_response_statuses_total{{parent_name=\"emoji\",route_name=\"list\",backend_name=\"emoji\",grpc_status=\"{status}\",error=\"{error}\"}} {n}\n"
            )
        };
        let text = "response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"list\",status_code=\"200\",grpc_status=\"0\",classification=\"success\"} 2\n\
             response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"list\",status_code=\"200\",grpc_status=\"13\",classification=\"failure\"} 2\n\
             response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"list\",status_code=\"200\",classification=\"success\"} 1\n\
             retry_requests_total{route=\"list\",service=\"emoji\"} 1\n\
             outbound_http_route_backend_requests_total{parent_name=\"emoji\",route_name=\"list\",backend_name=\"emoji\"} 1\n\
             outbound_http_route_backend_response_statuses_total{parent_name=\"emoji\",route_name=\"list\",backend_name=\"emoji\",http_status=\"200\",error=\"\"} 1\n\
             outbound_grpc_route_backend_requests_total{parent_name=\"emoji\",route_name=\"list\",backend_name=\"emoji\"} 5\n"
            .to_owned()
            + &grpc("UNAVAILABLE", "", 1)
            + &grpc("OK", "", 2)
            + &grpc("INTERNAL", "", 1)
            + &grpc("UNKNOWN", "reset", 1)
            // Seen before the window, and not since.
            + &grpc("NOT_FOUND", "", 0);
        let after = Scrape::parse(&text).unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(2));
        let targets = Target::parse_list("web=a:1").unwrap();
        let rows = route_rows(&targets, &[Some(delta)], Some("emoji"));
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(r.golden.success, Some(0.6));
        // 2 OK and the GET's 200 of 6 attempts.
        assert_eq!(r.actual_success, Some(0.5));
        assert_eq!(r.actual_rps, 3.0);
        assert!(!r.actual_estimated);
        let table = render_routes(&rows, true, Format::Table).unwrap();
        assert!(table.contains(" 50.00%"), "{table}");
        assert!(!table.contains('~'), "{table}");

        // A source that counts gRPC calls among its HTTP attempts, by
        // their HTTP status alone, shows them all as successes: the figure
        // is marked.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("outbound_grpc_route_backend"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace(
                "http_status=\"200\",error=\"\"} 1",
                "http_status=\"200\",error=\"\"} 6",
            );
        let after = Scrape::parse(&text).unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(2));
        let rows = route_rows(&targets, &[Some(delta)], Some("emoji"));
        let r = &rows[0];
        assert_eq!(r.actual_success, Some(1.0));
        assert!(r.actual_estimated);
        let table = render_routes(&rows, true, Format::Table).unwrap();
        assert!(table.contains("~100.00%"), "{table}");
    }

    #[test]
    fn actual_success_is_every_attempt_as_the_backend_answered_it() {
        // Two requests to emoji's `get`: one answered 429, retried (the
        // route retries 429s) and answered 200; one answered 503 after a
        // per-try timeout cancelled its first attempt. The backend saw
        // four attempts: 429 and 200 are successes as the classification
        // counts them, the cancelled one and the 503 failures.
        let attempts = |status: &str, error: &str, n: u32| {
            format!(
                "outbound_http_route_backend_response_statuses_total{{parent_name=\"emoji\",route_name=\"get\",backend_name=\"emoji\",http_status=\"{status}\",error=\"{error}\"}} {n}\n"
            )
        };
        let text = "response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"get\",status_code=\"200\",classification=\"success\"} 1\n\
             response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"get\",status_code=\"503\",classification=\"failure\"} 1\n\
             retry_requests_total{route=\"get\",service=\"emoji\"} 2\n\
             outbound_http_route_backend_requests_total{parent_name=\"emoji\",route_name=\"get\",backend_name=\"emoji\"} 4\n"
            .to_owned()
            + &attempts("429", "", 1)
            + &attempts("200", "", 1)
            + &attempts("", "cancel", 1)
            + &attempts("503", "", 1);
        let after = Scrape::parse(&text).unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(2));
        let targets = Target::parse_list("web=a:1").unwrap();
        let rows = route_rows(&targets, &[Some(delta)], Some("emoji"));
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(r.golden.success, Some(0.5));
        assert_eq!(r.actual_success, Some(0.5));
        assert_eq!(r.actual_rps, 2.0);
        assert!(!r.actual_estimated);

        // Without the attempts' statuses, the figure is worked out from
        // the retries, and says so.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("outbound_http_route_backend"))
            .map(|l| format!("{l}\n"))
            .collect();
        let after = Scrape::parse(&text).unwrap();
        let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(2));
        let rows = route_rows(&targets, &[Some(delta)], Some("emoji"));
        let r = &rows[0];
        assert_eq!(r.actual_success, Some(0.25));
        assert!(r.actual_estimated);
        let table = render_routes(&rows, true, Format::Table).unwrap();
        assert!(table.contains("~25.00%"), "{table}");
        assert!(table.contains("~ estimated"), "{table}");
    }
}
