//! `outbound.ports`: TCP listeners, each forwarding to one outbound
//! service. Each entry must name a service of `outbound.services`, and its
//! listener is checked against every other one with the rest. Its `port`,
//! the service port the listener stands for (what the service's
//! `TLSRoute`s and `TCPRoute`s are matched against), is 1 to 65535 when
//! written.

use super::error::{ConfigError, ConfigErrorKind};
use super::file::OutboundPortEntry;
use super::listeners::Listener;
use super::outbound::{OutboundPort, ServiceConfig};
use super::resolve::Source;

/// The ports of `entries`, whose services must be among `services`; their
/// listeners join `listeners`, for the check of clashes.
pub(super) fn resolve_outbound_ports(
    entries: Vec<OutboundPortEntry>,
    services: &[ServiceConfig],
    source: Source<'_>,
    listeners: &mut Vec<Listener>,
) -> Result<Vec<OutboundPort>, ConfigError> {
    let mut ports = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        if !services.iter().any(|s| s.name == entry.service) {
            let path = format!("outbound.ports[{index}].service");
            let known = if services.is_empty() {
                "outbound.services is empty".to_owned()
            } else {
                let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
                format!("known: {}", names.join(", "))
            };
            return Err(source.error(
                ConfigErrorKind::InvalidValue,
                &path,
                &path,
                format!(
                    "service {:?} is not in outbound.services ({known})",
                    entry.service.as_str()
                ),
            ));
        }
        if entry.port == Some(0) {
            let path = format!("outbound.ports[{index}].port");
            return Err(source.error(
                ConfigErrorKind::InvalidValue,
                &path,
                &path,
                "port 0 is no service port: write the port (1 to 65535) the listener stands for, \
                 which the service's TLSRoutes and TCPRoutes name, or leave it out for the \
                 listener's own"
                    .to_owned(),
            ));
        }
        listeners.push(Listener::new(
            format!("outbound.ports[{index}].listen"),
            entry.listen.0,
            true,
        ));
        ports.push(OutboundPort {
            listen: entry.listen.0,
            service: entry.service,
            port: entry.port,
        });
    }
    Ok(ports)
}
