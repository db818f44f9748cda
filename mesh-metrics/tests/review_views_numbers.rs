//! The figures `stat` and `routes` print, from admin servers on 127.0.0.1
//! serving known text: latencies rounded as `linkerd viz` rounds them, and
//! a label written empty read as Prometheus reads it, as no label.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use crate::support::admin_stub::{admin_serving, read_head};
use mesh_metrics::query::{Format, Target, routes, stat};
use tokio::{io::AsyncWriteExt, net::TcpListener};

/// An admin server whose n-th scrape is answered with `bodies[n]`, the
/// last one for every scrape after; returns its address.
async fn admin(bodies: &[&str]) -> String {
    let bodies: Vec<String> = bodies.iter().map(|b| (*b).to_owned()).collect();
    admin_serving(move |n| bodies[n.min(bodies.len() - 1)].clone()).await
}

/// Three inbound responses in the window: one at or under `low` ms, two
/// more at or under `high`.
fn three_responses(low: &str, high: &str) -> String {
    format!(
        "response_total{{direction=\"inbound\",classification=\"success\"}} 3\n\
         response_latency_ms_bucket{{le=\"{low}\",direction=\"inbound\"}} 1\n\
         response_latency_ms_bucket{{le=\"{high}\",direction=\"inbound\"}} 3\n\
         response_latency_ms_bucket{{le=\"+Inf\",direction=\"inbound\"}} 3\n\
         # EOF\n"
    )
}

#[tokio::test]
async fn latencies_are_rounded_half_away_from_zero_as_linkerd_viz_prints_them() {
    // p50 is rank 1.5 of 3: half a response into the bucket of two above
    // `low`, a quarter of its width: 10 + 10 × 0.5/2 = 12.5 ms for web,
    // 2 + 1 × 0.5/2 = 2.25 ms for vote. linkerd's metrics-api rounds a
    // latency with Go's math.Round (half away from zero) and prints
    // 13ms; `{:.0}` rounds ties to even, and printed 12ms (and 2.2ms).
    let targets = || async {
        let web = admin(&["# EOF\n", &three_responses("10.0", "20.0")]).await;
        let vote = admin(&["# EOF\n", &three_responses("2.0", "3.0")]).await;
        Target::parse_list(&format!("web={web},vote={vote}")).unwrap()
    };
    let table = stat::run(&targets().await, Duration::from_millis(10), Format::Table)
        .await
        .unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // NAME MESHED SUCCESS RPS P50 P95 P99 TLS; p95 is rank 2.85:
    // 10 + 10 × 1.85/2 = 19.25, and 2.925; p99 (rank 2.97) 19.85 and
    // 2.985.
    let latencies: Vec<&[&str]> = rows[1..].iter().map(|r| &r[4..7]).collect();
    assert_eq!(
        latencies,
        [["13ms", "19ms", "20ms"], ["2.3ms", "2.9ms", "3ms"]],
        "{table}"
    );
    // JSON keeps the figure as computed.
    let json = stat::run(&targets().await, Duration::from_millis(10), Format::Json)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["latency_ms_p50"], 12.5, "{json}");
    assert_eq!(json[1]["latency_ms_p50"], 2.25, "{json}");
}

#[tokio::test]
async fn a_route_label_written_empty_is_the_route_no_route_named() {
    // mesh-retry counts the retries of a request without a route under
    // `route=""`, while its responses have no `route_name`: Prometheus
    // reads an empty label as no label, so `sum by (route)` puts both in
    // one series, but the view made a row `[DEFAULT]` of the responses
    // (retried 0%) and a blank row of the retries alone.
    let after = "response_total{direction=\"outbound\",dst_service=\"emoji\",\
                 classification=\"success\"} 3\n\
                 response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"\",\
                 classification=\"failure\"} 1\n\
                 retry_requests_total{service=\"emoji\",route=\"\"} 2\n\
                 # EOF\n";
    let targets = Target::parse_list(&format!("web={}", admin(&["# EOF\n", after]).await)).unwrap();
    let json = routes::run(
        &targets,
        Some("emoji"),
        Duration::from_millis(10),
        Format::Json,
    )
    .await
    .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap(),
                r["success"].as_f64(),
                r["retry_ratio"].as_f64(),
            )
        })
        .collect();
    assert_eq!(got, [("[DEFAULT]", Some(0.75), Some(0.5))], "{json}");
    // Inbound, a server written empty is a server not named.
    let after = "response_total{direction=\"inbound\",srv_name=\"\",route_name=\"\",\
                 classification=\"success\"} 2\n\
                 response_total{direction=\"inbound\",classification=\"success\"} 2\n\
                 # EOF\n";
    let targets = Target::parse_list(&format!("web={}", admin(&["# EOF\n", after]).await)).unwrap();
    let table = routes::run(&targets, None, Duration::from_millis(10), Format::Table)
        .await
        .unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(rows, [["[DEFAULT]", "-", "100.00%"]], "{table}");
}

