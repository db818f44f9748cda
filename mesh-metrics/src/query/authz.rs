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
//! Rows appear for traffic in the window: an authorization that allowed
//! nothing is not shown. Connections to opaque TCP ports are decided and
//! counted apart (`inbound_tcp_authz_*_total`), per connection rather than
//! per request, and are not shown here.

use std::time::Duration;

use serde::Serialize;

use super::{
    Delta, Format, Golden, QueryError, Target, Totals,
    group::{Groups, per_second},
    measure,
    render::{self, Table},
    to_json,
};

/// AUTHORIZATION in the row of denied requests.
pub const UNAUTHORIZED: &str = "[unauthorized]";

/// One authorization's row, or a route's denied requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuthzRow {
    /// The workload whose admin server reported it.
    pub workload: String,
    /// The Server (`srv_name`), or the default policy of a port no Server
    /// covers (`default:all-unauthenticated`...).
    pub server: String,
    /// The route (`route_name`).
    pub route: String,
    /// The authorization that allowed the requests (`authz_name`); `null`
    /// in the row of denied requests.
    pub authorization: Option<String>,
    /// Success rate, RPS and latency of the allowed requests; in the row of
    /// denied requests, the RPS of those and nothing else.
    #[serde(flatten)]
    pub golden: Golden,
}

/// What one row's samples add up to.
#[derive(Debug, Default)]
struct AuthzSum {
    allowed: f64,
    denied: f64,
    totals: Totals,
    window: Duration,
}

