#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{num::NonZeroUsize, time::Duration};

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::query::{Delta, Golden, Scrape, Target};

fn targets() -> Vec<Target> {
    Target::parse_list("web=127.0.0.1:1,emoji=127.0.0.1:2,voting=127.0.0.1:3").unwrap()
}

/// What the three sidecars of an emojivoto-shaped mesh serve after `n`
/// rounds of 10 seconds: web takes 10 rps in and calls emoji (10 rps, all
/// fine) and voting's `vote` route (5 rps, a tenth of attempts failing,
/// retried, one timeout and one 403 per 10 s); emoji and voting take their
/// calls in, and voting's policy denies two requests per 10 s.
fn mesh(n: u32) -> Vec<Scrape> {
    let out = |dst: &str, route: &str, ok: u32, forbidden: u32, fail: u32, timeouts: u32| {
        format!(
            "response_total{{direction=\"outbound\",dst_service=\"{dst}\",route_name=\"{route}\",tls=\"true\",server_id=\"{dst}\",status_code=\"200\",classification=\"success\"}} {ok}\n\
             response_total{{direction=\"outbound\",dst_service=\"{dst}\",route_name=\"{route}\",tls=\"true\",server_id=\"{dst}\",status_code=\"500\",classification=\"failure\"}} {fail}\n\
             response_total{{direction=\"outbound\",dst_service=\"{dst}\",route_name=\"{route}\",tls=\"true\",server_id=\"{dst}\",error=\"timeout\",classification=\"failure\"}} {timeouts}\n\
             response_total{{direction=\"outbound\",dst_service=\"{dst}\",route_name=\"{route}\",tls=\"true\",server_id=\"{dst}\",status_code=\"403\",classification=\"success\"}} {forbidden}\n\
             response_latency_ms_bucket{{le=\"10.0\",direction=\"outbound\",dst_service=\"{dst}\",route_name=\"{route}\"}} {}\n\
             response_latency_ms_bucket{{le=\"+Inf\",direction=\"outbound\",dst_service=\"{dst}\",route_name=\"{route}\"}} {}\n",
            ok + forbidden,
            ok + forbidden + fail + timeouts
        )
    };
    let inbound = |ok: u32, fail: u32| {
        format!(
            "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"c\",classification=\"success\"}} {ok}\n\
             response_total{{direction=\"inbound\",tls=\"no_identity\",classification=\"failure\"}} {fail}\n\
             response_latency_ms_bucket{{le=\"1.0\",direction=\"inbound\"}} {ok}\n\
             response_latency_ms_bucket{{le=\"+Inf\",direction=\"inbound\"}} {}\n",
            ok + fail
        )
    };
    let web = format!(
        "{}{}{}retry_requests_total{{service=\"voting\",route=\"vote\"}} {}\n",
        inbound(100 * n, 0),
        out("emoji", "list", 100 * n, 0, 0, 0),
        out("voting", "vote", 47 * n, n, n, n),
        5 * n
    );
    let voting = format!(
        "{}inbound_http_authz_deny_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"voting\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\",route_name=\"default\",tls=\"true\"}} {}\n",
        inbound(45 * n, 5 * n),
        2 * n
    );
    [web, inbound(100 * n, 0), voting]
        .iter()
        .map(|text| Scrape::parse(text).unwrap())
        .collect()
}

