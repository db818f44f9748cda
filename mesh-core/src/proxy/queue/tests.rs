//! Which refusal a request that found no endpoint ready gets, as
//! linkerd2-proxy tells them apart: its balancer queue fails the requests
//! that were waiting when fail-fast came (`FailFastError`, `service in
//! fail-fast`), and shuts its gate, so that its `LoadShed` in front turns
//! every request that comes while the service is in fail-fast away
//! (`LoadShedError`, `service unavailable`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;

use super::*;
use crate::proxy::balance::QueueMetricFamilies;

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Service {
    service: String,
}

fn counted(gate: &Gate) -> QueueMetrics {
    let families = QueueMetricFamilies::default();
    let metrics = families.metrics(&Service {
        service: "emoji".to_owned(),
    });
    assert!(gate.count_in(metrics.clone()));
    metrics
}

#[tokio::test(start_paused = true)]
async fn the_waiting_fail_fast_and_those_that_come_in_fail_fast_are_shed() {
    let gate = Gate::new(Queue::new(10, Duration::from_secs(1)));
    let waiting = gate.admit().unwrap();
    let seen = gate.generation();
    assert_eq!(gate.clone().wait(seen, None).await, Woken::FailFast);
    assert!(gate.in_failfast());
    // The gate is shut: a request that comes now does not wait, and is
    // shed, not failed fast.
    assert_eq!(gate.admit().err(), Some(Refused::Unavailable));
    drop(waiting);
    assert_eq!(gate.admit().err(), Some(Refused::Unavailable));
    // An endpoint ready opens it; the next outage waits again.
    gate.wake(true);
    assert!(!gate.in_failfast());
    assert!(gate.admit().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_fails_the_first_request_fast_and_sheds_the_rest() {
    let gate = Gate::new(Queue::new(10, Duration::ZERO));
    let metrics = counted(&gate);
    // The first request that finds no endpoint has waited the whole
    // timeout: fail-fast comes with it, and it fails fast.
    assert_eq!(gate.admit().err(), Some(Refused::FailFast));
    assert!(gate.in_failfast());
    assert_eq!(metrics.gate_changes(), (1, 1));
    assert_eq!((metrics.length(), metrics.requests()), (0, 1));
    // The gate is shut until an endpoint is ready: the rest are shed.
    assert_eq!(gate.admit().err(), Some(Refused::Unavailable));
    assert_eq!(gate.admit().err(), Some(Refused::Unavailable));
    assert_eq!(metrics.requests(), 1);
    gate.wake(true);
    assert_eq!(metrics.gate_changes(), (2, 1));
    assert!(!gate.in_failfast());
    assert_eq!(gate.admit().err(), Some(Refused::FailFast));
    assert_eq!(gate.admit().err(), Some(Refused::Unavailable));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_or_one_without_places_sheds() {
    let gate = Gate::new(Queue::new(1, Duration::from_secs(1)));
    let _waiting = gate.admit().unwrap();
    assert_eq!(gate.admit().err(), Some(Refused::Unavailable));
    assert!(!gate.in_failfast());
    let none = Gate::new(Queue::new(0, Duration::from_secs(1)));
    assert_eq!(none.admit().err(), Some(Refused::Unavailable));
    assert!(!none.in_failfast());
}
