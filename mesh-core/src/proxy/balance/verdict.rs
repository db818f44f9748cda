//! A response whose outcome comes after its head: a gRPC call that ends
//! with its status in trailers.
//!
//! # Why
//!
//! A gRPC server answers `200` and sends its status last, in trailers:
//! `UNAVAILABLE` after a message or none at all looks, at the head, like
//! any success. Failure accrual has to wait for the trailers to judge the
//! response. The balancer does not: its latency sample is the round trip
//! to the head, and a request stops counting as in flight at the head,
//! whether its body streams for a millisecond or an hour.
//!
//! # How
//!
//! [`Pending::answered_later`] takes the sample and ends the request's
//! load at the head, as [`answered`](Pending::answered) does, and hands
//! back a [`Verdict`] that carries only the failure-accrual outcome (and
//! the endpoint's probe, when the request is its probe) until the body
//! ends. Dropped without an outcome (the caller went away first), it
//! counts nothing and lets the next request probe, as a [`Pending`]
//! dropped does.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Balancer, Pending};

impl Pending {
    /// The response head arrived, but whether the response succeeded is
    /// known only at the end of its body. The round trip is a sample and
    /// the request stops counting as in flight now, as with
    /// [`answered`](Self::answered); the failure-accrual outcome waits in
    /// the [`Verdict`] handed back. `None` when the balancer has no
    /// failure accrual: there is no outcome to wait for.
    pub(crate) fn answered_later(mut self) -> Option<Verdict> {
        self.observe_wait(Instant::now());
        self.balancer.accrual?;
        Some(Verdict {
            balancer: self.balancer.clone(),
            index: self.index,
            // Taken: dropped, this no longer holds the probe.
            probe: std::mem::take(&mut self.probe).then(|| self.claim()),
        })
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
    async fn the_sample_and_the_load_end_at_the_head_and_the_outcome_waits() {
        let balancer = strict();
        let pending = balancer.send_to(addr()).unwrap();
        tokio::time::advance(Duration::from_millis(200)).await;
        let verdict = pending.answered_later().unwrap();
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
    async fn a_probe_given_up_on_before_its_outcome_lets_the_next_request_probe() {
        let balancer = strict();
        balancer.send_to(addr()).unwrap().failed();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, probe) = balancer.pick().unwrap();
        let verdict = probe.unwrap().answered_later().unwrap();
        assert!(balancer.pick().is_none(), "one probe at a time");
        drop(verdict);
        let (_, probe) = balancer.pick().expect("the next request probes");
        probe.unwrap().answered_later().unwrap().record(true);
        assert_eq!(balancer.states(), [(addr(), EndpointState::Ready)]);
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
        let verdict = before.send_to(b).unwrap().answered_later().unwrap();
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
        assert!(pending.answered_later().is_none());
        assert_eq!(balancer.pending_of(addr()), Some(0));
    }
}
