use std::{num::NonZeroU32, time::Duration};

use prometheus_client::{encoding::EncodeLabelSet, registry::Registry};
use tokio::time::advance;

use super::*;
use crate::proxy::{
    EndpointSet, Forward,
    accrual::FailureAccrual,
    balance::{Balancer, EndpointState::*},
};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Service {
    service: String,
}

fn service(name: &str) -> Service {
    Service {
        service: name.to_owned(),
    }
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 80))
}

/// Out after `max_failures` in a row, for 10 s then 20 s; no jitter.
fn accrual(max_failures: u32) -> FailureAccrual {
    FailureAccrual::new(
        NonZeroU32::new(max_failures).unwrap(),
        Duration::from_secs(10),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap()
}

fn balancer(n: u8, max_failures: u32) -> Arc<Balancer> {
    Arc::new(Balancer::new(
        (1..=n).map(addr),
        Some(accrual(max_failures)),
    ))
}

fn gauges() -> EndpointGauges<Service> {
    EndpointGauges::new("balancer_endpoints", "Endpoints by state")
}

/// The counts of the one label set reported, as (ready, probing, failing).
fn counts(gauges: &EndpointGauges<Service>) -> (usize, usize, usize) {
    let counts = gauges.counts();
    assert_eq!(counts.len(), 1, "{counts:?}");
    let (_, c) = counts[0];
    (c.get(Ready), c.get(Probing), c.get(Failing))
}

/// Sends requests until one reaches the endpoint at `to`, and answers it
/// with a success. The others are dropped unanswered, so that no other
/// endpoint's state changes.
fn probe(balancer: &Arc<Balancer>, to: SocketAddr) {
    for _ in 0..1000 {
        let (authority, pending) = balancer.pick().unwrap();
        if authority.as_str() == to.to_string() {
            pending.unwrap().answered(true);
            return;
        }
    }
    panic!("no request reached {to}");
}

#[tokio::test(start_paused = true)]
async fn counts_follow_an_endpoint_out_for_failing_through_probation_and_back() {
    let balancer = balancer(2, 2);
    let gauges = gauges();
    gauges.add(service("emoji"), BalancerView::fixed(&balancer));
    assert_eq!(counts(&gauges), (2, 0, 0));

    // One failure is not enough; the second in a row takes it out.
    balancer.send_to(addr(1)).unwrap().answered(false);
    assert_eq!(counts(&gauges), (2, 0, 0));
    balancer.send_to(addr(1)).unwrap().failed();
    assert_eq!(counts(&gauges), (1, 0, 1));

    // Out until its penalty ends; then on probation, before any request
    // has claimed the probe and while it is in flight.
    advance(Duration::from_secs(10) - Duration::from_millis(1)).await;
    assert_eq!(counts(&gauges), (1, 0, 1));
    advance(Duration::from_millis(1)).await;
    assert_eq!(counts(&gauges), (1, 1, 0));

    // Its probe fails: out again, for twice as long.
    let mut probed = None;
    while probed.is_none() {
        let (authority, pending) = balancer.pick().unwrap();
        if authority.as_str() == addr(1).to_string() {
            probed = pending;
        } else {
            pending.unwrap().answered(true);
        }
    }
    assert_eq!(counts(&gauges), (1, 1, 0), "the probe is in flight");
    probed.unwrap().answered(false);
    assert_eq!(counts(&gauges), (1, 0, 1));
    advance(Duration::from_secs(19)).await;
    assert_eq!(counts(&gauges), (1, 0, 1));
    advance(Duration::from_secs(1)).await;
    assert_eq!(counts(&gauges), (1, 1, 0));

    // Its next probe succeeds: it is back.
    probe(&balancer, addr(1));
    assert_eq!(counts(&gauges), (2, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn balancers_under_the_same_labels_count_each_endpoint_once_in_its_worst_state() {
    // One balancer per runtime for the same service, and another service.
    let runtimes = [balancer(3, 1), balancer(3, 1)];
    let other = balancer(2, 1);
    let gauges = gauges();
    for balancer in &runtimes {
        gauges.add(service("emoji"), BalancerView::fixed(balancer));
    }
    gauges.add(service("web"), BalancerView::fixed(&other));
    let all = |gauges: &EndpointGauges<Service>| {
        gauges
            .counts()
            .into_iter()
            .map(|(labels, c)| (labels.service, c.get(Ready), c.get(Probing), c.get(Failing)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        all(&gauges),
        [("emoji".into(), 3, 0, 0), ("web".into(), 2, 0, 0)]
    );

    // The first runtime takes endpoint 1 out: failing, though the second
    // still draws it.
    runtimes[0].send_to(addr(1)).unwrap().failed();
    assert_eq!(all(&gauges)[0], ("emoji".into(), 2, 0, 1));
    // The second takes it out later, and endpoint 2 too. When the first's
    // penalty ends, endpoint 1 is still failing on the second.
    advance(Duration::from_secs(5)).await;
    runtimes[1].send_to(addr(1)).unwrap().failed();
    runtimes[1].send_to(addr(2)).unwrap().failed();
    assert_eq!(all(&gauges)[0], ("emoji".into(), 1, 0, 2));
    advance(Duration::from_secs(5)).await;
    assert_eq!(all(&gauges)[0], ("emoji".into(), 1, 0, 2));
    // Then both are on probation on the second; the first probes
    // endpoint 1 back.
    advance(Duration::from_secs(5)).await;
    assert_eq!(all(&gauges)[0], ("emoji".into(), 1, 2, 0));
    probe(&runtimes[0], addr(1));
    assert_eq!(all(&gauges)[0], ("emoji".into(), 1, 2, 0));
    probe(&runtimes[1], addr(1));
    assert_eq!(all(&gauges)[0], ("emoji".into(), 2, 1, 0));
    assert_eq!(all(&gauges)[1], ("web".into(), 2, 0, 0));
}

#[test]
fn a_set_is_counted_as_its_updates_leave_it_and_forgotten_once_dropped() {
    let set = EndpointSet::new([addr(1), addr(2)]).unwrap();
    let gauges = gauges();
    gauges.add(service("emoji"), set.view());
    assert_eq!(counts(&gauges), (2, 0, 0));
    set.update([addr(1), addr(2), addr(3)]).unwrap();
    assert_eq!(counts(&gauges), (3, 0, 0));
    set.update([addr(3)]).unwrap();
    assert_eq!(counts(&gauges), (1, 0, 0));
    // A forwarder over the set keeps it alive.
    let forward = Forward::with_endpoints((), &set);
    assert!(
        forward.balancer_view().is_none(),
        "a set is viewed as a set"
    );
    drop(set);
    assert_eq!(counts(&gauges), (1, 0, 0));
    drop(forward);
    assert!(gauges.counts().is_empty());
}

#[test]
fn a_fixed_forward_is_viewed_after_its_accrual_is_set() {
    let forward = Forward::new((), [addr(1), addr(2)])
        .unwrap()
        .with_failure_accrual(accrual(1));
    let gauges = gauges();
    gauges.add(service("emoji"), forward.balancer_view().unwrap());
    assert_eq!(counts(&gauges), (2, 0, 0));
    let view = forward.balancer_view().unwrap();
    assert!(view.is_live());
    drop(forward);
    assert!(!view.is_live());
    assert_eq!(view.endpoints(), None);
    assert!(gauges.counts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_family_is_encoded_with_every_state_per_label_set() {
    let balancer = balancer(2, 1);
    let mut registry = Registry::default();
    let gauges = EndpointGauges::new(
        "outbound_http_balancer_endpoints",
        "The endpoints of a service's balancers, by state",
    );
    registry.register_collector(Box::new(gauges.clone()));
    gauges.add(service("emoji"), BalancerView::fixed(&balancer));
    balancer.send_to(addr(2)).unwrap().failed();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert_eq!(
        text,
        "# HELP outbound_http_balancer_endpoints The endpoints of a service's balancers, by state\n\
         # TYPE outbound_http_balancer_endpoints gauge\n\
         outbound_http_balancer_endpoints{service=\"emoji\",endpoint_state=\"ready\"} 1\n\
         outbound_http_balancer_endpoints{service=\"emoji\",endpoint_state=\"probing\"} 0\n\
         outbound_http_balancer_endpoints{service=\"emoji\",endpoint_state=\"pending\"} 0\n\
         outbound_http_balancer_endpoints{service=\"emoji\",endpoint_state=\"failing\"} 1\n\
         # EOF\n"
    );
}