fn ok(scrapes: Vec<Scrape>) -> Vec<Result<Scrape, &'static str>> {
    scrapes.into_iter().map(Ok).collect()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn summary_has_workloads_edges_and_outbound_routes() {
    let window = Duration::from_secs(10);
    let deltas: Vec<Option<Delta>> = mesh(0)
        .iter()
        .zip(&mesh(1))
        .map(|(b, a)| Some(Delta::between(b, a, window)))
        .collect();
    let s = Summary::from_deltas(&targets(), &deltas);

    let names: Vec<&str> = s.workloads.iter().map(|w| w.stat.name.as_str()).collect();
    assert_eq!(names, ["web", "emoji", "voting"]);
    assert_eq!(s.workloads[0].stat.golden.rps, 10.0);
    assert_eq!(s.workloads[0].denied, 0.0);
    assert!(close(s.workloads[2].stat.golden.success, 0.9));
    // voting's failures came in without an identity.
    assert!(close(s.workloads[2].stat.tls, 0.9));
    // Two denied requests in 10 s.
    assert!(close(Some(s.workloads[2].denied), 0.2));

    let edges: Vec<(&str, &str)> = s
        .edges
        .iter()
        .map(|e| (e.src.as_str(), e.dst.as_str()))
        .collect();
    assert_eq!(edges, [("web", "emoji"), ("web", "voting")]);
    let voting = &s.edges[1];
    assert_eq!(voting.golden.rps, 5.0);
    // 48 successes (a 403 among them) of 50 responses, all on mutual TLS.
    assert!(close(voting.golden.success, 0.96));
    assert!(close(Some(voting.forbidden), 0.1));
    assert_eq!(s.edges[0].forbidden, 0.0);
    assert!(close(voting.tls, 1.0));
    // p50: rank 25 of 50 in le=10, which holds 48: 10 × 25/48.
    assert!(close(voting.golden.latency_ms_p50, 10.0 * 25.0 / 48.0));
    // The page reads these names; the golden figures sit between `dst`
    // and `tls`, as plain fields of the edge.
    assert_eq!(
        serde_json::to_string(voting).unwrap(),
        concat!(
            r#"{"src":"web","dst":"voting","success":0.96,"rps":5.0,"#,
            r#""latency_ms_p50":5.208333333333334,"latency_ms_p95":9.895833333333334,"#,
            r#""latency_ms_p99":10.0,"tls":1.0,"forbidden":0.1}"#,
        )
    );

    assert_eq!(s.routes.len(), 2);
    let (list, vote) = (&s.routes[0], &s.routes[1]);
    assert_eq!(
        (list.row.service.as_str(), list.row.route.as_str()),
        ("emoji", "list")
    );
    assert_eq!((list.retries, list.timeouts), (0.0, 0.0));
    assert_eq!(
        (vote.row.workload.as_str(), vote.row.route.as_str()),
        ("web", "vote")
    );
    assert!(close(Some(vote.retries), 0.5));
    assert!(close(Some(vote.timeouts), 0.1));
    assert!(close(vote.row.retry_ratio, 0.1));
    // 48 successful attempts of 50 requests and 5 retries.
    assert!(close(vote.row.actual_success, 48.0 / 55.0));
}

#[test]
fn history_keeps_at_most_its_capacity_and_drops_the_oldest() {
    let mut history = History::new(NonZeroUsize::new(150).unwrap());
    for i in 1..=200u64 {
        let mut summary = Summary::default();
        summary.edges.push(Edge {
            src: "web".into(),
            dst: "emoji".into(),
            golden: Golden {
                success: Some(1.0),
                rps: i as f64,
                ..Golden::default()
            },
            tls: None,
            forbidden: 0.0,
        });
        history.push(Duration::from_secs(2 * i), summary);
        assert_eq!(history.len(), (i as usize).min(150));
    }
    let timeline = history.timeline();
    assert_eq!(timeline.len(), 150);
    assert_eq!((timeline[0], timeline[149]), (102.0, 400.0));
    let series = history.edge("web", "emoji");
    assert_eq!(series.rps.len(), 150);
    assert_eq!((series.rps[0], series.rps[149]), (Some(51.0), Some(200.0)));
    // A workload never seen has a line of gaps as long as the timeline.
    let none = history.workload("voting");
    assert_eq!(none.rps, vec![None; 150]);
}

