//! The demo prints the address of `web`'s dashboard, and its summary
//! checks that promise as it checks the others: a dashboard that does not
//! answer at the end is a broken promise, named in the summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::demo::{shut_down, start};

use std::{num::NonZeroU32, time::Duration};

use mesh_examples::demo::{DemoConfig, report::Summary};

/// Runs the demo for `duration`; calls `meanwhile` with `web`'s admin
/// address once the demo has printed it; returns the summary.
async fn run(duration: Duration, meanwhile: impl FnOnce(String) + Send + 'static) -> Summary {
    let config = DemoConfig {
        rps: NonZeroU32::new(20).unwrap(),
        duration: Some(duration),
        interval: Duration::from_millis(500),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let (run, mut lines) = start(config);
    let mut meanwhile = Some(meanwhile);
    while let Some(line) = lines.recv().await {
        if let Some(rest) = line.strip_prefix("dashboard: http://") {
            let admin = rest.strip_suffix("/dashboard").unwrap().to_owned();
            if let Some(meanwhile) = meanwhile.take() {
                tokio::task::spawn_blocking(move || meanwhile(admin))
                    .await
                    .unwrap();
            }
        }
    }
    run.await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_that_does_not_answer_is_a_broken_promise() {
    // web's sidecar, and with it its admin server, goes away at once.
    let (tx, rx) = std::sync::mpsc::channel();
    let summary = run(Duration::from_secs(2), move |admin| {
        shut_down(&admin);
        tx.send(admin).unwrap();
    })
    .await;
    let web_admin = rx.try_recv().expect("the demo printed web's dashboard");
    assert!(!summary.passed(), "{summary}");
    let text = summary.to_string();
    let said =
        format!("web's dashboard at http://{web_admin}/dashboard did not answer with its page");
    assert!(text.contains(&said), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_dashboard_answers_passes() {
    let summary = run(Duration::from_secs(2), |_| {}).await;
    assert!(summary.passed(), "{summary}");
}
