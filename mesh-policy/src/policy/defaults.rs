//! The default server of each port no Server covers, made once per port.
//!
//! linkerd2-proxy labels every series of a server with the port the
//! connection came to (`srv_port`), the default server's too: Linkerd's
//! policy controller sends a default server per port. So the default
//! server here is one entry per port, whose counters carry that port,
//! rather than one entry for every port whose counters could carry none.
//! A port's entry is made at its first request or connection (or when a
//! policy is put in force in place of one that had it, see
//! [`Policy::carry_default_servers`](super::Policy::carry_default_servers)),
//! and kept for as long as the policy: later requests on the port find
//! its counters resolved, as a Server's are. A port number has 65,535
//! values, so the entries are bounded however the traffic goes. Port 0
//! stands for no port (a request without a connection's address, to a
//! layer given none): its entry's series have no `srv_port`.

use std::{fmt, sync::OnceLock};

use mesh_core::route::RouteMatch;

use super::ServerEntry;
use crate::PolicyMetrics;

/// Ports per block: a port's block is its high byte, its slot the low one.
const BLOCK: usize = 256;

/// The default servers of one policy, by port: 256 blocks of 256 slots,
/// a block made at the first use of one of its ports, so that a policy
/// whose traffic comes to a few ports holds a few kilobytes of slots, and
/// finding a port's entry is two loads, with no lock and no hashing.
pub(crate) struct DefaultServers {
    blocks: Box<[OnceLock<Box<Block>>; BLOCK]>,
    /// What each entry is made with: the probe matches of the default
    /// routes and the families its counters are resolved in.
    pub(super) probes: Vec<RouteMatch>,
    pub(super) metrics: PolicyMetrics,
}

type Block = [OnceLock<Box<ServerEntry>>; BLOCK];

impl DefaultServers {
    pub(super) fn new(probes: Vec<RouteMatch>, metrics: PolicyMetrics) -> Self {
        Self {
            blocks: Box::new(std::array::from_fn(|_| OnceLock::new())),
            probes,
            metrics,
        }
    }

    /// The entry of `port`, if it has been made.
    #[inline]
    pub(super) fn get(&self, port: u16) -> Option<&ServerEntry> {
        let [high, low] = port.to_be_bytes();
        self.blocks[usize::from(high)].get()?[usize::from(low)]
            .get()
            .map(|entry| &**entry)
    }

    /// The entry of `port`, made with `make` if it has not been: once per
    /// port, however many requests race to make it.
    #[inline]
    pub(super) fn get_or_make(
        &self,
        port: u16,
        make: impl FnOnce(u16) -> ServerEntry,
    ) -> &ServerEntry {
        match self.get(port) {
            Some(entry) => entry,
            None => self.make(port, make),
        }
    }

    /// The first request on a port: out of line, so the common path
    /// stays two loads.
    #[cold]
    #[inline(never)]
    fn make(&self, port: u16, make: impl FnOnce(u16) -> ServerEntry) -> &ServerEntry {
        let [high, low] = port.to_be_bytes();
        let block = self.blocks[usize::from(high)]
            .get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
        block[usize::from(low)].get_or_init(|| Box::new(make(port)))
    }

    /// The ports whose entries have been made, in order.
    pub(super) fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.blocks
            .iter()
            .zip(0u8..=u8::MAX)
            .filter_map(|(block, high)| block.get().map(|b| (b, high)))
            .flat_map(|(block, high)| {
                block
                    .iter()
                    .zip(0u8..=u8::MAX)
                    .filter(|(slot, _)| slot.get().is_some())
                    .map(move |(_, low)| u16::from_be_bytes([high, low]))
            })
    }
}

impl fmt::Debug for DefaultServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultServers")
            .field("ports", &self.ports().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