#[test]
fn board_keeps_sparklines_per_interval_and_figures_over_the_window() {
    let config = DashboardConfig::new(targets())
        .with_interval(Duration::from_secs(10))
        .with_window(Duration::from_secs(20))
        .with_history(NonZeroUsize::new(3).unwrap());
    let mut board = Board::new(&config);
    for n in 0..6 {
        board.observe(Duration::from_secs(10 * u64::from(n)), ok(mesh(n)));
    }
    // Six rounds make five intervals; the history keeps three.
    assert_eq!(board.history().len(), 3);
    let view = board.view();
    assert_eq!(view.rounds, 6);
    assert_eq!(view.timeline, [30.0, 40.0, 50.0]);
    // The window covers the last 20 s: two rounds of 100 responses.
    assert_eq!(view.workloads[0].workload.stat.golden.rps, 10.0);
    assert_eq!(view.workloads[0].history.rps, [Some(10.0); 3]);
    assert_eq!(view.workloads[2].history.denied, [Some(0.2); 3]);
    assert_eq!(view.edges.len(), 2);
    assert_eq!(view.routes[1].history.retries, [Some(0.5); 3]);
    assert!(view.sources.iter().all(|s| s.up));

    // A source that stops answering is marked down and drops out of the
    // figures; the others go on.
    let mut results = ok(mesh(6));
    results[2] = Err("cannot connect to 127.0.0.1:3");
    board.observe(Duration::from_secs(60), results);
    let view = board.view();
    assert!(!view.sources[2].up);
    assert_eq!(
        view.sources[2].error.as_deref(),
        Some("cannot connect to 127.0.0.1:3")
    );
    assert_eq!(view.workloads[2].workload.stat.meshed, 0);
    assert_eq!(view.workloads[0].workload.stat.golden.rps, 10.0);
}

#[test]
fn board_holds_a_bounded_number_of_rounds_even_if_the_clock_stands_still() {
    let config = DashboardConfig::new(targets()).with_history(NonZeroUsize::new(5).unwrap());
    let mut board = Board::new(&config);
    for n in 0..1_000 {
        board.observe(Duration::ZERO, ok(mesh(n)));
    }
    // 10 s of 2 s intervals: five rounds, and two to spare.
    assert!(board.rounds_held() <= 7, "{}", board.rounds_held());
    assert_eq!(board.history().len(), 5);
}

#[test]
fn each_source_keeps_at_most_its_budget_of_scrapes_beside_its_latest() {
    // web serves more than emoji: a budget of three of emoji's scrapes
    // holds fewer of web's, and none of them beside the latest when
    // the budget is zero.
    let sizes: Vec<usize> = mesh(1).iter().map(board::scrape_bytes).collect();
    assert!(sizes[0] > sizes[1], "{sizes:?}");
    for (budget, emoji_held) in [(usize::MAX, 6), (3 * sizes[1], 4), (0, 1)] {
        let config = DashboardConfig::new(targets()).with_source_bytes(budget);
        let mut board = Board::new(&config);
        for n in 0..20 {
            board.observe(Duration::from_secs(2 * u64::from(n)), ok(mesh(n)));
        }
        assert_eq!(board.scrapes_held(1), emoji_held, "budget {budget}");
        let web_held = board.scrapes_held(0);
        assert!(web_held <= emoji_held, "budget {budget}: {web_held}");
        if budget != usize::MAX {
            assert!(
                (web_held - 1) * sizes[0] <= budget,
                "budget {budget}: {web_held}"
            );
        }
        // A shorter window, the same rates.
        let view = board.view();
        assert_eq!(view.workloads[0].workload.stat.golden.rps, 50.0);
        assert_eq!(view.workloads[1].workload.stat.golden.rps, 50.0);
        assert!(close(Some(view.workloads[2].workload.denied), 1.0));
    }
}

