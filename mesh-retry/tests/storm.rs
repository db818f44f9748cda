//! Retry storms: how much load retries add to an upstream that fails.
//!
//! Each run sends 1,000 requests at once (so that every request falls in one
//! budget window) to an in-process upstream that fails a given share of
//! attempts, on tokio's paused clock, and counts the attempts the upstream
//! receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::future::join_all;
use http::{Request, Response, StatusCode};
use mesh_core::body::{BoxBody, empty};
use mesh_retry::{
    Budget, BudgetConfig, RetryLayer, RetryPolicy, replay::ReplayBody, retry::MESH_RETRY_ATTEMPT,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const REQUESTS: usize = 1_000;

/// Whether attempt `attempt` of request `id` fails, for a failure rate
/// `rate`: a hash of the pair, so the same attempts fail in every run,
/// whatever order the retries run in.
fn fails(id: u64, attempt: u64, rate: f64) -> bool {
    let mut x =
        id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ attempt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x as f64 / u64::MAX as f64) < rate
}

/// Sends `REQUESTS` requests through a retry layer with `policy` and
/// `budget`; returns the attempts the upstream received.
async fn run(policy: RetryPolicy, budget: Arc<Budget>, failure_rate: f64) -> usize {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let upstream = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        counted.fetch_add(1, Ordering::Relaxed);
        let id: u64 = req.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let attempt: u64 = req
            .headers()
            .get(MESH_RETRY_ATTEMPT)
            .map_or(1, |v| v.to_str().unwrap().parse().unwrap());
        let status = if fails(id, attempt, failure_rate) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let mut res = Response::new(empty());
        *res.status_mut() = status;
        async move { Ok::<_, Infallible>(res) }
    });
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy, budget))
        .service(upstream);
    let requests = (0..REQUESTS).map(|id| {
        let req = Request::get("/")
            .header("x-request-id", id)
            .body(empty())
            .unwrap();
        svc.clone().oneshot(req)
    });
    for res in join_all(requests).await {
        res.unwrap();
    }
    attempts.load(Ordering::Relaxed)
}

/// The fixed policy budgets are meant to replace: three retries, nothing
/// else to stop them.
fn fixed_three_retries() -> (RetryPolicy, Arc<Budget>) {
    let unlimited = BudgetConfig::new(1000.0, 1_000_000, Duration::from_secs(10)).unwrap();
    (
        RetryPolicy::default().with_max_attempts(NonZeroU32::new(4).unwrap()),
        Arc::new(Budget::new(unlimited)),
    )
}

fn defaults() -> (RetryPolicy, Arc<Budget>) {
    (RetryPolicy::default(), Arc::new(Budget::default()))
}

#[tokio::test(start_paused = true)]
async fn a_budget_keeps_a_total_outage_from_becoming_a_retry_storm() {
    let config = BudgetConfig::default();
    let bound = REQUESTS as f64 * (1.0 + config.retry_ratio())
        + config.min_retries_per_second() * config.ttl().as_secs_f64();

    let (policy, budget) = defaults();
    let budgeted = run(policy, budget, 1.0).await;
    let (policy, budget) = fixed_three_retries();
    let fixed = run(policy, budget, 1.0).await;

    println!("upstream failing 100 % of {REQUESTS} requests:");
    println!("  default budget (0.2, 10/s, 10 s): {budgeted} attempts (bound {bound})");
    println!("  fixed 3 retries, no budget:       {fixed} attempts");
    assert!(budgeted as f64 <= bound, "{budgeted} attempts > {bound}");
    assert!(
        budgeted > REQUESTS,
        "the reserve and ratio allow some retries"
    );
    assert_eq!(fixed, 4 * REQUESTS);
}

/// The table in the crate docs (`src/lib.rs`), recomputed. If the numbers
/// change, the test prints the new table to paste in.
#[tokio::test(start_paused = true)]
async fn the_amplification_table_in_the_docs_is_current() {
    let mut table = String::from(
        "| upstream failure rate | fixed 3 retries, no budget | 3 attempts within the default budget |\n\
         |---|---|---|\n",
    );
    for rate in [0.0, 0.1, 0.5, 1.0] {
        let (policy, budget) = fixed_three_retries();
        let fixed = run(policy, budget, rate).await;
        let (policy, budget) = defaults();
        let budgeted = run(policy, budget, rate).await;
        let amplification = |attempts: usize| attempts as f64 / REQUESTS as f64;
        table.push_str(&format!(
            "| {:.0} % | {:.2}× | {:.2}× |\n",
            rate * 100.0,
            amplification(fixed),
            amplification(budgeted),
        ));
    }
    println!("{table}");
    let docs: String = include_str!("../src/lib.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("//! "))
        .filter(|line| line.starts_with('|'))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        docs.contains(&table),
        "the amplification table in src/lib.rs is out of date; it is now:\n{table}"
    );
}
