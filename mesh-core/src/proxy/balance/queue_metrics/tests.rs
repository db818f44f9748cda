use std::time::Duration;

use prometheus_client::{encoding::EncodeLabelSet, registry::Registry};
use tokio::time::advance;

use super::*;
use crate::proxy::{
    EndpointSet, Queue,
    queue::{Refused, Woken},
};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Service {
    service: String,
}

fn emoji() -> Service {
    Service {
        service: "emoji".to_owned(),
    }
}

fn addr(i: u8) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([10, 0, 0, i], 80))
}

/// A set waiting for its first endpoints, its requests waiting up to 1 s,
/// counted in `metrics`.
fn empty_set(metrics: &QueueMetrics) -> EndpointSet {
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::from_secs(1)));
    assert!(metrics.count(&set.view()));
    set
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_counts_in_the_length_until_it_leaves() {
    let mut registry = Registry::default();
    let families = QueueMetricFamilies::register(&mut registry);
    let metrics = families.metrics(&emoji());
    let set = empty_set(&metrics);
    let gate = set.view().gate().unwrap();
    assert_eq!((metrics.length(), metrics.requests()), (0, 0));

    let place = gate.admit().unwrap();
    assert_eq!((metrics.length(), metrics.requests()), (1, 1));
    advance(Duration::from_millis(200)).await;
    set.update([addr(1)]).unwrap();
    drop(place);
    assert_eq!((metrics.length(), metrics.requests()), (0, 1));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for series in [
        "queue_latency_seconds_sum{service=\"emoji\"} 0.2\n",
        "queue_latency_seconds_count{service=\"emoji\"} 1\n",
        "queue_latency_seconds_bucket{le=\"0.05\",service=\"emoji\"} 0\n",
        "queue_latency_seconds_bucket{le=\"0.5\",service=\"emoji\"} 1\n",
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_gate_shuts_at_the_timeout_and_opens_when_an_endpoint_is_ready() {
    let families = QueueMetricFamilies::default();
    let metrics = families.metrics(&emoji());
    let set = empty_set(&metrics);
    let gate = set.view().gate().unwrap();
    assert_eq!(metrics.gate_changes(), (1, 0), "open from the start");
    let open_time = || metrics.gate.open_time.get();
    let shut_time = || metrics.gate.shut_time.get();
    assert!(open_time() > 0.0);
    assert_eq!(shut_time(), 0.0);
    assert_eq!(metrics.gate.timeout.get(), 1.0);

    let place = gate.admit().unwrap();
    let seen = gate.generation();
    assert_eq!(gate.clone().wait(seen, None).await, Woken::FailFast);
    assert_eq!(metrics.gate_changes(), (1, 1));
    assert!(shut_time() > 0.0);
    assert_eq!(open_time(), 0.0);
    // Every waiter hears the timeout; the gate shuts once.
    assert_eq!(gate.clone().wait(seen, None).await, Woken::FailFast);
    // A new request is shed, the gate shut.
    assert_eq!(gate.admit().err(), Some(Refused::Unavailable));
    assert_eq!(metrics.gate_changes(), (1, 1));
    drop(place);

    set.update([addr(1)]).unwrap();
    assert_eq!(metrics.gate_changes(), (2, 1));
    assert!(open_time() > 0.0);
    assert_eq!(shut_time(), 0.0);
    // An update that keeps it ready opens nothing more.
    set.update([addr(1), addr(2)]).unwrap();
    assert_eq!(metrics.gate_changes(), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_service_with_a_gate_per_runtime_is_shut_while_any_is() {
    let families = QueueMetricFamilies::default();
    let first = empty_set(&families.metrics(&emoji()));
    let second = empty_set(&families.metrics(&emoji()));
    let metrics = families.metrics(&emoji());
    assert_eq!(metrics.gate_changes(), (1, 0), "one opening per service");

    let shut = |set: &EndpointSet| {
        let gate = set.view().gate().unwrap();
        async move {
            let _place = gate.admit().unwrap();
            let seen = gate.generation();
            assert_eq!(gate.clone().wait(seen, None).await, Woken::FailFast);
        }
    };
    shut(&first).await;
    shut(&second).await;
    assert_eq!(metrics.gate_changes(), (1, 1));
    first.update([addr(1)]).unwrap();
    assert_eq!(metrics.gate_changes(), (1, 1), "the second is still shut");
    // A gate that goes away shut refuses nothing more.
    drop(second);
    assert_eq!(metrics.gate_changes(), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_queue_is_counted_once_and_keeps_its_handles_through_with_queue() {
    let families = QueueMetricFamilies::default();
    let metrics = families.metrics(&emoji());
    let set = EndpointSet::empty();
    assert!(metrics.count(&set.view()));
    assert!(
        !QueueMetrics::default().count(&set.view()),
        "counted already"
    );
    let set = set.with_queue(Queue::new(1, Duration::from_secs(2)));
    assert_eq!(metrics.gate.timeout.get(), 2.0);
    let _place = set.view().gate().unwrap().admit().unwrap();
    assert_eq!(metrics.length(), 1);
    let gone = EndpointSet::empty().view();
    assert!(!metrics.count(&gone), "nothing balances over it");
}

#[test]
fn the_families_have_linkerds_names_and_buckets() {
    let mut registry = Registry::default();
    let families =
        QueueMetricFamilies::register(registry.sub_registry_with_prefix("outbound_http_balancer"));
    let _ = families.metrics(&emoji());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for series in [
        "outbound_http_balancer_queue_length{service=\"emoji\"} 0",
        "outbound_http_balancer_queue_requests_total{service=\"emoji\"} 0",
        "outbound_http_balancer_queue_latency_seconds_bucket{le=\"0.0005\",service=\"emoji\"} 0",
        "outbound_http_balancer_queue_latency_seconds_bucket{le=\"3.0\",service=\"emoji\"} 0",
        "outbound_http_balancer_queue_latency_seconds_count{service=\"emoji\"} 0",
        "outbound_http_balancer_queue_gate_open_total{service=\"emoji\"} 1",
        "outbound_http_balancer_queue_gate_shut_total{service=\"emoji\"} 0",
        "outbound_http_balancer_queue_gate_shut_time_seconds{service=\"emoji\"} 0",
        "outbound_http_balancer_queue_gate_timeout_seconds{service=\"emoji\"} 0",
        "# TYPE outbound_http_balancer_queue_latency_seconds histogram",
        "# TYPE outbound_http_balancer_queue_gate_open_time_seconds gauge",
        "# TYPE outbound_http_balancer_queue_length gauge",
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }
}

/// A set of one endpoint that failure accrual takes out for 10 s at its
/// first failure, its requests waiting up to 1 s, counted in `metrics`.
fn accruing_set(metrics: &QueueMetrics) -> EndpointSet {
    let accrual = crate::proxy::FailureAccrual::new(
        std::num::NonZeroU32::MIN,
        Duration::from_secs(10),
        Duration::from_secs(10),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([addr(1)])
        .unwrap()
        .with_failure_accrual(accrual)
        .with_queue(Queue::new(10, Duration::from_secs(1)));
    assert!(metrics.count(&set.view()));
    set
}

/// Fails a request to `set`'s endpoint, which takes it out, and has a
/// request wait until the service goes into fail-fast.
async fn into_failfast(set: &EndpointSet) {
    let balancer = set.reader().peek();
    let (_, _, pending) = balancer.pick_indexed().unwrap();
    pending.unwrap().failed();
    assert!(balancer.pick_indexed().is_none(), "out");
    let gate = balancer.gate().clone();
    let _place = gate.admit().unwrap();
    let seen = gate.generation();
    let woken = gate.clone().wait(seen, balancer.next_change()).await;
    assert_eq!(woken, Woken::FailFast);
}

/// Lets tasks woken by the paused clock run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_gate_opens_when_a_penalty_ends_with_no_request_to_see_it() {
    let families = QueueMetricFamilies::default();
    let metrics = families.metrics(&emoji());
    let set = accruing_set(&metrics);
    into_failfast(&set).await;
    assert_eq!(metrics.gate_changes(), (1, 1));
    let gate = set.view().gate().unwrap();
    assert!(gate.in_failfast());

    // The penalty ends 10 s after the failure: the endpoint may take its
    // probe, and the gate opens then, as Linkerd's does once its pool is
    // ready again, though no request comes to take the probe.
    advance(Duration::from_secs(8)).await;
    settle().await;
    assert_eq!(metrics.gate_changes(), (1, 1), "still out");
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(metrics.gate_changes(), (2, 1));
    assert!(metrics.gate.open_time.get() > 0.0);
    assert_eq!(metrics.gate.shut_time.get(), 0.0);
    assert!(!gate.in_failfast());
    assert_eq!(
        set.view().endpoints().unwrap(),
        [(addr(1), crate::proxy::EndpointState::Probing)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_end_of_a_connect_backoff_alone_does_not_open_the_gate() {
    let families = QueueMetricFamilies::default();
    let metrics = families.metrics(&emoji());
    let backoff = crate::proxy::balance::ConnectBackoff::new(
        Duration::from_secs(10),
        Duration::from_secs(10),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([addr(1)])
        .unwrap()
        .with_connect_backoff(backoff)
        .with_queue(Queue::new(10, Duration::from_secs(1)));
    assert!(metrics.count(&set.view()));
    let balancer = set.reader().peek();
    let (_, picked, _) = balancer.pick_indexed().unwrap();
    picked.back_off(None);
    let gate = balancer.gate().clone();
    let place = gate.admit().unwrap();
    let seen = gate.generation();
    let woken = gate.clone().wait(seen, balancer.next_change()).await;
    assert_eq!(woken, Woken::FailFast);
    drop(place);
    // Past its backoff, the endpoint is ready only once a connect
    // succeeds, and none is made without a request.
    advance(Duration::from_secs(20)).await;
    settle().await;
    assert_eq!(metrics.gate_changes(), (1, 1));
    assert!(gate.in_failfast());
}

#[tokio::test(start_paused = true)]
async fn the_gate_opens_when_a_penalty_that_a_probe_restarted_while_shut_ends() {
    let families = QueueMetricFamilies::default();
    let metrics = families.metrics(&emoji());
    // Out for 2 s doubling to a minute, which is how long a probe holds
    // its endpoint.
    let accrual = crate::proxy::FailureAccrual::new(
        std::num::NonZeroU32::MIN,
        Duration::from_secs(2),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([addr(1)])
        .unwrap()
        .with_failure_accrual(accrual)
        .with_queue(Queue::new(10, Duration::from_secs(1)));
    assert!(metrics.count(&set.view()));
    let balancer = set.reader().peek();
    let (_, _, pending) = balancer.pick_indexed().unwrap();
    pending.unwrap().failed();
    advance(Duration::from_secs(2)).await;

    // The penalty over, a request takes the probe, slow to answer;
    // another waits until the service goes into fail-fast.
    let (_, _, probe) = balancer.pick_indexed().unwrap();
    let probe = probe.unwrap();
    let gate = balancer.gate().clone();
    let place = gate.admit().unwrap();
    let seen = gate.generation();
    let woken = gate.clone().wait(seen, balancer.next_change()).await;
    assert_eq!(woken, Woken::FailFast);
    drop(place);
    settle().await;
    assert_eq!(metrics.gate_changes(), (1, 1));

    // The probe fails: out for 4 s, not for the minute the probe could
    // have held it. The gate opens when those end, with no request.
    probe.failed();
    let end = balancer.next_change().unwrap();
    tokio::time::sleep_until(end - Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(metrics.gate_changes(), (1, 1), "still out");
    tokio::time::sleep_until(end).await;
    settle().await;
    assert_eq!(metrics.gate_changes(), (2, 1));
    assert!(!gate.in_failfast());
}

#[tokio::test(start_paused = true)]
async fn the_task_that_would_open_a_shut_gate_ends_when_the_gate_goes_away() {
    let families = QueueMetricFamilies::default();
    let metrics = families.metrics(&emoji());
    let hour = Duration::from_secs(3600);
    let accrual =
        crate::proxy::FailureAccrual::new(std::num::NonZeroU32::MIN, hour, hour, 0.0).unwrap();
    let set = EndpointSet::new([addr(1)])
        .unwrap()
        .with_failure_accrual(accrual)
        .with_queue(Queue::new(10, Duration::from_secs(1)));
    assert!(metrics.count(&set.view()));
    into_failfast(&set).await;
    settle().await;
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let shut = tasks();
    assert!(shut >= 1, "a task waits for the penalty's end, an hour on");

    // Nothing balances over the set any more: its gate goes away, and the
    // task with it, not an hour later.
    drop(set);
    settle().await;
    assert_eq!(metrics.gate_changes(), (2, 1), "gone shut, counted open");
    assert_eq!(tasks(), shut - 1);
}