#[test]
fn replicas_of_a_workload_are_summed_over_one_window() {
    // Two replicas of web, 10 responses a second each; the second also
    // serves a large family the dashboard does not read, so that its
    // budget keeps only its latest scrape. Summed over the longer of
    // their windows, the shorter one's responses were spread over time
    // it did not cover.
    let replica = |n: u32, large: bool| {
        let mut text = format!(
            "response_total{{direction=\"inbound\",tls=\"true\",classification=\"success\"}} {}\n",
            20 * n
        );
        if large {
            for i in 0..200 {
                text += &format!("tcp_open_total{{client_addr=\"10.0.0.{i}:1\"}} {n}\n");
            }
        }
        Scrape::parse(&text).unwrap()
    };
    let small = board::scrape_bytes(&replica(1, false));
    let sources = Target::parse_list("web=127.0.0.1:1,web=127.0.0.1:2").unwrap();
    let config = DashboardConfig::new(sources).with_source_bytes(3 * small);
    let mut board = Board::new(&config);
    for n in 0..10 {
        let round = vec![replica(n, false), replica(n, true)];
        board.observe(Duration::from_secs(2 * u64::from(n)), ok(round));
    }
    assert_eq!(board.scrapes_held(1), 1);
    let view = board.view();
    let web = &view.workloads[0].workload.stat;
    assert_eq!((web.meshed, web.replicas), (2, 2));
    assert!(close(Some(web.golden.rps), 20.0), "{}", web.golden.rps);
}

#[test]
fn a_long_history_is_not_allocated_before_it_is_filled() {
    // A history of `usize::MAX` points is a configuration, not a request
    // for that memory at once: it fills as rounds come.
    let config = DashboardConfig::new(targets()).with_history(NonZeroUsize::MAX);
    let mut board = Board::new(&config);
    board.observe(Duration::ZERO, ok(mesh(0)));
    board.observe(Duration::from_secs(2), ok(mesh(1)));
    assert_eq!(board.history().len(), 1);
    assert_eq!(board.history().capacity(), NonZeroUsize::MAX);
}

#[test]
fn view_json_has_the_shape_the_page_reads() {
    let mut board = Board::new(&DashboardConfig::new(targets()));
    board.observe(Duration::ZERO, ok(mesh(0)));
    board.observe(Duration::from_secs(2), ok(mesh(1)));
    let json: serde_json::Value = serde_json::to_value(board.view()).unwrap();
    assert_eq!(json["interval_seconds"], 2.0);
    assert_eq!(json["window_seconds"], 2.0);
    assert_eq!(json["configured_window_seconds"], 10.0);
    assert_eq!(json["sources"][0]["name"], "web");
    assert_eq!(json["sources"][0]["up"], true);
    let web = &json["workloads"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["rps"], 50.0);
    assert!(web["history"]["success"].is_array());
    assert_eq!(json["workloads"][2]["denied"], 1.0);
    // Nothing denied is 0, not the -0 an empty float sum gives.
    assert_eq!(json["workloads"][0]["denied"].to_string(), "0.0");
    assert_eq!(json["edges"][1]["src"], "web");
    assert_eq!(json["edges"][1]["dst"], "voting");
    let vote = &json["routes"][1];
    assert_eq!(vote["route"], "vote");
    assert_eq!(vote["service"], "voting");
    assert_eq!(vote["retries"], 2.5);
    assert_eq!(vote["timeouts"], 0.5);
    assert_eq!(vote["history"]["timeouts"][0], 0.5);
}

