use std::{collections::HashSet, net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

use super::{EndpointSet, Reader};
use crate::proxy::{FailureAccrual, NoEndpoints, balance::Balancer};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 80))
}

fn current(set: &EndpointSet) -> Arc<Balancer> {
    set.current.load_full()
}

/// The endpoints `n` requests picked from the set's current balancer,
/// all in flight together: each one's load steers the next, as when
/// requests overlap.
fn picked(set: &EndpointSet, n: usize) -> HashSet<String> {
    let balancer = current(set);
    let held: Vec<_> = (0..n)
        .map(|_| {
            let (authority, pending) = balancer.pick().unwrap();
            (authority.to_string(), pending)
        })
        .collect();
    held.into_iter().map(|(authority, _)| authority).collect()
}

#[test]
fn an_update_replaces_the_endpoints_and_says_whether_they_changed() {
    let set = EndpointSet::new([addr(1), addr(2)]).unwrap();
    assert_eq!(set.update([addr(2), addr(3)]), Ok(true));
    assert_eq!(set.endpoints(), [addr(2), addr(3)]);
    // The same endpoints in another order, or repeated, are no change.
    assert_eq!(set.update([addr(3), addr(2), addr(3)]), Ok(false));
    assert_eq!(set.len(), 2);
}

#[test]
fn a_removed_endpoint_is_no_longer_picked() {
    let set = EndpointSet::new([addr(1), addr(2), addr(3)]).unwrap();
    assert_eq!(picked(&set, 200).len(), 3);
    set.update([addr(1), addr(3)]).unwrap();
    let after = picked(&set, 200);
    assert_eq!(
        after,
        HashSet::from(["10.0.0.1:80".into(), "10.0.0.3:80".into()])
    );
}

#[test]
fn an_update_to_no_endpoints_is_ignored() {
    let set = EndpointSet::new([addr(1)]).unwrap();
    assert_eq!(set.update([]), Err(NoEndpoints));
    assert_eq!(set.endpoints(), [addr(1)]);
    assert!(current(&set).pick().is_some());
}

