//! `examples/inprocess_retry.rs`, run as a test: what it prints is what
//! its two services' callers got, so each figure its docs and the README
//! quote is checked here, against a real backend on a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../inprocess_retry.rs"]
#[allow(dead_code)]
mod example;

/// The value of the series `name{labels}` in a text exposition.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn two_services_share_one_budget_through_an_outage_as_the_example_says() {
    let outcome = example::run(|_| {}).await;

    // `catalog` fails every other attempt: while the budget lasts its
    // failures are retried and succeed; `reviews` never succeeds.
    assert_eq!(outcome.succeeded, [25, 0]);
    assert_eq!(outcome.attempts, [50, 56]);
    // Together the two took what the one budget allows, and no more.
    let (reserve, allowed) = outcome.allowance();
    assert_eq!((reserve, allowed), (10.0, 26.0));
    assert_eq!(outcome.retries(), 26);
    assert!(
        outcome.budget.balance() < 1.0,
        "{}",
        outcome.budget.balance()
    );

    let m = &outcome.metrics;
    for (family, service, want) in [
        ("retry_requests_total", "catalog", 10.0),
        ("retry_requests_total", "reviews", 16.0),
        ("retry_successes_total", "catalog", 10.0),
        ("retry_limit_exceeded_total", "reviews", 3.0),
        ("retry_budget_exhausted_total", "catalog", 15.0),
        ("retry_budget_exhausted_total", "reviews", 37.0),
    ] {
        let series = format!(r#"{family}{{service="{service}",route="default"}}"#);
        assert_eq!(value(m, &series), Some(want), "{series} in\n{m}");
    }
}