async fn get(
    dashboard: &Dashboard,
    method: Method,
    path: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap();
    let res = dashboard.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn service_serves_a_self_contained_page_and_its_json() {
    let (dashboard, _poller) = Dashboard::new(DashboardConfig::new(targets())).unwrap();
    let (status, headers, page) = get(&dashboard, Method::GET, PAGE_PATH).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("fetch(API"));
    // Nothing is loaded from elsewhere.
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(external), "{external}");
    }

    let (status, headers, json) = get(&dashboard, Method::GET, API_PATH).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let view: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(view["rounds"], 0);
    assert_eq!(view["sources"].as_array().unwrap().len(), 3);

    assert_eq!(
        get(&dashboard, Method::POST, API_PATH).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        get(&dashboard, Method::GET, "/dashboard/nope").await.0,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn configurations_that_cannot_work_are_refused() {
    assert_eq!(
        Dashboard::new(DashboardConfig::new(Vec::new())).unwrap_err(),
        InvalidDashboard::NoSources
    );
    let zero = DashboardConfig::new(targets()).with_interval(Duration::ZERO);
    assert_eq!(
        Dashboard::new(zero).unwrap_err(),
        InvalidDashboard::ZeroInterval
    );
}

#[tokio::test(start_paused = true)]
async fn poller_stops_once_the_dashboard_is_dropped() {
    let (dashboard, poller) = Dashboard::new(DashboardConfig::new(targets())).unwrap();
    let task = tokio::spawn(poller.run());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!task.is_finished());
    drop(dashboard);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the poller outlived its dashboard")
        .unwrap();
}

#[test]
fn a_source_with_thousands_of_services_and_routes_is_summed_in_one_pass() {
    // A source serves whatever labels it likes: 5,000 services with a
    // route each, and as many `le` bounds. Summed service by service, and
    // each route's sparklines found by a scan of the others, a round took
    // some 10^8 label lookups; it must stay linear. Service `s{i}` takes
    // `i + 1` requests a second.
    const N: usize = 5_000;
    let scrape = |n: usize| {
        let mut text = String::new();
        for i in 0..N {
            let v = n * (i + 1);
            text += &format!(
                "response_total{{direction=\"outbound\",dst_service=\"s{i}\",route_name=\"r{i}\",classification=\"success\"}} {v}\n\
                 response_total{{direction=\"outbound\",dst_service=\"s{i}\",route_name=\"r{i}\",error=\"timeout\",classification=\"failure\"}} {n}\n\
                 response_latency_ms_bucket{{le=\"{i}.5\",direction=\"outbound\",dst_service=\"s0\",route_name=\"r0\"}} {n}\n"
            );
        }
        Scrape::parse(&text).unwrap()
    };
    let config = DashboardConfig::new(Target::parse_list("web=127.0.0.1:1").unwrap());
    let mut board = Board::new(&config);
    board.observe(Duration::ZERO, ok(vec![scrape(0)]));
    board.observe(Duration::from_secs(2), ok(vec![scrape(2)]));
    // The page cannot draw 5,000 edges, and each row it shows costs
    // nine sparklines in every view and in every point of the history:
    // the busiest are kept, in the order of their keys.
    let current = board.current();
    assert_eq!(current.routes.len(), MAX_ROUTES);
    assert_eq!(current.edges.len(), MAX_EDGES);
    let busiest = |k: usize| format!("s{}", N - k);
    assert!(
        current
            .edges
            .iter()
            .all(|e| e.dst.trim_start_matches('s').parse::<usize>().unwrap() >= N - MAX_EDGES),
        "the busiest edges are kept"
    );
    assert!(
        current
            .edges
            .windows(2)
            .all(|w| (&w[0].src, &w[0].dst) < (&w[1].src, &w[1].dst))
    );
    let last = current
        .routes
        .iter()
        .find(|r| r.row.service == busiest(1))
        .unwrap();
    assert_eq!(last.row.route, format!("r{}", N - 1));
    assert!(close(Some(last.timeouts), 1.0), "{}", last.timeouts);
    // 5,000 requests and a timeout a second.
    assert!(
        close(Some(last.row.golden.rps), (N + 1) as f64),
        "{}",
        last.row.golden.rps
    );
    let view = board.view();
    assert_eq!(view.routes.len(), MAX_ROUTES);
    assert_eq!(view.edges.len(), MAX_EDGES);
    assert_eq!(board.history().edge("web", &busiest(1)).rps.len(), 1);
    assert_eq!(board.history().edge("web", "s0").rps, [None]);
}

