//! A figure of the demo's summary that comes from a sidecar whose metrics
//! could not be read at the end is unknown, and the summary says so: it
//! printed "web's sidecar retried 0 times" when web's sidecar had gone,
//! beside a breach saying its figures were unknown, and a run stopped by
//! hand, whose line has no breaches, said only the 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::demo::{shut_down, start};

use std::{num::NonZeroU32, time::Duration};

use mesh_examples::demo::{DemoConfig, report::Summary};

/// Runs the demo for 3 seconds and, once its first table is out, shuts
/// down the sidecar of `workload` (`web` or `voting`, whose admin
/// addresses the `sidecar stat` hint names); returns the summary.
async fn run_losing(workload: &str) -> Summary {
    let config = DemoConfig {
        rps: NonZeroU32::new(40).unwrap(),
        duration: Some(Duration::from_secs(3)),
        interval: Duration::from_millis(500),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let (run, mut lines) = start(config);
    let mut admin = None;
    let prefix = format!("{workload}=");
    while let Some(line) = lines.recv().await {
        if let Some(list) = line.trim().strip_prefix("sidecar stat --admin ") {
            admin = list
                .split(',')
                .find_map(|entry| entry.strip_prefix(prefix.as_str()))
                .map(str::to_owned);
        }
        // The first table: the run has figures from every sidecar.
        if line.starts_with("web saw ") {
            break;
        }
    }
    let admin = admin.expect("the demo printed the sidecar stat hint");
    tokio::task::spawn_blocking(move || shut_down(&admin))
        .await
        .unwrap();
    while lines.recv().await.is_some() {}
    run.await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_a_sidecar_that_has_gone_are_unknown_not_zero() {
    let summary = run_losing("web").await;
    assert_eq!(summary.retries, None, "{summary}");
    let judged = summary.to_string();
    assert!(!judged.contains("retried 0 times"), "{judged}");
    assert!(
        judged.contains("web's sidecar's retries unknown"),
        "{judged}"
    );
    // Stopped by hand, the line has no verdict, but still says why the
    // figure is missing.
    let unjudged = summary.unjudged().to_string();
    assert!(unjudged.starts_with("demo stopped: "), "{unjudged}");
    assert!(
        unjudged.contains("web's sidecar's retries unknown"),
        "{unjudged}"
    );
    assert!(
        unjudged.contains("web's sidecar gave no metrics at the end"),
        "{unjudged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_of_a_voting_that_has_gone_are_unknown_not_zero() {
    let summary = run_losing("voting").await;
    assert_eq!(summary.voting_failures, None, "{summary}");
    // web's sidecar is still there: its retries are known.
    assert!(summary.retries.is_some(), "{summary}");
    let judged = summary.to_string();
    assert!(!judged.contains("voting failed 0 votes"), "{judged}");
    assert!(judged.contains("voting's failed votes unknown"), "{judged}");
}