#[test]
fn an_empty_set_picks_nothing_until_its_first_endpoints() {
    let set = EndpointSet::empty();
    assert!(set.is_empty());
    assert!(current(&set).pick().is_none());
    assert_eq!(set.update([]), Err(NoEndpoints));
    assert_eq!(set.update([addr(4)]), Ok(true));
    assert_eq!(picked(&set, 10), HashSet::from(["10.0.0.4:80".into()]));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_kept_across_an_update_keeps_its_load_and_a_new_one_starts_fresh() {
    let set = EndpointSet::new([addr(1), addr(2)]).unwrap();
    let before = current(&set);
    // Endpoint 1 answers in 500 ms, far above the default 30 ms; one
    // more request to it stays in flight.
    let slow = before.send_to(addr(1)).unwrap();
    tokio::time::advance(Duration::from_millis(500)).await;
    slow.answered(true);
    let held = before.send_to(addr(1)).unwrap();

    set.update([addr(1), addr(3)]).unwrap();
    let after = current(&set);
    // Endpoint 1 is the same endpoint: its estimate and its request in
    // flight came along. Endpoint 3 is new, at the default estimate.
    assert_eq!(after.estimate_of(addr(1)), Some(Duration::from_millis(500)));
    assert_eq!(after.pending_of(addr(1)), Some(1));
    assert_eq!(
        after.estimate_of(addr(3)),
        Some(crate::proxy::balance::DEFAULT_RTT)
    );
    assert_eq!(after.pending_of(addr(3)), Some(0));
    // So the new one takes the requests the slow one would not.
    for _ in 0..20 {
        assert_eq!(after.pick().unwrap().0.as_str(), "10.0.0.3:80");
    }
    // The request in flight finishes against the endpoint it went to,
    // which the new balancer shares.
    drop(held);
    assert_eq!(after.pending_of(addr(1)), Some(0));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_kept_across_an_update_stays_out_for_failing() {
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(10),
        Duration::from_secs(60),
        0.0,
    )
    .unwrap();
    let set = EndpointSet::new([addr(1), addr(2)])
        .unwrap()
        .with_failure_accrual(accrual);
    let before = current(&set);
    before.send_to(addr(1)).unwrap().answered(false);
    tokio::time::advance(Duration::from_secs(1)).await;

    set.update([addr(1), addr(2), addr(3)]).unwrap();
    // Endpoint 1 serves the rest of its 10 s penalty.
    let picks = picked(&set, 200);
    assert_eq!(
        picks,
        HashSet::from(["10.0.0.2:80".into(), "10.0.0.3:80".into()])
    );
    tokio::time::advance(Duration::from_secs(9)).await;
    assert!(picked(&set, 200).contains("10.0.0.1:80"));
}

#[test]
fn a_forward_reader_sees_an_update_at_its_next_request() {
    let set = EndpointSet::new([addr(1)]).unwrap();
    let mut reader = set.reader();
    let first = reader.current().clone();
    assert!(
        Arc::ptr_eq(reader.current(), &first),
        "no update, same balancer"
    );
    set.update([addr(2)]).unwrap();
    let Reader::Shared(_) = &reader else {
        panic!("a set is read through its cache")
    };
    assert_eq!(reader.current().addrs().collect::<Vec<_>>(), [addr(2)]);
}

/// Where a `Forward` over `set` sends one request, or the status it
/// answers with itself.
async fn forward_once(forward: &mut crate::proxy::Forward<Echo>) -> Result<String, u16> {
    use tower::Service;
    let res = forward.call(http::Request::new(())).await.unwrap();
    match res.headers().get("x-endpoint") {
        Some(endpoint) => Ok(endpoint.to_str().unwrap().to_owned()),
        None => Err(res.status().as_u16()),
    }
}

/// A client that answers with the endpoint the request was sent to.
type Echo = tower::util::ServiceFn<
    fn(
        http::Request<()>,
    ) -> std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>,
>;

fn echo() -> Echo {
    tower::service_fn(|req: http::Request<()>| {
        let authority = req.uri().authority().unwrap().to_string();
        let res = http::Response::builder()
            .header("x-endpoint", authority)
            .body(())
            .unwrap();
        std::future::ready(Ok(res))
    })
}

#[tokio::test(start_paused = true)]
async fn a_forward_over_a_set_follows_its_updates_and_answers_503_while_it_stays_empty() {
    let set = EndpointSet::empty();
    let mut forward = crate::proxy::Forward::with_endpoints(echo(), &set);
    let mut clone = forward.clone();
    // After the fail-fast timeout.
    assert_eq!(forward_once(&mut forward).await, Err(503));
    set.update([addr(1)]).unwrap();
    assert_eq!(forward_once(&mut forward).await, Ok("10.0.0.1:80".into()));
    assert_eq!(forward_once(&mut clone).await, Ok("10.0.0.1:80".into()));
    set.update([addr(2)]).unwrap();
    assert_eq!(forward_once(&mut clone).await, Ok("10.0.0.2:80".into()));
    set.update([]).unwrap_err();
    assert_eq!(forward_once(&mut forward).await, Ok("10.0.0.2:80".into()));
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_added_late_starts_at_the_default_estimate_not_a_decayed_one() {
    let set = EndpointSet::new([addr(1)]).unwrap();
    // The set has run for ten minutes; endpoint 1 just answered in 5 ms.
    tokio::time::advance(Duration::from_secs(600)).await;
    let sent = current(&set).send_to(addr(1)).unwrap();
    tokio::time::advance(Duration::from_millis(5)).await;
    sent.answered(true);
    set.update([addr(1), addr(2)]).unwrap();
    let after = current(&set);
    // Ten requests go out before any answers. The new endpoint is
    // expected to take 30 ms, six times the other's 5 ms: it gets a
    // share of them, not all ten, as a cold instance would.
    let held: Vec<_> = (0..10)
        .map(|_| {
            let (authority, pending) = after.pick().unwrap();
            (authority.to_string(), pending)
        })
        .collect();
    let to_new = held.iter().filter(|(a, _)| a == "10.0.0.2:80").count();
    assert!(to_new <= 3, "{to_new} of 10 to the new endpoint");
}

#[tokio::test(start_paused = true)]
async fn a_request_given_up_on_while_it_waits_holds_no_place() {
    use std::task::Poll;
    use tower::Service;
    let set = EndpointSet::empty();
    let gate = current(&set).gate().clone();
    let mut forward = crate::proxy::Forward::with_endpoints(echo(), &set);
    let mut waiting = Box::pin(forward.call(http::Request::new(())));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let polled = waiting.as_mut().poll(&mut cx);
    assert!(matches!(polled, Poll::Pending), "it waits");
    assert_eq!(gate.waiters(), 1);
    drop(waiting);
    assert_eq!(gate.waiters(), 0);
}
