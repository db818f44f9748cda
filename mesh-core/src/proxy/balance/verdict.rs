//! A response whose outcome and latency come after its head.
//!
//! # Why
//!
//! Linkerd's balancer takes a request's latency sample, and stops counting
//! it in flight, at the response's first body frame, or its end when none
//! comes (linkerd2-proxy `hyper-balance`, `PendingUntilFirstData`, which
//! `linkerd/proxy/http/src/balance.rs` uses): a server that answers its
//! head at once and its data a second later is a second slow, not
//! instant. And Linkerd classifies a response for failure accrual at the
//! end of its stream (`linkerd/http/classify/src/channel.rs`): a good
//! head whose body then breaks is a failure, and a gRPC status comes in
//! the trailers. So neither can be settled at the head.
//!
//! # How
//!
//! A response's body carries its [`Pending`] until its first frame. A
//! failure at the head is final, and [`judged`](Pending::judged) counts
//! it at once: nothing the body does can make it a success. Otherwise,
//! at the first frame, [`first_frame`](Pending::first_frame) takes the
//! sample and ends the request's load, as [`answered`](Pending::answered)
//! does at a head, and hands back a [`Verdict`] that carries only the
//! failure-accrual outcome (and the endpoint's probe, when the request is
//! its probe) until the body ends. Dropped without an outcome (the caller
//! went away first), it counts nothing and lets the next request probe,
//! a request waiting for an endpoint included, as a [`Pending`] dropped
//! does.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Balancer, Pending};

impl Pending {
    /// The response's first body frame came, or its end, or it was given
    /// up on: the round trip to now is a sample and the request stops
    /// counting as in flight, as with [`answered`](Self::answered). Whether
    /// it succeeded may be known only when its body ends: the
    /// failure-accrual outcome waits in the [`Verdict`] handed back. `None`
    /// when the balancer has no failure accrual: there is no outcome to
    /// wait for.
    pub(crate) fn first_frame(mut self) -> Option<Verdict> {
        self.observe_wait(Instant::now());
        self.balancer.accrual?;
        Some(Verdict {
            balancer: self.balancer.clone(),
            index: self.index,
            // Taken: dropped, this no longer holds the probe.
            probe: std::mem::take(&mut self.probe).then(|| self.claim()),
        })
    }

    /// The response's head says it failed: counted now, while the request
    /// still counts as in flight and its sample waits for the body (see
    /// [`first_frame`](Self::first_frame)). A probe is decided by it.
    pub(crate) fn judged(&mut self, success: bool) {
        self.record(success, Instant::now());
    }
}

/// The failure-accrual outcome of a response whose head has come, to be
/// counted when its body ends. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Verdict {
    balancer: Arc<Balancer>,
    index: usize,
    /// When this claimed the endpoint's probe, if it holds it and no
    /// outcome has been counted yet.
    probe: Option<u64>,
}

impl Verdict {
    /// The body ended: the response was a `success` or a failure.
    pub(crate) fn record(mut self, success: bool) {
        let probe = self.probe.take().is_some();
        self.balancer
            .record(self.index, success, probe, Instant::now());
    }
}

impl Drop for Verdict {
    /// A response given up on before its end counts nothing, and a probe
    /// lets the next request probe.
    fn drop(&mut self) {
        let Some(claimed) = self.probe else {
            return;
        };
        if let Some(endpoint) = self.balancer.endpoint(self.index) {
            endpoint.health.release_probe(claimed);
            // The next request may probe: one waiting may be it, as
            // when a `Pending` that holds the probe is dropped.
            self.balancer.gate.wake(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

    use super::*;
    use crate::proxy::{EndpointState, FailureAccrual};

    fn addr() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 80))
    }

    /// One endpoint, out at its first failure for a second.
    fn strict() -> Arc<Balancer> {
        let accrual = FailureAccrual::new(
            NonZeroU32::MIN,
            Duration::from_secs(1),
            Duration::from_secs(1),
            0.0,
        )
        .unwrap();
        Arc::new(Balancer::new([addr()], Some(accrual)))
    }

