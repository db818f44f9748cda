//! `stat`: the golden signals of each workload.

use std::time::Duration;

use serde::Serialize;

use super::{
    Delta, Format, Golden, QueryError, Target, Totals, View, measure_each,
    render::{self, Table},
    to_json, with_failures,
};
use crate::labels::Direction;

/// One workload's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatRow {
    /// The workload's name.
    pub name: String,
    /// Replicas whose admin server answered both scrapes.
    pub meshed: usize,
    /// Replicas named.
    pub replicas: usize,
    /// Success rate, RPS and latency of its inbound traffic, summed over
    /// the replicas that answered. With none, every figure is `null` in
    /// JSON (`-` in a table), RPS included ([`Golden::rps`] is +Inf).
    #[serde(flatten)]
    pub golden: Golden,
    /// The share of responses on mutual TLS; `None` (`null` in JSON)
    /// without traffic, or past the range of `f64`.
    pub tls: Option<f64>,
}

impl StatRow {
    fn new(name: &str, meshed: usize, replicas: usize, t: &Totals, window: Duration) -> Self {
        let mut golden = Golden::new(t, window);
        // No replica answered: nothing was measured, and a rate of 0 would
        // read as a workload that took no requests. `linkerd viz stat`
        // shows a resource without stats as `-` throughout.
        if meshed == 0 {
            golden.rps = f64::INFINITY;
        }
        Self {
            name: name.to_owned(),
            meshed,
            replicas,
            golden,
            tls: t.tls_rate(),
        }
    }
}