/// An admin server that answers one scrape with `body`.
async fn serving(body: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            if conn.read(&mut byte).await.unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let res = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(res.as_bytes()).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn a_source_that_fails_says_why_on_the_page() {
    // Where, and what: the line of the metrics that does not read, and
    // what the system said of the connection.
    let bad = serving("response_total{direction=\"inbound\"} 1\nresponse_total{tls=} 2\n").await;
    // Drawn below Linux's ephemeral range, where no test binds: a port
    // bound to port 0 and closed could be picked again for another test's
    // listener before the scrape, which would then not be refused.
    let closed = {
        use std::hash::{BuildHasher, RandomState};
        let random = RandomState::new();
        let port = (0_u64..)
            .map(|attempt| 10_000 + (random.hash_one(attempt) % 5_000) as u16)
            .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
            .unwrap();
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    };
    let sources = Target::parse_list(&format!("web={bad},emoji={closed}")).unwrap();
    let mut board = Board::new(&DashboardConfig::new(sources.clone()));
    let results = futures_util::future::join_all(sources.iter().map(scrape_explained)).await;
    board.observe(Duration::ZERO, results);
    let view = board.view();
    let bad_error = view.sources[0].error.as_deref().unwrap();
    assert!(bad_error.contains(&bad.to_string()), "{bad_error}");
    assert!(bad_error.contains("on line 2"), "{bad_error}");
    let closed_error = view.sources[1].error.as_deref().unwrap();
    assert!(closed_error.contains(&closed.to_string()), "{closed_error}");
    assert!(
        closed_error.to_lowercase().contains("refused"),
        "{closed_error}"
    );
}

#[tokio::test]
async fn a_page_that_reaches_the_dashboard_through_dns_rebinding_is_refused() {
    // A web page on `evil.example` whose name comes to resolve to the
    // admin's address reads the dashboard as its own origin, and with it
    // the mesh's services, routes and traffic. The host it names gives it
    // away; Linkerd's viz dashboard, too, serves only the hosts it expects.
    let (dashboard, _poller) = Dashboard::new(DashboardConfig::new(targets())).unwrap();
    let host = |host: &str, path: &str| {
        let req = Request::get(path).header("host", host).body(()).unwrap();
        let dashboard = dashboard.clone();
        async move { dashboard.oneshot(req).await.unwrap() }
    };
    for path in [PAGE_PATH, API_PATH] {
        let res = host("evil.example:4191", path).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("localhost"),
            "the refusal says what to use instead"
        );
    }
    // An address, `localhost` (kubectl port-forward) and no host at all are
    // served.
    for name in ["127.0.0.1:4191", "[::1]:4191", "localhost:4191", "10.0.0.7"] {
        assert_eq!(
            host(name, API_PATH).await.status(),
            StatusCode::OK,
            "{name}"
        );
    }
    assert_eq!(
        get(&dashboard, Method::GET, API_PATH).await.0,
        StatusCode::OK
    );
}

#[test]
fn the_window_shown_is_the_one_the_figures_cover() {
    // web serves more than emoji: a budget of three of emoji's scrapes
    // holds three of emoji's older scrapes (8 s) and none of web's, whose
    // figures cover one interval, not the 10 s configured; a budget of
    // zero holds only the latest scrape, so every figure covers one
    // interval.
    let sizes: Vec<usize> = mesh(1).iter().map(board::scrape_bytes).collect();
    for (budget, web, emoji) in [
        (usize::MAX, 10.0, 10.0),
        (3 * sizes[1], 2.0, 8.0),
        (0, 2.0, 2.0),
    ] {
        let config = DashboardConfig::new(targets()).with_source_bytes(budget);
        let mut board = Board::new(&config);
        for n in 0..20 {
            board.observe(Duration::from_secs(2 * u64::from(n)), ok(mesh(n)));
        }
        let json: serde_json::Value = serde_json::to_value(board.view()).unwrap();
        assert_eq!(json["configured_window_seconds"], 10.0, "budget {budget}");
        // The label is the longest window a figure covers, and each
        // workload says its own.
        assert_eq!(json["window_seconds"], emoji, "budget {budget}");
        assert_eq!(
            json["workloads"][0]["window_seconds"], web,
            "budget {budget}"
        );
        assert_eq!(
            json["workloads"][1]["window_seconds"], emoji,
            "budget {budget}"
        );
    }
    // Before a second round, no figure covers any time.
    let mut board = Board::new(&DashboardConfig::new(targets()));
    board.observe(Duration::ZERO, ok(mesh(0)));
    let json: serde_json::Value = serde_json::to_value(board.view()).unwrap();
    assert_eq!(json["window_seconds"], 0.0);
    // The second round's figures cover the one interval there is.
    board.observe(Duration::from_secs(2), ok(mesh(1)));
    let json: serde_json::Value = serde_json::to_value(board.view()).unwrap();
    assert_eq!(json["window_seconds"], 2.0);
    assert_eq!(json["workloads"][0]["window_seconds"], 2.0);
}

