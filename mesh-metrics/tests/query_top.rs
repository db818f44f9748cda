//! `top` against admin servers on 127.0.0.1: a frame per interval, each
//! from what changed since the one before, and a target that does not
//! answer shown as not meshed rather than ending the view; it, and the
//! views measured over a window, say which target did not answer and why.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{num::NonZeroUsize, time::Duration};

use crate::support::{admin_stub::admin_serving, refused::refused_addr};
use mesh_metrics::query::{Format, Target, edges, routes, stat, top};

/// An admin server whose inbound route `get` has answered 10 more
/// requests, one in ten a failure, at each scrape; returns its address.
async fn admin() -> String {
    admin_serving(|n| {
        format!(
            "response_total{{direction=\"inbound\",srv_name=\"web-http\",route_name=\"get\",\
             classification=\"success\"}} {}\n\
             response_total{{direction=\"inbound\",srv_name=\"web-http\",route_name=\"get\",\
             classification=\"failure\"}} {}\n# EOF\n",
            9 * n,
            n,
        )
    })
    .await
}

#[tokio::test]
async fn each_frame_is_one_json_line_of_what_changed_and_a_silent_target_is_not_meshed() {
    let silent = silent();
    let targets = Target::parse_list(&format!("web={},vote={silent}", admin().await)).unwrap();
    let mut out = Vec::new();
    top::run(
        &mut out,
        &targets,
        Duration::from_millis(20),
        Format::Json,
        NonZeroUsize::new(3),
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    let frames: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(frames.len(), 3, "{out}");
    for frame in &frames {
        assert!(frame["window_seconds"].as_f64().unwrap() > 0.0, "{frame}");
        let workloads = frame["workloads"].as_array().unwrap();
        let names: Vec<&str> = workloads
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web", "vote"], "{frame}");
        // Each frame counts the 10 responses between two scrapes, not
        // every response since the first.
        assert_eq!(workloads[0]["meshed"], 1, "{frame}");
        assert_eq!(workloads[0]["success"], 0.9, "{frame}");
        assert_eq!(
            (
                workloads[1]["meshed"].as_u64(),
                workloads[1]["replicas"].as_u64()
            ),
            (Some(0), Some(1))
        );
        assert!(workloads[1]["success"].is_null(), "{frame}");
        let routes = frame["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 1, "{frame}");
        assert_eq!(
            (routes[0]["route"].as_str(), routes[0]["service"].as_str()),
            (Some("get"), Some("web-http"))
        );
        let rps = routes[0]["rps"].as_f64().unwrap();
        let window = frame["window_seconds"].as_f64().unwrap();
        assert!((rps * window - 10.0).abs() < 1e-6, "{frame}");
    }
}

/// An address nothing listens on, as a query names its target.
fn silent() -> String {
    refused_addr().to_string()
}

#[tokio::test]
async fn a_frame_names_the_target_that_did_not_answer_and_why() {
    // `0/1` alone does not tell a typo in the port from a sidecar that is
    // restarting: the frame says which address failed, and how.
    let silent = silent();
    let targets = Target::parse_list(&format!("web={},vote={silent}", admin().await)).unwrap();
    let mut out = Vec::new();
    let one = NonZeroUsize::new(1);
    let interval = Duration::from_millis(20);
    top::run(&mut out, &targets, interval, Format::Table, one)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    let why = format!("could not scrape vote: cannot connect to {silent}: ");
    assert_eq!(out.matches(&why).count(), 1, "{out}");
    assert!(!out.contains("could not scrape web"), "{out}");

    let mut out = Vec::new();
    top::run(&mut out, &targets, interval, Format::Json, one)
        .await
        .unwrap();
    let frame: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let unreachable = frame["unreachable"].as_array().unwrap();
    assert_eq!(unreachable.len(), 1, "{frame}");
    assert_eq!(unreachable[0]["name"], "vote", "{frame}");
    assert_eq!(unreachable[0]["addr"], silent.as_str(), "{frame}");
    let error = unreachable[0]["error"].as_str().unwrap();
    let cause = format!("cannot connect to {silent}: ");
    assert!(error.starts_with(&cause), "{frame}");
}

#[tokio::test]
async fn stat_routes_and_edges_name_the_target_that_did_not_answer_and_why() {
    let silent = silent();
    let targets = Target::parse_list(&format!("web={},vote={silent}", admin().await)).unwrap();
    let window = Duration::from_millis(20);
    let why = format!("could not scrape vote: cannot connect to {silent}: ");
    let views = [
        stat::run(&targets, window, Format::Table).await.unwrap(),
        routes::run(&targets, None, window, Format::Table)
            .await
            .unwrap(),
        routes::run(&targets, Some("nosuch"), window, Format::Table)
            .await
            .unwrap(),
        edges::run(&targets, window, Format::Table).await.unwrap(),
    ];
    for text in views {
        assert_eq!(text.matches(&why).count(), 1, "{text}");
        assert!(text.ends_with('\n'), "{text}");
    }
    // JSON stays the rows scripts read: `meshed` counts the replicas
    // that answered.
    let json = stat::run(&targets, window, Format::Json).await.unwrap();
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[1]["meshed"], 0, "{json}");
}