/// The rows of `targets`, from their deltas (`None` for a target that could
/// not be scraped), counting traffic in `direction`. Targets with one name
/// make one row, in the order the names first appear.
pub fn stat_rows(
    targets: &[Target],
    deltas: &[Option<Delta>],
    direction: Direction,
) -> Vec<StatRow> {
    let mut rows: Vec<(String, usize, usize, Totals, Duration)> = Vec::new();
    for (target, delta) in targets.iter().zip(deltas) {
        let i = match rows.iter().position(|r| r.0 == target.name) {
            Some(i) => i,
            None => {
                rows.push((target.name.clone(), 0, 0, Totals::default(), Duration::ZERO));
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.2 += 1;
        if let Some(delta) = delta {
            row.1 += 1;
            row.4 = row.4.max(delta.elapsed());
            delta.accumulate(&mut row.3, |s| {
                s.label("direction") == Some(direction.as_label())
            });
        }
    }
    rows.iter()
        .map(|(name, meshed, replicas, totals, window)| {
            StatRow::new(name, *meshed, *replicas, totals, *window)
        })
        .collect()
}

/// Writes `rows` as a table or JSON.
///
/// # Errors
///
/// Only when JSON encoding fails.
pub fn render_stat(rows: &[StatRow], format: Format) -> Result<String, QueryError> {
    if format == Format::Json {
        return to_json(&rows);
    }
    let mut header = vec!["NAME", "MESHED"];
    header.extend(render::GOLDEN_HEADER);
    header.push("TLS");
    let mut table = Table::new(header);
    for r in rows {
        let mut cells = vec![r.name.clone(), format!("{}/{}", r.meshed, r.replicas)];
        cells.extend(render::golden(&r.golden));
        cells.push(render::percent(r.tls));
        table.row(cells);
    }
    Ok(table.render() + &render::dropped_note(rows.iter().map(|r| &r.golden)))
}

/// `sidecar stat`: scrapes `targets` a `window` apart and renders one row
/// per workload from its inbound traffic.
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

/// `sidecar stat`: scrapes `targets` a `window` apart and renders one row
/// per workload from its inbound traffic.
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
    let rows = stat_rows(targets, &measured.deltas, Direction::Inbound);
    let text = render_stat(&rows, format)?;
    Ok(with_failures(text, targets, &measured, format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Scrape;

    #[test]
    fn replicas_of_a_workload_make_one_row() {
        let before = Scrape::parse("").unwrap();
        let scrape = |ok: u32, fail: u32| {
            Scrape::parse(&format!(
                "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"web.emojivoto\",classification=\"success\"}} {ok}\n\
                 response_total{{direction=\"inbound\",classification=\"failure\"}} {fail}\n\
                 response_total{{direction=\"outbound\",classification=\"failure\"}} 1000\n\
                 response_latency_ms_bucket{{le=\"1.0\",direction=\"inbound\"}} {ok}\n\
                 response_latency_ms_bucket{{le=\"+Inf\",direction=\"inbound\"}} {}\n",
                ok + fail
            ))
            .unwrap()
        };
        let window = Duration::from_secs(10);
        let targets = Target::parse_list("web=a:1,web=b:2,vote=c:3").unwrap();
        let deltas = vec![
            Some(Delta::between(&before, &scrape(40, 10), window)),
            Some(Delta::between(&before, &scrape(50, 0), window)),
            None,
        ];
        let rows = stat_rows(&targets, &deltas, Direction::Inbound);
        assert_eq!(rows.len(), 2);
        let web = &rows[0];
        assert_eq!((web.meshed, web.replicas), (2, 2));
        assert_eq!(web.golden.success, Some(0.9));
        assert_eq!(web.golden.rps, 10.0);
        assert_eq!(web.tls, Some(0.9));
        // Rank 50 of 100 falls in le=1, which holds 90: 0 + 1 × 50/90.
        assert!((web.golden.latency_ms_p50.unwrap() - 50.0 / 90.0).abs() < 1e-9);
        // p99 falls past le=1, in +Inf: the highest finite bound.
        assert_eq!(web.golden.latency_ms_p99, Some(1.0));
        let vote = &rows[1];
        assert_eq!(
            (vote.meshed, vote.replicas, vote.golden.success),
            (0, 1, None)
        );
        let table = render_stat(&rows, Format::Table).unwrap();
        assert_eq!(
            table,
            "NAME   MESHED   SUCCESS       RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99      TLS\n\
             web       2/2    90.00%   10.0rps         0.6ms           1ms           1ms   90.00%\n\
             vote      0/1         -         -             -             -             -        -\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_stat(&rows, Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["name"], "web");
        assert_eq!(json[0]["success"], 0.9);
        assert!(json[1]["success"].is_null());
    }

    #[test]
    fn json_keeps_the_field_names_and_order_scripts_read() {
        let after = Scrape::parse(
            "response_total{direction=\"inbound\",tls=\"true\",classification=\"success\"} 3\n\
             response_total{direction=\"inbound\",classification=\"failure\"} 1\n\
             response_latency_ms_bucket{le=\"10.0\",direction=\"inbound\"} 4\n\
             response_latency_ms_bucket{le=\"+Inf\",direction=\"inbound\"} 4\n",
        )
        .unwrap();
        let window = Duration::from_secs(2);
        let deltas = [
            Some(Delta::between(&Scrape::default(), &after, window)),
            None,
        ];
        let targets = Target::parse_list("web=a:1,vote=b:2").unwrap();
        let rows = stat_rows(&targets, &deltas, Direction::Inbound);
        // Scripts read these names; the golden figures sit between
        // `replicas` and `tls`, as plain fields of the row.
        assert_eq!(
            render_stat(&rows, Format::Json).unwrap(),
            r#"[
  {
    "name": "web",
    "meshed": 1,
    "replicas": 1,
    "success": 0.75,
    "rps": 2.0,
    "latency_ms_p50": 5.0,
    "latency_ms_p95": 9.5,
    "latency_ms_p99": 9.9,
    "tls": 0.75
  },
  {
    "name": "vote",
    "meshed": 0,
    "replicas": 1,
    "success": null,
    "rps": null,
    "latency_ms_p50": null,
    "latency_ms_p95": null,
    "latency_ms_p99": null,
    "tls": null
  }
]
"#
        );
    }

    #[test]
    fn a_workload_none_of_whose_replicas_answered_has_no_rate() {
        // Nothing was measured: `0.0rps` would read as a workload that
        // took no requests, when it may be taking thousands. As `linkerd
        // viz stat` shows a resource without stats, every figure is `-`.
        let targets = Target::parse_list("web=a:1,web=b:2").unwrap();
        let rows = stat_rows(&targets, &[None, None], Direction::Inbound);
        let table = render_stat(&rows, Format::Table).unwrap();
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row, ["web", "0/2", "-", "-", "-", "-", "-", "-"], "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&render_stat(&rows, Format::Json).unwrap()).unwrap();
        assert!(json[0]["rps"].is_null(), "{json}");
        // A replica that answered both scrapes and took no request in the
        // window took 0 a second.
        let quiet = Delta::between(
            &Scrape::default(),
            &Scrape::default(),
            Duration::from_secs(1),
        );
        let rows = stat_rows(&targets, &[Some(quiet), None], Direction::Inbound);
        assert_eq!(rows[0].golden.rps, 0.0);
    }

    /// A replica's inbound histogram: `ok` requests under 1 ms, `slow`
    /// under 100 ms, with Linkerd's kind of bounds.
    fn replica(ok: u32, slow: u32) -> String {
        format!(
            "response_total{{direction=\"inbound\",classification=\"success\"}} {}\n\
             response_latency_ms_bucket{{le=\"1.0\",direction=\"inbound\"}} {ok}\n\
             response_latency_ms_bucket{{le=\"100.0\",direction=\"inbound\"}} {}\n\
             response_latency_ms_bucket{{le=\"+Inf\",direction=\"inbound\"}} {}\n",
            ok + slow,
            ok + slow,
            ok + slow
        )
    }

    /// A histogram series of `bounds` made-up bounds from `start`, and its
    /// `+Inf`.
    fn hostile(bounds: usize, start: usize, labels: &str) -> String {
        let mut text = String::new();
        for i in 0..bounds {
            text += &format!(
                "response_latency_ms_bucket{{le=\"{}.5\",direction=\"inbound\"{labels}}} {i}\n",
                start + i
            );
        }
        text += &format!(
            "response_latency_ms_bucket{{le=\"+Inf\",direction=\"inbound\"{labels}}} {bounds}\n"
        );
        text
    }

    #[test]
    fn a_replica_with_hundreds_of_bounds_does_not_blank_its_workload_latency() {
        let window = Duration::from_secs(10);
        let delta = |text: &str| {
            Some(Delta::between(
                &Scrape::default(),
                &Scrape::parse(text).unwrap(),
                window,
            ))
        };
        let targets = Target::parse_list("web=a:1,web=b:2,vote=c:3").unwrap();
        // web's first replica serves one histogram of 256 made-up bounds
        // before its real one; vote's one, many series that each look
        // like a histogram but together name thousands of bounds.
        let mut many = replica(10, 0);
        for series in 0..20 {
            many += &hostile(
                200,
                1000 * (series + 1),
                &format!(",route_name=\"r{series}\""),
            );
        }
        let deltas = vec![
            delta(&(hostile(256, 1000, ",route_name=\"x\"") + &replica(0, 0))),
            delta(&replica(90, 10)),
            delta(&many),
        ];
        let rows = stat_rows(&targets, &deltas, Direction::Inbound);
        let web = &rows[0].golden;
        // The figures are the sane histograms': web's second replica,
        // rank 50 of 100 within le=1, which holds 90.
        assert!(
            web.latency_ms_p50
                .is_some_and(|p| (p - 50.0 / 90.0).abs() < 1e-9),
            "{web:?}"
        );
        assert_eq!(web.latency_series_dropped, 1, "{web:?}");
        // vote keeps its real histogram and the first made-up one, which
        // has the bounds a histogram may have; the 19 after it would take
        // the source past them.
        let vote = &rows[1].golden;
        assert!(vote.latency_ms_p50.is_some(), "{vote:?}");
        assert_eq!(vote.latency_series_dropped, 19, "{vote:?}");
        // The table marks the latencies that leave series out, and says
        // why under it.
        let table = render_stat(&rows, Format::Table).unwrap();
        assert!(table.contains("0.6ms*"), "{table}");
        assert!(
            table.contains("* latency leaves out 20 histogram series"),
            "{table}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_stat(&rows, Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["latency_series_dropped"], 1);
    }
}