#[test]
fn a_source_that_restarted_is_rated_over_the_time_since_it_restarted() {
    // web answers 10 requests a second; its process restarts between the
    // rounds at 10 s and 12 s, and its counters begin again. Its figures
    // must not spread what the new process counted over the time the old
    // one ran: once the new process has been scraped twice, they cover
    // only its scrapes, as a rate over the whole window would be a
    // fraction of the real one.
    let scrape = |started: u32, count: u32| {
        Scrape::parse(&format!(
            "process_start_time_seconds {started}\n\
             response_total{{direction=\"inbound\",tls=\"true\",classification=\"success\"}} {count}\n"
        ))
        .unwrap()
    };
    let sources = Target::parse_list("web=127.0.0.1:1").unwrap();
    let mut board = Board::new(&DashboardConfig::new(sources));
    for n in 0..=5 {
        board.observe(
            Duration::from_secs(2 * n),
            ok(vec![scrape(1000, 20 * n as u32)]),
        );
    }
    // Restarted at 11 s: at 12 s it has counted one second of traffic.
    board.observe(Duration::from_secs(12), ok(vec![scrape(1011, 10)]));
    let web = &board.view().workloads[0];
    assert!(
        web.workload.stat.golden.rps >= 5.0,
        "{}",
        web.workload.stat.golden.rps
    );
    for (at, count, window) in [(14, 30, 2.0), (16, 50, 4.0)] {
        board.observe(Duration::from_secs(at), ok(vec![scrape(1011, count)]));
        let view = board.view();
        let web = &view.workloads[0].workload;
        assert!(
            close(Some(web.stat.golden.rps), 10.0),
            "at {at}s: {}",
            web.stat.golden.rps
        );
        assert_eq!(web.window_seconds, window, "at {at}s");
        assert_eq!(view.window_seconds, window, "at {at}s");
    }
}

#[tokio::test(start_paused = true)]
async fn a_source_that_stops_answering_does_not_slow_the_others() {
    // An admin server that takes connections and never answers: each of
    // its scrapes waited out the scrape timeout (5 s), and every round
    // with it, so the figures of every source were 5 s apart while the
    // page said 2 s. A scrape may take at most the interval, as
    // Prometheus' `scrape_timeout` may not exceed its `scrape_interval`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let sources = Target::parse_list(&format!("web={silent}")).unwrap();
    let (dashboard, poller) = Dashboard::new(DashboardConfig::new(sources)).unwrap();
    tokio::spawn(poller.run());
    tokio::time::sleep(Duration::from_secs(21)).await;
    let view: serde_json::Value = serde_json::from_slice(&dashboard.api_json()).unwrap();
    let rounds = view["rounds"].as_u64().unwrap();
    assert!(rounds >= 10, "{rounds} rounds in 21 s at a 2 s interval");
    let error = view["sources"][0]["error"].as_str().unwrap();
    assert!(error.contains(&silent.to_string()), "{error}");
    assert!(error.contains("2s"), "{error}");
}

