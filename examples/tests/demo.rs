//! The demo mesh, run for a few seconds under the real clock: it holds its
//! promises with retries, breaks the success promise without them, and
//! removes its files either way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{num::NonZeroU32, path::PathBuf, time::Duration};

use mesh_examples::demo::{
    self, DemoConfig,
    report::{Breach, Summary},
};

/// Runs the demo for 3 seconds at 40 requests a second: its summary and
/// what it printed.
async fn run(retries: bool) -> (Summary, String) {
    let config = DemoConfig {
        rps: NonZeroU32::new(40).unwrap(),
        duration: Some(Duration::from_secs(3)),
        interval: Duration::from_secs(1),
        denied_every: Duration::from_millis(250),
        retries,
        admin_port: 0,
    };
    let mut out = Vec::new();
    let summary = demo::run(&config, &mut out, std::future::pending())
        .await
        .unwrap();
    (summary, String::from_utf8(out).unwrap())
}

fn files_dir(out: &str) -> PathBuf {
    let line = out.lines().find_map(|l| l.strip_prefix("files: ")).unwrap();
    PathBuf::from(line.split(' ').next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_holds_its_promises_and_breaks_one_without_retries() {
    let (summary, out) = run(true).await;
    assert!(summary.passed(), "{summary}\n{out}");
    // voting failed votes, web's sidecar retried them (only them), and
    // web saw almost none.
    assert!(summary.voting_failures > 0, "{summary}");
    assert!(summary.retries > 0, "{summary}");
    assert!(summary.retries <= summary.voting_failures, "{summary}");
    assert!(summary.effective_success.unwrap() >= 0.99, "{summary}");
    assert!(summary.requests >= 80, "{summary}");
    assert!(summary.denied_forbidden >= 8, "{summary}");
    assert_eq!(summary.tls.len(), 4);
    assert!(
        summary.tls.iter().all(|(_, rate)| *rate == Some(1.0)),
        "{summary}"
    );

    // The dashboard line CI greps for, and the stat tables.
    let dashboard = out
        .lines()
        .find_map(|l| l.strip_prefix("dashboard: http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no dashboard line:\n{out}"));
    assert!(dashboard.ends_with("/dashboard"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("NAME ")), "{out}");
    for workload in ["web ", "emoji ", "voting "] {
        assert!(out.lines().any(|l| l.starts_with(workload)), "{out}");
    }
    assert!(!files_dir(&out).exists(), "the files were left behind");

    let (summary, out) = run(false).await;
    assert!(!summary.passed(), "{summary}\n{out}");
    assert!(
        matches!(summary.breaches.as_slice(), [Breach::Success(rate)] if *rate < 0.99),
        "{summary}"
    );
    assert_eq!(summary.retries, 0, "{summary}");
    assert!(summary.to_string().starts_with("demo FAILED (web saw "));
    assert!(!files_dir(&out).exists(), "the files were left behind");
}
