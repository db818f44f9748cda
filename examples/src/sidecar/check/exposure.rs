//! Outbound listeners other hosts can reach.
//!
//! A connection to an outbound listener reaches the outbound services as
//! this workload: over mutual TLS with its certificate, authorized by the
//! services' policies as this workload is. Only the application beside
//! the sidecar should have that, which is why Linkerd's proxy listens for
//! outbound traffic on loopback only. A listener on another address, or
//! on every interface, lends the workload's identity to whoever can
//! connect to it.

use std::net::SocketAddr;

use super::Check;
use crate::sidecar::config::OutboundConfig;

/// What holds when the check passes.
const TITLE: &str = "outbound listeners take connections from this host only";

/// A warning naming each outbound listener that is not on loopback;
/// nothing when every one is. Not a failure: a sidecar on a host network
/// with a firewall in front may mean it.
pub(super) fn check(outbound: &OutboundConfig) -> Vec<Check> {
    let listeners = std::iter::once(("outbound.listen".to_owned(), outbound.listen)).chain(
        outbound
            .ports
            .iter()
            .enumerate()
            .map(|(index, port)| (format!("outbound.ports[{index}].listen"), port.listen)),
    );
    let exposed: Vec<String> = listeners
        .filter(|(_, addr)| !on_loopback(*addr))
        .map(|(field, addr)| format!("{field} {addr}"))
        .collect();
    if exposed.is_empty() {
        return Vec::new();
    }
    vec![
        Check::warn(
            TITLE,
            format!(
                "{} can be reached from other hosts, which would reach the outbound services \
                 as this workload, with its identity",
                exposed.join(", ")
            ),
        )
        .with_hint("listen on 127.0.0.1 (or [::1]), as the application is beside the sidecar"),
    ]
}

fn on_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}
