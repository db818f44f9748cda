//! What tests read and set of a balancer's endpoints.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::time::Instant;

use super::{Balancer, Pending, nanos};

impl Balancer {
    /// A request sent to the endpoint at `addr`, whatever its cost.
    pub(crate) fn send_to(self: &Arc<Self>, addr: SocketAddr) -> Option<Pending> {
        let index = self.endpoints.iter().position(|e| e.addr == addr)?;
        self.endpoints[index]
            .pending
            .fetch_add(1, Ordering::Relaxed);
        Some(Pending {
            balancer: self.clone(),
            index,
            sent: Instant::now(),
            probe: false,
            connect: 0,
            sampled: false,
        })
    }

    /// The estimate of the endpoint at `addr`, as of its last sample.
    pub(crate) fn estimate_of(&self, addr: SocketAddr) -> Option<Duration> {
        let index = self.endpoints.iter().position(|e| e.addr == addr)?;
        Some(self.estimate(index))
    }

    /// The requests and connections in flight to the endpoint at `addr`.
    pub(crate) fn pending_of(&self, addr: SocketAddr) -> Option<u32> {
        let endpoint = self.endpoints.iter().find(|e| e.addr == addr)?;
        Some(endpoint.pending.load(Ordering::Relaxed))
    }

    /// Endpoint `i`'s estimate, as of its last sample.
    pub(super) fn estimate(&self, i: usize) -> Duration {
        let rtt = self
            .endpoint(i)
            .map_or(0, |e| e.rtt.load(Ordering::Relaxed));
        let rtt = f64::from_bits(rtt);
        Duration::from_nanos(rtt as u64)
    }

    /// Sets the estimate of the endpoint at `addr` to `rtt`, as of now.
    pub(crate) fn seed(&self, addr: SocketAddr, rtt: Duration) {
        let since = self.since_epoch(Instant::now()) as u64;
        if let Some(endpoint) = self.endpoints.iter().find(|e| e.addr == addr) {
            endpoint.rtt.store(nanos(rtt).to_bits(), Ordering::Relaxed);
            endpoint.stamp.store(since, Ordering::Relaxed);
        }
    }
}