    #[tokio::test(start_paused = true)]
    async fn the_sample_and_the_load_end_at_the_first_frame_and_the_outcome_waits() {
        let balancer = strict();
        let pending = balancer.send_to(addr()).unwrap();
        tokio::time::advance(Duration::from_millis(200)).await;
        let verdict = pending.first_frame().unwrap();
        assert_eq!(balancer.pending_of(addr()), Some(0));
        assert_eq!(
            balancer.estimate_of(addr()),
            Some(Duration::from_millis(200))
        );
        assert_eq!(balancer.states(), [(addr(), EndpointState::Ready)]);
        tokio::time::advance(Duration::from_secs(5)).await;
        verdict.record(false);
        assert_eq!(balancer.states(), [(addr(), EndpointState::Failing)]);
        assert_eq!(
            balancer.estimate_of(addr()),
            Some(Duration::from_millis(200)),
            "the body's time is no sample"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_judged_at_the_head_counts_at_once_and_the_sample_waits() {
        let balancer = strict();
        let mut pending = balancer.send_to(addr()).unwrap();
        pending.judged(false);
        assert_eq!(balancer.states(), [(addr(), EndpointState::Failing)]);
        assert_eq!(balancer.pending_of(addr()), Some(1), "in flight");
        tokio::time::advance(Duration::from_millis(200)).await;
        drop(pending);
        assert_eq!(balancer.pending_of(addr()), Some(0));
        assert_eq!(
            balancer.estimate_of(addr()),
            Some(Duration::from_millis(200))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_given_up_on_before_its_outcome_lets_the_next_request_probe() {
        let balancer = strict();
        balancer.send_to(addr()).unwrap().failed();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, probe) = balancer.pick().unwrap();
        let verdict = probe.unwrap().first_frame().unwrap();
        assert!(balancer.pick().is_none(), "one probe at a time");
        drop(verdict);
        let (_, probe) = balancer.pick().expect("the next request probes");
        probe.unwrap().first_frame().unwrap().record(true);
        assert_eq!(balancer.states(), [(addr(), EndpointState::Ready)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_given_up_on_after_its_head_wakes_the_requests_waiting() {
        use crate::proxy::queue::Woken;

        let balancer = strict();
        balancer.send_to(addr()).unwrap().failed();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, probe) = balancer.pick().unwrap();
        let verdict = probe.unwrap().first_frame().unwrap();
        // A request that finds the probe taken waits for the endpoint.
        assert!(balancer.pick().is_none());
        let gate = balancer.gate().clone();
        let seen = gate.generation();
        let waiting = tokio::spawn(gate.wait(seen, balancer.next_change()));
        tokio::task::yield_now().await;
        let start = Instant::now();
        // The probe's caller goes away before its body's end: it counts
        // nothing, and the waiting request may probe instead, at once,
        // rather than when the service goes into fail-fast.
        drop(verdict);
        assert_eq!(waiting.await.unwrap(), Woken::Retry);
        assert_eq!(Instant::now(), start, "woken at once");
        assert!(balancer.pick().unwrap().1.is_some(), "it probes");
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_counted_after_an_update_counts_for_its_own_endpoint() {
        // The set changed while the body streamed: the endpoint now sits
        // at another place, and another one at its old place.
        let a = addr();
        let b = SocketAddr::from(([10, 0, 0, 2], 80));
        let c = SocketAddr::from(([10, 0, 0, 3], 80));
        let accrual = strict().accrual;
        let before = Arc::new(Balancer::new([a, b], accrual));
        let verdict = before.send_to(b).unwrap().first_frame().unwrap();
        let after = before.update([c, b]);
        drop(before);
        verdict.record(false);
        assert_eq!(
            after.states(),
            [(c, EndpointState::Ready), (b, EndpointState::Failing)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_failure_accrual_there_is_nothing_to_wait_for() {
        let balancer = Arc::new(Balancer::new(
            [addr(), SocketAddr::from(([10, 0, 0, 2], 80))],
            None,
        ));
        let pending = balancer.send_to(addr()).unwrap();
        assert!(pending.first_frame().is_none());
        assert_eq!(balancer.pending_of(addr()), Some(0));
    }
}