#[test]
fn a_window_or_interval_as_long_as_a_duration_goes_is_polled_without_panicking() {
    // `Duration::MAX` is a window that reaches back to the first round:
    // the figures cover all the rounds held. An interval that long is a
    // window of one interval, as any window shorter than the interval;
    // a test feeds its rounds faster than that.
    for (config, window) in [
        (
            DashboardConfig::new(targets()).with_window(Duration::MAX),
            6.0,
        ),
        (
            DashboardConfig::new(targets()).with_interval(Duration::MAX),
            4.0,
        ),
    ] {
        let mut board = Board::new(&config);
        for n in 0..4 {
            board.observe(Duration::from_secs(2 * u64::from(n)), ok(mesh(n)));
        }
        let view = board.view();
        assert_eq!(view.window_seconds, window, "{config:?}");
        assert_eq!(view.workloads[0].workload.stat.golden.rps, 50.0);
    }
}

#[test]
fn rounds_whose_every_scrape_was_let_go_are_not_kept() {
    // A window that reaches back for ever, and a budget that keeps no
    // scrape but the latest: the rounds before it hold nothing the
    // window could start at, however long the dashboard runs.
    let config = DashboardConfig::new(targets())
        .with_window(Duration::MAX)
        .with_source_bytes(0);
    let mut board = Board::new(&config);
    for n in 0..1_000 {
        board.observe(Duration::from_secs(2 * u64::from(n)), ok(mesh(n)));
    }
    assert!(board.rounds_held() <= 2, "{}", board.rounds_held());
    assert_eq!(board.scrapes_held(0), 1);
    let view = board.view();
    assert_eq!(view.workloads[0].workload.stat.golden.rps, 50.0);
    assert_eq!(view.window_seconds, 2.0);
    assert_eq!(board.history().len(), 150);
}

/// An admin server whose `response_total` grows by 10 a second of tokio's
/// clock, and which holds the scrapes numbered in `held` (counting from 0)
/// for `hold` before answering.
async fn counting(held: &'static [usize], hold: Duration) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let start = tokio::time::Instant::now();
    tokio::spawn(async move {
        let mut scrapes = 0;
        while let Ok((mut conn, _)) = listener.accept().await {
            let n = scrapes;
            scrapes += 1;
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0];
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                // Read as the request arrives, as a sidecar's counters are.
                let count = start.elapsed().as_secs() * 10;
                if held.contains(&n) {
                    tokio::time::sleep(hold).await;
                }
                let body = format!(
                    "response_total{{direction=\"inbound\",classification=\"success\"}} {count}\n"
                );
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(res.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(start_paused = true)]
async fn a_round_held_up_by_one_source_does_not_skew_the_others_rates() {
    // `web` serves 10 requests a second throughout. `slow` holds its second
    // scrape past the interval (the round waits the interval for it). The
    // counters are read as a round begins, so the window of each figure
    // runs from the start of one round to the start of the next: measured
    // from the ends of the rounds, the round after the held one read 20 rps
    // over a window a held round had shortened.
    let web = counting(&[], Duration::ZERO).await;
    let slow = counting(&[1], Duration::from_secs(3)).await;
    let sources = Target::parse_list(&format!("web={web},slow={slow}")).unwrap();
    let (dashboard, poller) = Dashboard::new(DashboardConfig::new(sources)).unwrap();
    tokio::spawn(poller.run());
    tokio::time::sleep(Duration::from_secs(13)).await;
    let view: serde_json::Value = serde_json::from_slice(&dashboard.api_json()).unwrap();
    let timeline = view["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 3, "{view}");
    let web = view["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "web")
        .unwrap();
    let rps = web["history"]["rps"].as_array().unwrap();
    assert!(!rps.is_empty(), "{view}");
    for (at, rps) in timeline.iter().zip(rps) {
        assert_eq!(rps.as_f64(), Some(10.0), "web's rps at {at}s: {view}");
    }
}
