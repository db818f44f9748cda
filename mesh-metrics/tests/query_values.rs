//! What the views show of counter values no counter can have: negative
//! ones, NaN and infinities, and sums past the range of `f64`. A scraped
//! admin server that is broken or not ours can serve any of them.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use mesh_metrics::{
    Direction,
    query::{
        Delta, Format, Scrape, Target,
        stat::{render_stat, stat_rows},
    },
};

const WINDOW: Duration = Duration::from_secs(10);

/// The `stat` table and JSON of one workload scraped as `before`, then as
/// `after`.
fn stat(before: &str, after: &str) -> (String, serde_json::Value) {
    let delta = Delta::between(
        &Scrape::parse(before).unwrap(),
        &Scrape::parse(after).unwrap(),
        WINDOW,
    );
    let targets = Target::parse_list("web=a:1").unwrap();
    let rows = stat_rows(&targets, &[Some(delta)], Direction::Inbound);
    let table = render_stat(&rows, Format::Table).unwrap();
    let json = render_stat(&rows, Format::Json).unwrap();
    (table, serde_json::from_str(&json).unwrap())
}

fn row(table: &str) -> Vec<&str> {
    table.lines().nth(1).unwrap().split_whitespace().collect()
}

#[test]
fn a_counter_gone_negative_does_not_make_success_above_100_percent() {
    let (table, json) = stat(
        "response_total{direction=\"inbound\",classification=\"success\"} 10\n\
         response_total{direction=\"inbound\",classification=\"failure\"} 10\n",
        "response_total{direction=\"inbound\",classification=\"success\"} 20\n\
         response_total{direction=\"inbound\",classification=\"failure\"} -5\n",
    );
    // NAME MESHED SUCCESS RPS ...: the failures are left out, not taken
    // as 5 fewer responses (10 of 5 was 200.00%).
    assert_eq!(row(&table)[2..4], ["100.00%", "1.0rps"], "{table}");
    assert_eq!(json[0]["success"], 1.0);
    assert_eq!(json[0]["rps"], 1.0);
}

#[test]
fn nan_and_infinite_counters_are_left_out_of_the_figures() {
    let (table, json) = stat(
        "response_total{direction=\"inbound\",classification=\"success\"} 10\n\
         response_total{direction=\"inbound\",classification=\"failure\"} NaN\n\
         response_total{direction=\"inbound\",tls=\"true\",classification=\"success\"} 0\n",
        "response_total{direction=\"inbound\",classification=\"success\"} 30\n\
         response_total{direction=\"inbound\",classification=\"failure\"} 5\n\
         response_total{direction=\"inbound\",tls=\"true\",classification=\"success\"} +Inf\n\
         response_latency_ms_bucket{direction=\"inbound\",le=\"10\"} NaN\n\
         response_latency_ms_bucket{direction=\"inbound\",le=\"+Inf\"} +Inf\n",
    );
    assert!(!table.contains("NaN") && !table.contains("inf"), "{table}");
    // NAME MESHED SUCCESS RPS P50 P95 P99 TLS: the 20 successes of the
    // first series alone; no latency without a finite bucket.
    assert_eq!(
        row(&table),
        ["web", "1/1", "100.00%", "2.0rps", "-", "-", "-", "0.00%"],
        "{table}"
    );
    assert_eq!(json[0]["success"], 1.0);
    assert_eq!(json[0]["rps"], 2.0);
    assert!(json[0]["latency_ms_p50"].is_null(), "{json}");
}

#[test]
fn figures_of_sums_past_the_range_of_f64_are_a_dash_and_null() {
    // Each count is finite; their sum is not, and neither is its rate.
    let (table, json) = stat(
        "",
        "response_total{direction=\"inbound\",classification=\"success\"} 1e308\n\
         response_total{direction=\"inbound\",classification=\"failure\"} 1e308\n",
    );
    assert_eq!(row(&table)[2..4], ["-", "-"], "{table}");
    assert_eq!(row(&table)[7], "-", "{table}");
    // In JSON a figure that cannot be computed is null, `rps` as the others.
    for field in ["success", "rps", "tls"] {
        assert!(json[0][field].is_null(), "{field}: {json}");
    }
}
