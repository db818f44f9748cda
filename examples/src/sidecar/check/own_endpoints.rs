//! Endpoints that are the sidecar's own outbound listeners.
//!
//! A request sent to the sidecar's outbound listener is routed by its
//! `Host`, which it keeps: an endpoint that is that listener (or one of
//! its TCP ports) would send it round the sidecar again, on a new
//! connection each time, until the connection limit is reached. The
//! sidecar leaves such an endpoint out with an error in its log; a
//! service left with none answers every request with 503. The check says
//! so before a request does.

use std::net::SocketAddr;

use mesh_core::proxy::resolve::EndpointAddr;

use super::Check;
use crate::sidecar::config::{OutboundConfig, ServiceConfig, reaches};

/// Nothing for a service none of whose endpoints is an outbound listener
/// of this sidecar. For one that has such endpoints, a warning when
/// others are left (addresses, or names that may resolve elsewhere), a
/// failure when none is.
pub(super) fn check(outbound: &OutboundConfig) -> Vec<Check> {
    let listeners = listeners(outbound);
    outbound
        .services
        .iter()
        .filter_map(|service| check_service(service, &listeners))
        .collect()
}

/// The sidecar's outbound listeners, each with its field.
pub(super) fn listeners(outbound: &OutboundConfig) -> Vec<(String, SocketAddr)> {
    std::iter::once(("outbound.listen".to_owned(), outbound.listen))
        .chain(
            outbound
                .ports
                .iter()
                .enumerate()
                .map(|(index, port)| (format!("outbound.ports[{index}].listen"), port.listen)),
        )
        .collect()
}

/// `addr is outbound.listen (127.0.0.1:4140)` when `addr` is one of
/// `listeners`.
pub(super) fn own(addr: SocketAddr, listeners: &[(String, SocketAddr)]) -> Option<String> {
    listeners
        .iter()
        .find(|(_, listener)| reaches(addr, *listener))
        .map(|(field, listener)| format!("{addr} is {field} ({listener})"))
}

/// Why an endpoint that is an outbound listener does not count.
pub(super) const LEFT_OUT: &str = "the sidecar leaves such an endpoint out: a request sent \
     there would come back to the sidecar, again and again";

/// What a service left with no endpoint does.
pub(super) fn none_left(service: &str) -> String {
    format!("no endpoint is left: every request to {service} gets 503")
}

fn check_service(service: &ServiceConfig, listeners: &[(String, SocketAddr)]) -> Option<Check> {
    let mut lines = Vec::new();
    let mut others = 0;
    for endpoint in &service.endpoints {
        let listener = match endpoint {
            EndpointAddr::Socket(addr) => own(*addr, listeners),
            // What a name resolves to is checked where it is resolved.
            EndpointAddr::Name { .. } => None,
        };
        match listener {
            Some(line) => lines.push(line),
            None => others += 1,
        }
    }
    if lines.is_empty() {
        return None;
    }
    let name = service.name.as_str();
    let title = format!("service {name} has endpoints other than the sidecar's own listeners");
    let why = format!("{}\n{LEFT_OUT}", lines.join("\n"));
    Some(if others == 0 {
        Check::fail(title, format!("{why}\n{}", none_left(name)))
    } else {
        Check::warn(title, why)
    })
}