/// The authorization rows in the inbound traffic of `targets`, from their
/// deltas (`None` for a target that could not be scraped); sorted by
/// workload, server, route, then authorization, each route's denied
/// requests last.
pub fn authz_rows(targets: &[Target], deltas: &[Option<Delta>]) -> Vec<AuthzRow> {
    type Key = (String, String, String, Option<String>);
    let mut groups: Groups<Key, AuthzSum> = Groups::default();
    for (target, delta) in targets.iter().zip(deltas) {
        let Some(delta) = delta else { continue };
        for s in delta.samples() {
            let response = matches!(
                s.name.as_str(),
                "response_total" | "response_latency_ms_bucket"
            ) && s.label("direction") == Some("inbound");
            let denied = s.name == "inbound_http_authz_deny_total";
            if !response && !denied && s.name != "inbound_http_authz_allow_total" {
                continue;
            }
            let (Some(server), Some(route)) = (s.label("srv_name"), s.label("route_name")) else {
                continue;
            };
            let authz = if denied { None } else { s.label("authz_name") };
            if !denied && authz.is_none() {
                continue;
            }
            let key = (
                target.name.clone(),
                server.to_owned(),
                route.to_owned(),
                authz.map(str::to_owned),
            );
            let sum = groups.entry(key);
            sum.window = sum.window.max(delta.elapsed());
            if denied {
                sum.denied += s.value;
            } else if response {
                sum.totals.add(s);
            } else {
                sum.allowed += s.value;
            }
        }
    }
    let mut rows: Vec<AuthzRow> = groups
        .into_entries()
        .into_iter()
        .filter(|(_, sum)| sum.allowed > 0.0 || sum.denied > 0.0 || sum.totals.responses() > 0.0)
        .map(|((workload, server, route, authorization), sum)| {
            let golden = if authorization.is_some() {
                Golden::new(&sum.totals, sum.window)
            } else {
                Golden {
                    rps: per_second(sum.denied, sum.window),
                    ..Golden::default()
                }
            };
            AuthzRow {
                workload,
                server,
                route,
                authorization,
                golden,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &AuthzRow| {
            (
                r.workload.clone(),
                r.server.clone(),
                r.route.clone(),
                r.authorization.is_none(),
                r.authorization.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    rows
}

/// Writes `rows` as a table or JSON. A table with no row says so; one
/// with the rows of more than one workload begins with a WORKLOAD column.
///
/// # Errors
///
/// Only when JSON encoding fails.
pub fn render_authz(rows: &[AuthzRow], format: Format) -> Result<String, QueryError> {
    if format == Format::Json {
        return to_json(&rows);
    }
    if rows.is_empty() {
        return Ok("No authorized or denied requests found.\n".to_owned());
    }
    // One workload's rows read as Linkerd's do; several need saying whose
    // each is, as the same Server, route and authorization names recur.
    let several = rows
        .first()
        .is_some_and(|first| rows.iter().any(|r| r.workload != first.workload));
    let mut header = if several {
        vec!["WORKLOAD"]
    } else {
        Vec::new()
    };
    header.extend(["ROUTE", "SERVER", "AUTHORIZATION"]);
    header.extend(render::GOLDEN_HEADER);
    let mut table = Table::new(header);
    for r in rows {
        let authz = r.authorization.as_deref().unwrap_or(UNAUTHORIZED);
        let mut cells = if several {
            vec![r.workload.clone()]
        } else {
            Vec::new()
        };
        cells.extend([r.route.clone(), r.server.clone(), authz.to_owned()]);
        cells.extend(render::golden(&r.golden));
        table.row(cells);
    }
    Ok(table.render())
}

/// `sidecar authz`: scrapes `targets` a `window` apart and renders one row
/// per authorization, and one per route with denied requests.
///
/// # Errors
///
/// When no target is given, none can be scraped, or JSON encoding fails.
pub async fn run(
    targets: &[Target],
    window: Duration,
    format: Format,
) -> Result<String, QueryError> {
    let deltas = measure(targets, window).await?;
    render_authz(&authz_rows(targets, &deltas), format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Scrape;

    const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";

    #[test]
    fn each_authorization_has_its_figures_and_denials_a_row_of_their_own() {
        let scrape = |ok: u32, fail: u32, denied: u32| {
            Scrape::parse(&format!(
                "inbound_http_authz_allow_total{{srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"emoji-from-web\",tls=\"true\"}} {}\n\
                 inbound_http_authz_allow_total{{srv_name=\"emoji-http\",route_name=\"probe\",authz_name=\"probe\",tls=\"no_identity\"}} 7\n\
                 inbound_http_authz_deny_total{{srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"deny\",tls=\"no_identity\"}} {denied}\n\
                 inbound_http_authz_deny_total{{srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"deny\",tls=\"true\"}} {denied}\n\
                 response_total{{direction=\"inbound\",srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"emoji-from-web\",tls=\"true\",client_id=\"{WEB}\",classification=\"success\"}} {ok}\n\
                 response_total{{direction=\"inbound\",srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"emoji-from-web\",tls=\"true\",client_id=\"{WEB}\",classification=\"failure\"}} {fail}\n\
                 response_latency_ms_bucket{{direction=\"inbound\",srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"emoji-from-web\",le=\"10.0\"}} {ok}\n\
                 response_latency_ms_bucket{{direction=\"inbound\",srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"emoji-from-web\",le=\"+Inf\"}} {}\n\
                 response_total{{direction=\"outbound\",srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"x\",classification=\"success\"}} 99\n",
                ok + fail,
                ok + fail,
            ))
            .unwrap()
        };
        let window = Duration::from_secs(10);
        let targets = Target::parse_list("emoji=a:1,gone=b:2").unwrap();
        let deltas = [
            Some(Delta::between(&scrape(0, 0, 0), &scrape(36, 4, 15), window)),
            None,
        ];
        let rows = authz_rows(&targets, &deltas);
        assert_eq!(
            rows,
            [
                AuthzRow {
                    workload: "emoji".into(),
                    server: "emoji-http".into(),
                    route: "default".into(),
                    authorization: Some("emoji-from-web".into()),
                    // Rank 20 of 40 in le=10 (36 of them): 10 × 20/36.
                    golden: Golden {
                        success: Some(0.9),
                        rps: 4.0,
                        latency_ms_p50: Some(10.0 * 20.0 / 36.0),
                        latency_ms_p95: Some(10.0),
                        latency_ms_p99: Some(10.0),
                    },
                },
                AuthzRow {
                    workload: "emoji".into(),
                    server: "emoji-http".into(),
                    route: "default".into(),
                    authorization: None,
                    // 15 denied without identity and 15 with, over 10 s.
                    golden: Golden {
                        rps: 3.0,
                        ..Golden::default()
                    },
                },
            ]
        );
        assert_eq!(
            render_authz(&rows, Format::Table).unwrap(),
            "ROUTE         SERVER    AUTHORIZATION   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99\n\
             default   emoji-http   emoji-from-web    90.00%   4.0rps         5.6ms          10ms          10ms\n\
             default   emoji-http   [unauthorized]         -   3.0rps             -             -             -\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_authz(&rows, Format::Json).unwrap()).unwrap();
        assert!(json[1]["authorization"].is_null());
        assert_eq!(json[1]["rps"], 3.0);
        assert_eq!(json[0]["authorization"], "emoji-from-web");
    }

    #[test]
    fn a_window_without_requests_has_no_rows_and_says_so() {
        let same = Scrape::parse(
            "inbound_http_authz_allow_total{srv_name=\"s\",route_name=\"r\",authz_name=\"a\"} 4\n",
        )
        .unwrap();
        let targets = Target::parse_list("emoji=a:1").unwrap();
        let deltas = [Some(Delta::between(&same, &same, Duration::from_secs(1)))];
        let rows = authz_rows(&targets, &deltas);
        assert!(rows.is_empty());
        assert_eq!(
            render_authz(&rows, Format::Table).unwrap(),
            "No authorized or denied requests found.\n"
        );
    }

    #[test]
    fn rows_of_several_workloads_say_whose_they_are_in_the_table_too() {
        // Two workloads on the default policy: the same Server, route and
        // authorization names, which JSON tells apart by `workload`.
        let scrape = |n: u32| {
            Scrape::parse(&format!(
                "response_total{{direction=\"inbound\",srv_name=\"default:all-unauthenticated\",route_name=\"default\",authz_name=\"default:all-unauthenticated\",classification=\"success\"}} {n}\n"
            ))
            .unwrap()
        };
        let window = Duration::from_secs(10);
        let targets = Target::parse_list("emoji=a:1,voting=b:2").unwrap();
        let deltas = [
            Some(Delta::between(&scrape(0), &scrape(10), window)),
            Some(Delta::between(&scrape(0), &scrape(30), window)),
        ];
        let rows = authz_rows(&targets, &deltas);
        assert_eq!(
            render_authz(&rows, Format::Table).unwrap(),
            "WORKLOAD     ROUTE                        SERVER                 AUTHORIZATION   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99\n\
             emoji      default   default:all-unauthenticated   default:all-unauthenticated   100.00%   1.0rps             -             -             -\n\
             voting     default   default:all-unauthenticated   default:all-unauthenticated   100.00%   3.0rps             -             -             -\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_authz(&rows, Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["workload"], "emoji");
        assert_eq!(json[1]["workload"], "voting");
    }
}
