use std::{net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

use tokio::time::advance;

use super::*;
use crate::proxy::{
    accrual::FailureAccrual,
    balance::{DECAY, EndpointGauges, EndpointState},
    endpoints::EndpointSet,
};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 5432))
}

fn balancer(n: u8) -> Arc<Balancer> {
    Arc::new(Balancer::new((1..=n).map(addr), None))
}

/// Opens `n` connections one after another, each connected at once and
/// held, and counts them per endpoint.
fn open(balancer: &Arc<Balancer>, n: usize) -> (Vec<Established>, Vec<usize>) {
    let mut counts = vec![0; balancer.len()];
    let held = (0..n)
        .map(|_| {
            let (picked, pending) = balancer.pick_connection().unwrap();
            let i = (0..balancer.len())
                .find(|&i| balancer.endpoint(i).unwrap().authority == *picked.authority())
                .unwrap();
            counts[i] += 1;
            pending.unwrap().connected()
        })
        .collect();
    (held, counts)
}

#[tokio::test(start_paused = true)]
async fn open_connections_spread_evenly_over_endpoints_that_connect_at_different_speeds() {
    let balancer = balancer(2);
    balancer.seed(addr(1), Duration::from_micros(200));
    balancer.seed(addr(2), Duration::from_millis(20));
    let (held, counts) = open(&balancer, 50);
    assert_eq!(counts, [25, 25]);
    drop(held);
    assert_eq!(balancer.pending_of(addr(1)), Some(0));
    assert_eq!(balancer.pending_of(addr(2)), Some(0));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_connects_slower_than_the_floor_takes_fewer_in_proportion() {
    let balancer = balancer(2);
    balancer.seed(addr(1), CONNECT_RTT_FLOOR);
    balancer.seed(addr(2), CONNECT_RTT_FLOOR * 3);
    let (_held, counts) = open(&balancer, 40);
    assert_eq!(counts, [30, 10]);
}

#[tokio::test(start_paused = true)]
async fn requests_still_weigh_every_difference_in_latency() {
    let balancer = balancer(2);
    balancer.seed(addr(1), Duration::from_micros(200));
    balancer.seed(addr(2), Duration::from_millis(20));
    let held: Vec<_> = (0..50).map(|_| balancer.pick().unwrap().1).collect();
    assert_eq!(
        balancer.pending_of(addr(2)),
        Some(0),
        "20 ms is 100 × 200 µs"
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_just_failed_is_not_drawn_against_one_holding_many_connections() {
    let balancer = balancer(2);
    let (_held, _) = open(&balancer, 1);
    // The first endpoint refuses a connect, while the second comes to hold
    // 100 connections: far more than the penalty is worth as a multiple of
    // a connect.
    let dead = balancer.send_to(addr(1)).unwrap();
    dead.failed();
    let (_more, counts) = open(&balancer, 100);
    assert_eq!(counts[0], 0, "{counts:?}");
    // Once the penalty has decayed to half, the endpoint is weighed again,
    // and with nothing open it is the cheaper.
    let half = DECAY.mul_f64(2f64.ln());
    advance(half - Duration::from_millis(100)).await;
    assert_eq!(open(&balancer, 1).1, [0, 1]);
    advance(Duration::from_millis(200)).await;
    assert_eq!(open(&balancer, 1).1, [1, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_connects_puts_its_endpoint_back_while_its_connection_stays_open() {
    let accrual = FailureAccrual::new(
        NonZeroU32::new(1).unwrap(),
        Duration::from_secs(1),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([addr(1)])
        .unwrap()
        .with_failure_accrual(accrual);
    let gauges = EndpointGauges::new("endpoints", "Endpoints by state");
    #[derive(Clone, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
    struct Target {
        target: String,
    }
    gauges.add(
        Target {
            target: "db".into(),
        },
        set.view(),
    );
    let state = || gauges.counts()[0].1;
    let balancer = set.reader().peek();
    balancer.pick_connection().unwrap().1.unwrap().failed();
    assert_eq!(state().get(EndpointState::Failing), 1);
    advance(Duration::from_secs(1)).await;
    assert_eq!(state().get(EndpointState::Probing), 1);
    let probe = balancer.pick_connection().unwrap().1.unwrap();
    let open = probe.connected();
    assert_eq!(state().get(EndpointState::Ready), 1, "{:?}", state());
    assert_eq!(balancer.pending_of(addr(1)), Some(1));
    // The endpoint takes further connections while the probe's is open.
    let (_more, counts) = self::open(&balancer, 2);
    assert_eq!(counts, [2]);
    drop(open);
    assert_eq!(balancer.pending_of(addr(1)), Some(2));
}

#[tokio::test(start_paused = true)]
async fn connections_count_in_the_balancer_that_keeps_their_endpoint_after_an_update() {
    let set = EndpointSet::new([addr(1), addr(2)]).unwrap();
    let before = set.reader().peek();
    let (held, counts) = open(&before, 4);
    assert_eq!(counts, [2, 2]);
    set.update([addr(1), addr(3)]).unwrap();
    let after = set.reader().peek();
    assert_eq!(after.pending_of(addr(1)), Some(2), "kept with its count");
    assert_eq!(after.pending_of(addr(3)), Some(0));
    // The next connections fill the fresh endpoint first.
    let (more, counts) = open(&after, 2);
    assert_eq!(counts, [0, 2]);
    drop((held, more));
    for addr in [addr(1), addr(3)] {
        assert_eq!(after.pending_of(addr), Some(0));
    }
    assert_eq!(before.pending_of(addr(2)), Some(0), "the one that left");
}