#[tokio::test]
async fn an_address_that_serves_a_page_is_named_with_what_is_wrong_on_which_line() {
    // `--admin` given the application's port: a page, not metrics. Its
    // first line is one word that is no metric name, and the error said
    // the line's value was bad.
    let page = admin(&["<html>\n<body>hello</body>\n</html>\n"]).await;
    let targets = Target::parse_list(&format!("web={page}")).unwrap();
    let error = stat::run(&targets, Duration::from_millis(10), Format::Table)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no admin server could be scraped: scraping web ({page}): {page} served unreadable \
             metrics: bad metric name on line 1"
        )
    );
    // A name alone is a sample without its value.
    let bare = admin(&["request_total\n"]).await;
    let targets = Target::parse_list(&format!("web={bare}")).unwrap();
    let error = stat::run(&targets, Duration::from_millis(10), Format::Table)
        .await
        .unwrap_err();
    assert!(
        error.to_string().ends_with(": bad sample value on line 1"),
        "{error}"
    );
}

#[tokio::test]
async fn tls_without_a_client_certificate_is_not_counted_as_mutual_tls() {
    // A sidecar serves TLS to a client without a certificate where its
    // mode allows it, writing `tls="true"` with `client_id=""`: the
    // client proved nothing, and `edges` shows that traffic as
    // `no_peer_identity`, but `stat`'s TLS column, "the share of
    // responses on mutual TLS", counted it, 100% here. An overflow
    // series folded the identity away and says `tls="true"` alone: it
    // still counts, as it does not say otherwise.
    let after = "response_total{direction=\"inbound\",tls=\"true\",\
                 client_id=\"web.emojivoto.serviceaccount.identity.linkerd.cluster.local\",\
                 classification=\"success\"} 5\n\
                 response_total{direction=\"inbound\",tls=\"true\",client_id=\"\",\
                 classification=\"success\"} 3\n\
                 response_total{direction=\"inbound\",tls=\"true\",classification=\"success\",\
                 overflow=\"true\"} 2\n\
                 # EOF\n";
    let targets = Target::parse_list(&format!("web={}", admin(&["# EOF\n", after]).await)).unwrap();
    let json = stat::run(&targets, Duration::from_millis(10), Format::Json)
        .await
        .unwrap();
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["success"], 1.0, "{json}");
    assert_eq!(rows[0]["tls"], 0.7, "{json}");
}

#[tokio::test]
async fn an_openmetrics_body_cut_short_is_refused_rather_than_read_as_counts() {
    // An OpenMetrics body ends with `# EOF`, so that a reader can tell a
    // whole body from one cut short: a body without a length, ended by
    // the close of its connection, may stop anywhere, here in the middle
    // of `123`. Read as it came, the counter went from 100 to 12, a
    // reset, and 12 responses counted in the window that never were;
    // Prometheus refuses an OpenMetrics body without `# EOF`.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for body in [
            "response_total{direction=\"inbound\",classification=\"success\"} 100\n# EOF\n",
            "response_total{direction=\"inbound\",classification=\"success\"} 12",
        ] {
            let (mut tcp, _) = listener.accept().await.unwrap();
            if !read_head(&mut tcp).await {
                return;
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; \
                 charset=utf-8\r\nconnection: close\r\n\r\n{body}"
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    let targets = Target::parse_list(&format!("web={addr}")).unwrap();
    let error = stat::run(&targets, Duration::from_millis(10), Format::Table)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no admin server could be scraped: scraping web ({addr}): {addr} served unreadable \
             metrics: no # EOF after line 1, where an OpenMetrics body ends"
        )
    );
}

#[test]
fn the_dashboard_counts_timeouts_on_the_route_row_they_belong_to() {
    // The dashboard's route rows read a `route_name` written empty as no
    // route, `[DEFAULT]`, as `routes` does; its timeouts were looked up
    // under the empty name, and the row showed none.
    use mesh_metrics::{
        dashboard::Summary,
        query::{Delta, Scrape},
    };
    let after = Scrape::parse(
        "response_total{direction=\"outbound\",dst_service=\"emoji\",\
         classification=\"success\"} 3\n\
         response_total{direction=\"outbound\",dst_service=\"emoji\",route_name=\"\",\
         classification=\"failure\",error=\"timeout\"} 2\n\
         # EOF\n",
    )
    .unwrap();
    let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(1));
    let targets = Target::parse_list("web=127.0.0.1:4191").unwrap();
    let summary = Summary::from_deltas(&targets, &[Some(delta)]);
    let routes: Vec<(&str, Option<f64>, f64)> = summary
        .routes
        .iter()
        .map(|r| (r.row.route.as_str(), r.row.golden.success, r.timeouts))
        .collect();
    assert_eq!(routes, [("[DEFAULT]", Some(0.6), 2.0)]);
}
