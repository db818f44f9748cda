use super::*;

fn addrs(n: u16) -> impl Iterator<Item = SocketAddr> {
    (1..=n).map(|i| SocketAddr::from(([10, 0, 0, i as u8], 80)))
}

fn balancer(n: u16) -> Arc<Balancer> {
    Arc::new(Balancer::new(addrs(n), None))
}

fn index(balancer: &Balancer, authority: &Authority) -> usize {
    (0..balancer.len())
        .find(|&i| balancer.endpoint(i).unwrap().authority == *authority)
        .unwrap()
}

/// Sends `n` requests one after another, each answered after the
/// latency of the endpoint it went to, and counts them per endpoint.
async fn send(balancer: &Arc<Balancer>, latencies: &[Duration], n: usize) -> Vec<usize> {
    let mut counts = vec![0; balancer.len()];
    for _ in 0..n {
        let (authority, pending) = balancer.pick().unwrap();
        let i = index(balancer, authority);
        counts[i] += 1;
        tokio::time::advance(latencies[i]).await;
        pending.unwrap().answered(true);
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_loses_nearly_all_its_traffic() {
    let balancer = balancer(3);
    let ms = Duration::from_millis;
    let counts = send(&balancer, &[ms(2), ms(100), ms(2)], 300).await;
    // Each endpoint is tried while its estimate is the default; after
    // that the slow one waits until its 100 ms decays below 2 ms,
    // which takes longer than these requests do.
    assert!(counts[1] <= 3, "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 300);
    // The two fast ones share the rest.
    assert!(counts[0] > 100 && counts[2] > 100, "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_make_an_endpoint_look_dearer() {
    let balancer = balancer(2);
    // Equal estimates; the first endpoint holds three requests.
    let held: Vec<_> = (0..3)
        .map(|_| {
            let (_, pending) = balancer.pick().unwrap();
            pending.unwrap()
        })
        .collect();
    let busy = held.iter().map(|p| p.index).collect::<Vec<_>>();
    // With two endpoints both are always drawn, so the second request
    // already went to the idle one: the three alternate.
    assert!(busy.contains(&0) && busy.contains(&1), "{busy:?}");
    let (a, b) = (balancer.endpoint(0).unwrap(), balancer.endpoint(1).unwrap());
    let (on_a, on_b) = (
        a.pending.load(Ordering::Relaxed),
        b.pending.load(Ordering::Relaxed),
    );
    assert_eq!(on_a + on_b, 3);
    // The next goes to the one with fewer: one in flight against two.
    let (authority, next) = balancer.pick().unwrap();
    let fewer = usize::from(on_b < on_a);
    assert_eq!(index(&balancer, authority), fewer);
    drop(next);
    drop(held);
    assert_eq!(a.pending.load(Ordering::Relaxed), 0);
    assert_eq!(b.pending.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_avoided_and_tried_again_later() {
    let balancer = balancer(2);
    let start = Instant::now();
    // The first endpoint refuses connections; the second answers in
    // 5 ms. Requests go one after another until the first is tried
    // again.
    let mut failed_at = Vec::new();
    while failed_at.len() < 2 {
        let (authority, pending) = balancer.pick().unwrap();
        let pending = pending.unwrap();
        if index(&balancer, authority) == 0 {
            failed_at.push(start.elapsed());
            pending.failed();
            let penalty = balancer.estimate(0).as_secs_f64();
            assert!((penalty - FAILURE_PENALTY.as_secs_f64()).abs() < 1e-6);
        } else {
            tokio::time::advance(Duration::from_millis(5)).await;
            pending.answered(true);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never tried again"
        );
    }
    // The penalty of 1 s decays below the other's 5 ms after
    // 10 s × ln(1 s / 5 ms) = 53 s.
    let again = failed_at[1] - failed_at[0];
    assert!(
        (Duration::from_secs(50)..Duration::from_secs(56)).contains(&again),
        "{again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_faster_sample_is_averaged_in_by_the_time_it_waited_and_a_slower_one_replaces() {
    let balancer = balancer(2);
    let addr = addrs(1).next().unwrap();
    let answer = |took: Duration| {
        let pending = balancer.send_to(addr).unwrap();
        async move {
            tokio::time::advance(took).await;
            pending.answered(true);
        }
    };
    answer(Duration::from_millis(100)).await;
    assert_eq!(balancer.estimate_of(addr), Some(Duration::from_millis(100)));
    // One decay later the estimate reads 100 ms / e. A request sent then
    // and answered in 10 ms is averaged into that, weighing what 10 ms
    // of a decay do.
    tokio::time::advance(DECAY).await;
    answer(Duration::from_millis(10)).await;
    let decay = DECAY.as_secs_f64();
    let weight = (-0.01 / decay).exp();
    let expected = 100.0 / std::f64::consts::E * weight + 10.0 * (1.0 - weight);
    let got = balancer.estimate(0).as_secs_f64() * 1e3;
    assert!((got - expected).abs() < 1e-3, "{got} ms, not {expected} ms");
    answer(Duration::from_millis(500)).await;
    assert_eq!(balancer.estimate_of(addr), Some(Duration::from_millis(500)));
}

#[tokio::test(start_paused = true)]
async fn two_endpoints_share_requests_sent_one_after_another() {
    // Both answer in 1 ms, well under the 30 ms default. The one that
    // answered has had its 1 ms of waiting added to its decayed
    // estimate; the other has not, and looks cheaper for the next.
    let balancer = balancer(2);
    let ms = Duration::from_millis;
    let counts = send(&balancer, &[ms(1), ms(1)], 100).await;
    assert!(counts.iter().all(|&n| n >= 40), "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_without_samples_is_drawn_once_its_default_decays_below_the_others() {
    let balancer = balancer(2);
    let (a, b) = (addrs(1).next().unwrap(), addrs(2).last().unwrap());
    // `a` answers in 2 ms, and its estimate says so; `b` has not
    // answered, its default of 30 ms set at the start.
    balancer.seed(a, Duration::from_millis(2));
    let start = Instant::now();
    let drawn = loop {
        let (authority, pending) = balancer.pick().unwrap();
        if index(&balancer, authority) == 1 {
            assert_eq!(balancer.estimate_of(b), Some(DEFAULT_RTT), "no samples");
            break start.elapsed();
        }
        tokio::time::advance(Duration::from_millis(2)).await;
        pending.unwrap().answered(true);
        assert!(start.elapsed() < Duration::from_secs(60), "never drawn");
    };
    // 30 ms decays below 2 ms after 10 s × ln 15 = 27.08 s.
    assert!(
        (Duration::from_millis(27_000)..Duration::from_millis(27_200)).contains(&drawn),
        "{drawn:?}"
    );
}

fn with_accrual(n: u16, max_failures: u32) -> Arc<Balancer> {
    let accrual = FailureAccrual::new(
        std::num::NonZeroU32::new(max_failures).unwrap(),
        Duration::from_secs(1),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    Arc::new(balancer(n).with_accrual(Some(accrual)))
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_keeps_failing_is_taken_out_then_probed() {
    let balancer = with_accrual(3, 2);
    // Endpoint 0 answers 503 to everything; the others succeed.
    let mut to_failing = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3_500) {
        let (authority, pending) = balancer.pick().unwrap();
        let i = index(&balancer, authority);
        if i == 0 {
            to_failing.push(start.elapsed().as_millis());
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        pending.unwrap().answered(i != 0);
    }
    // Two failures take it out for 1 s; its probe fails and it is out
    // for 2 s; the next probe fails too.
    assert_eq!(to_failing.len(), 4, "{to_failing:?}");
    let gaps: Vec<u128> = to_failing.windows(2).map(|w| w[1] - w[0]).collect();
    // The gaps after the second failure: the penalty, plus the 10 ms
    // the failure took to come back, plus the few requests it takes
    // for the draws to reach the endpoint again (each misses it with
    // a chance of 1 in 3, the first draw and then the second missing
    // it: 20 misses in a row, 200 ms, is one chance in three billion).
    assert!((1_010..1_210).contains(&gaps[1]), "{to_failing:?}");
    assert!((2_010..2_210).contains(&gaps[2]), "{to_failing:?}");
}

#[tokio::test(start_paused = true)]
async fn with_every_endpoint_out_nothing_is_picked_until_a_probe() {
    let balancer = with_accrual(1, 1);
    let (_, pending) = balancer.pick().unwrap();
    pending.expect("accrual counts even one endpoint").failed();
    assert!(balancer.pick().is_none());
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, probe) = balancer.pick().expect("the probe");
    assert!(balancer.pick().is_none(), "one probe at a time");
    probe.unwrap().answered(true);
    assert!(balancer.pick().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_probe_whose_caller_went_away_lets_the_next_request_probe() {
    let balancer = with_accrual(1, 1);
    let (_, pending) = balancer.pick().unwrap();
    pending.unwrap().failed();
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, probe) = balancer.pick().expect("the probe");
    assert!(balancer.pick().is_none());
    drop(probe);
    let (_, probe) = balancer.pick().expect("another probe");
    probe.unwrap().answered(true);
    assert!(balancer.pick().is_some());
}

#[test]
fn one_endpoint_is_neither_drawn_nor_measured() {
    let balancer = balancer(1);
    let (authority, pending) = balancer.pick().unwrap();
    assert_eq!(authority.as_str(), "10.0.0.1:80");
    assert!(pending.is_none());
    assert!(Arc::new(Balancer::new([], None)).pick().is_none());
}

#[tokio::test(start_paused = true)]
async fn requests_sent_before_a_penalty_do_not_change_it_when_they_end() {
    // One endpoint, taken out by its first failure, with five more
    // requests already on their way to it.
    let balancer = with_accrual(1, 1);
    let mut in_flight: Vec<Pending> = (0..6)
        .map(|_| balancer.pick().unwrap().1.unwrap())
        .collect();
    in_flight.pop().unwrap().failed();
    assert!(balancer.pick().is_none(), "out for 1 s");
    // The others fail too, or one succeeds late: neither is a probe, so
    // neither doubles the penalty nor ends it.
    for pending in in_flight.drain(..3) {
        pending.answered(false);
    }
    in_flight.pop().unwrap().answered(true);
    assert!(balancer.pick().is_none(), "still out");
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, probe) = balancer.pick().expect("the penalty was 1 s");
    // A late failure while the probe is out does not free a second probe.
    in_flight.pop().unwrap().answered(false);
    assert!(balancer.pick().is_none(), "one probe at a time");
    // The probe fails: the penalty doubles once, to 2 s.
    probe.unwrap().answered(false);
    tokio::time::advance(Duration::from_millis(1_999)).await;
    assert!(balancer.pick().is_none());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(balancer.pick().is_some());
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_whose_requests_are_given_up_on_does_not_draw_the_traffic() {
    // Endpoint 1 hangs: it never answers, and each caller gives up on
    // its request after a second (a timeout above the balancer drops
    // it). Endpoint 0 answers in 5 ms. A request arrives every 10 ms.
    let balancer = balancer(2);
    let mut hung: std::collections::VecDeque<(Instant, Pending)> = Default::default();
    let mut late = 0;
    let ticks = 12_000;
    for tick in 0..ticks {
        let (authority, pending) = balancer.pick().unwrap();
        let pending = pending.unwrap();
        if index(&balancer, authority) == 0 {
            tokio::time::advance(Duration::from_millis(5)).await;
            pending.answered(true);
            tokio::time::advance(Duration::from_millis(5)).await;
        } else {
            if tick >= ticks - 1_000 {
                late += 1;
            }
            hung.push_back((Instant::now() + Duration::from_secs(1), pending));
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        while hung.front().is_some_and(|(at, _)| *at <= Instant::now()) {
            hung.pop_front();
        }
    }
    // The waits it caused are what it costs: in the last ten seconds,
    // it is tried once or so, not sent most of the traffic.
    assert!(late <= 5, "{late} of the last 1000 requests went to it");
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_a_long_wait_counts_the_wait_not_only_the_penalty() {
    let balancer = balancer(2);
    let addr = SocketAddr::from(([10, 0, 0, 1], 80));
    // A fast failure counts as the penalty.
    balancer.send_to(addr).unwrap().failed();
    assert_eq!(balancer.estimate_of(addr), Some(FAILURE_PENALTY));
    // One that came after ten seconds of waiting (a connection reset
    // mid-request, say) counts the ten seconds, as a request given up on
    // after them would.
    let pending = balancer.send_to(addr).unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    pending.failed();
    assert_eq!(balancer.estimate_of(addr), Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn the_endpoint_after_a_run_of_those_taken_out_gets_no_more_than_its_share() {
    // A hundred endpoints; the first fifty fail together (a bad node
    // whose pods have neighbouring addresses) and are taken out.
    let balancer = with_accrual(100, 1);
    for addr in addrs(50) {
        balancer.send_to(addr).unwrap().failed();
    }
    let mut counts = vec![0; 100];
    for _ in 0..10_000 {
        let (authority, _) = balancer.pick().unwrap();
        counts[index(&balancer, authority)] += 1;
    }
    assert!(counts[..50].iter().all(|&n| n == 0), "{counts:?}");
    // Fifty are left: each should get about 200 of the 10 000.
    let most = counts.iter().max().unwrap();
    assert!(
        *most <= 400,
        "one endpoint got {most} of 10 000: {counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_turned_away_is_a_failures_sample_but_no_failure() {
    let accrual = FailureAccrual::new(
        std::num::NonZeroU32::MIN,
        Duration::from_secs(1),
        Duration::from_secs(1),
        0.0,
    )
    .unwrap();
    let addr = addrs(1).next().unwrap();
    let balancer = Arc::new(Balancer::new([addr], Some(accrual)));
    balancer.send_to(addr).unwrap().turned_away();
    assert_eq!(balancer.estimate_of(addr), Some(FAILURE_PENALTY));
    assert_eq!(balancer.pending_of(addr), Some(0));
    assert_eq!(balancer.states(), [(addr, EndpointState::Ready)]);
    // Out for a failure, its probe turned away: the next request probes.
    balancer.send_to(addr).unwrap().failed();
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, probe) = balancer.pick().unwrap();
    probe.unwrap().turned_away();
    assert_eq!(balancer.states(), [(addr, EndpointState::Probing)]);
    let (_, probe) = balancer.pick().expect("the next request probes");
    probe.unwrap().answered(true);
    assert_eq!(balancer.states(), [(addr, EndpointState::Ready)]);
}

#[tokio::test(start_paused = true)]
async fn after_hours_without_a_sample_requests_in_flight_still_count() {
    // Two endpoints left without a request for three hours: their
    // default estimates decay past the smallest an `f64` holds, to zero.
    let balancer = balancer(2);
    tokio::time::advance(Duration::from_secs(3 * 3600)).await;
    let now = balancer.since_epoch(Instant::now());
    for i in 0..2 {
        let estimate = balancer.endpoint(i).unwrap().estimate_at(now);
        assert!(estimate.is_finite() && estimate >= 0.0, "{estimate}");
    }
    // A burst arrives, each request in flight when the next is picked.
    // Both endpoints are drawn every time, so each request goes to the
    // one with fewer in flight: they stay within one of each other.
    let mut held = Vec::new();
    for n in 0..100 {
        held.push(balancer.pick().unwrap().1.unwrap());
        let on_0 = held.iter().filter(|p| p.index == 0).count();
        let on_1 = held.len() - on_0;
        assert!(on_0.abs_diff(on_1) <= 1, "after {n}: {on_0} against {on_1}");
    }
}

#[tokio::test(start_paused = true)]
async fn answers_on_a_paused_clock_leave_the_estimate_finite() {
    // On a paused clock every round trip takes no time: samples of zero,
    // against an estimate last set no time ago.
    let balancer = balancer(2);
    for _ in 0..1_000 {
        let (_, pending) = balancer.pick().unwrap();
        pending.unwrap().answered(true);
    }
    for i in 0..2 {
        assert_eq!(
            balancer.estimate(i),
            DEFAULT_RTT,
            "a zero sample weighs nothing"
        );
    }
    // The clock jumps a day, then a failure and zero samples again.
    tokio::time::advance(Duration::from_secs(24 * 3600)).await;
    let addr = addrs(1).next().unwrap();
    balancer.send_to(addr).unwrap().failed();
    assert_eq!(balancer.estimate_of(addr), Some(FAILURE_PENALTY));
    for _ in 0..1_000 {
        let (_, pending) = balancer.pick().unwrap();
        pending.unwrap().answered(true);
        let now = balancer.since_epoch(Instant::now());
        for i in 0..2 {
            let estimate = balancer.endpoint(i).unwrap().estimate_at(now);
            assert!(estimate.is_finite() && estimate >= 0.0, "{estimate}");
        }
    }
    // The failed endpoint is avoided: every request went to the other.
    assert_eq!(balancer.estimate_of(addr), Some(FAILURE_PENALTY));
}
